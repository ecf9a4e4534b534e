// The cpu backend's heap: one WebAssembly.Memory that holds every cpu tensor (when it can be shared) and
// the kernels' scratch, so the wasm kernels and their worker threads read and write tensors in place.
//
// Layout: below HEAP_BASE the kernel module's static data, constants, per-thread scratch and the job
// block (kernels/wasm/common.ts); above it, blocks handed out by the allocator below. Blocks are 64-byte
// aligned. Free blocks coalesce with free neighbours and are found by best fit in segregated size classes,
// so a training loop's repeating pattern of sizes reuses the same memory; a free block at the top lowers
// the top. WebAssembly memory cannot shrink, so the high-water mark is what the process keeps.
//
// A shared memory never detaches: a typed array made on it stays valid after the memory grows, which is
// what lets tensors live here. Where memory cannot be shared (a browser page without cross-origin
// isolation) the heap holds scratch only and tensors stay ordinary typed arrays (kernels then stage them).

export const HEAP_BASE = 131072;
const PAGE = 65536;
const ALIGN = 64;
/** wasm32: 65536 pages = 4 GiB. */
const MAX_PAGES = 65536;

const isNode = typeof process !== 'undefined' && !!(process as { versions?: { node?: string } }).versions?.node;

function envNumber(name: string): number | undefined {
  const v = isNode ? process.env[name] : undefined;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** Size class of a block of `units` 64-byte units: exact below 64 units, then 4 classes per power of two. */
function classOf(units: number): number {
  if (units < 64) return units;
  const e = 31 - Math.clz32(units);
  return 64 + (e - 6) * 4 + ((units >>> (e - 2)) & 3);
}

export class Heap {
  readonly memory: WebAssembly.Memory;
  /** True when the memory is shared: tensors live in it and worker threads may run kernels on it. */
  readonly shared: boolean;
  /** Every ArrayBuffer object the memory has exposed (a new one after each growth). */
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  private top = HEAP_BASE;
  private readonly limit: number;
  private readonly freeStart = new Map<number, number>(); // start -> bytes
  private readonly freeEnd = new Map<number, number>(); // end -> start
  private readonly bins: Set<number>[] = [];
  /** Bytes in live blocks, and the most there have been (for memory reports). */
  liveBytes = 0;
  peakBytes = 0;

  constructor(memory: WebAssembly.Memory, shared: boolean, maxBytes: number) {
    this.memory = memory;
    this.shared = shared;
    this.limit = maxBytes;
    this.buffers.add(memory.buffer);
  }

  /** Whether `a` is a view of this heap (then its byteOffset is its address). */
  owns(a: ArrayBufferView): boolean {
    return this.buffers.has(a.buffer);
  }

  /** The memory's current buffer (registered as the heap's). */
  buffer(): ArrayBufferLike {
    const b = this.memory.buffer;
    this.buffers.add(b);
    return b;
  }

  /** Highest address handed out so far (the memory the process keeps). */
  get highWater(): number {
    return this.top;
  }

  /** A block of at least `bytes` bytes (64-byte aligned), or -1 when the heap cannot grow that far. */
  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    const addr = this.fromFreeList(size);
    if (addr >= 0) return this.taken(addr, size);
    const end = this.top + size;
    if (end > this.memory.buffer.byteLength && !this.grow(end)) return -1;
    const a = this.top;
    this.top = end;
    return this.taken(a, size);
  }

  /** Return a block from alloc (bytes as passed to alloc). */
  free(addr: number, bytes: number): void {
    let start = addr, size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    this.liveBytes -= size;
    const next = this.freeStart.get(start + size);
    if (next !== undefined) { this.unlink(start + size, next); size += next; }
    const prev = this.freeEnd.get(start);
    if (prev !== undefined) { this.unlink(prev, start - prev); size += start - prev; start = prev; }
    if (start + size === this.top) { this.top = start; return; }
    this.link(start, size);
  }

  private taken(addr: number, size: number): number {
    this.liveBytes += size;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    return addr;
  }

  private fromFreeList(size: number): number {
    const c0 = classOf(size / ALIGN);
    for (let c = c0; c < this.bins.length; c++) {
      const bin = this.bins[c];
      if (!bin || bin.size === 0) continue;
      let best = -1, bestSize = Infinity;
      for (const a of bin) {
        const s = this.freeStart.get(a)!;
        if (s >= size && s < bestSize) { best = a; bestSize = s; if (s === size || c > c0) break; }
      }
      if (best < 0) continue;
      this.unlink(best, bestSize);
      if (bestSize > size) this.link(best + size, bestSize - size);
      return best;
    }
    return -1;
  }

  private link(start: number, size: number): void {
    this.freeStart.set(start, size);
    this.freeEnd.set(start + size, start);
    const c = classOf(size / ALIGN);
    (this.bins[c] ??= new Set()).add(start);
  }

  private unlink(start: number, size: number): void {
    this.freeStart.delete(start);
    this.freeEnd.delete(start + size);
    this.bins[classOf(size / ALIGN)]!.delete(start);
  }

  private grow(end: number): boolean {
    if (end > this.limit) return false;
    const cur = this.memory.buffer.byteLength;
    // at least 1/8 more each time, so a run of slightly larger requests does not grow every call
    const want = Math.min(this.limit, Math.max(end, cur + Math.floor(cur / 8)));
    try {
      this.memory.grow(Math.ceil((want - cur) / PAGE));
    } catch {
      try { this.memory.grow(Math.ceil((end - cur) / PAGE)); } catch { return false; }
    }
    this.buffers.add(this.memory.buffer);
    return true;
  }
}

function makeHeap(): Heap | null {
  if (typeof WebAssembly === 'undefined') return null;
  const shared = typeof SharedArrayBuffer !== 'undefined' && typeof Atomics !== 'undefined';
  // LAVENDER_CPU_HEAP_MB caps the heap (tests of the overflow path); default: the wasm32 limit.
  const capMb = envNumber('LAVENDER_CPU_HEAP_MB');
  const capPages = capMb !== undefined ? Math.max(3, Math.ceil((capMb * 2 ** 20) / PAGE)) : MAX_PAGES;
  for (const maximum of [capPages, 32768, 16384, 8192].filter((m) => m <= capPages)) {
    try {
      const desc = shared ? { initial: 4, maximum, shared: true } : { initial: 4, maximum };
      const memory = new WebAssembly.Memory(desc as WebAssembly.MemoryDescriptor);
      return new Heap(memory, shared, maximum * PAGE);
    } catch { /* a smaller reservation */ }
  }
  return null;
}

/** The process's cpu heap (null without WebAssembly). */
export const heap: Heap | null = makeHeap();

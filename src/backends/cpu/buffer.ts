// Cpu buffers are typed arrays. Where the process has a shared heap (heap.ts) they are views of it, so
// the wasm kernels work on them in place; otherwise (no shared memory, or the heap is full) ordinary
// arrays recycled through a size-keyed caching pool: re-faulting large fresh allocations every step
// costs more than the math.
import type { BackendBuffer } from '../backend.js';
import { arrayFor, bytesPerElement, type DType, type TypedArray } from '../../tensor/dtype.js';
import { heap } from './heap.js';

export class CpuBuffer implements BackendBuffer {
  readonly backend = 'cpu';
  freed = false;
  /** Byte address in the heap, or -1 for an ordinary array. */
  readonly addr: number;
  constructor(readonly dtype: DType, readonly size: number, readonly data: TypedArray, addr = -1) {
    this.addr = addr;
  }
}

function heapArray(dtype: DType, buffer: ArrayBufferLike, addr: number, n: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer, addr, n);
    case 'float64': case 'int64': return new Float64Array(buffer, addr, n);
    case 'int32': return new Int32Array(buffer, addr, n);
    case 'bfloat16': case 'float16': return new Uint16Array(buffer, addr, n);
    case 'bool': return new Uint8Array(buffer, addr, n);
  }
}

const POOL_MIN_BYTES = 4096;

/**
 * How many bytes of freed arrays the pool keeps: LAVENDER_CPU_POOL_MB, else a quarter of the machine's
 * memory between 1 and 8 GiB. A training step whose working set exceeds the cap re-allocates (and the
 * kernel re-faults and zeroes) the excess every step: a DiT-MNIST step at batch 64 cycles ~2.5 GB.
 */
function defaultPoolBytes(): number {
  const env = typeof process !== 'undefined' ? process.env?.LAVENDER_CPU_POOL_MB : undefined;
  if (env !== undefined && env !== '' && Number.isFinite(Number(env)) && Number(env) >= 0) return Number(env) * 2 ** 20;
  const total = osMod ? osMod.totalmem() : 0;
  return Math.min(8 * 2 ** 30, Math.max(2 ** 30, Math.floor(total / 4)));
}

const isNode = typeof process !== 'undefined' && !!(process as { versions?: { node?: string } }).versions?.node;
const osMod: typeof import('node:os') | null = isNode ? await import('node:os').catch(() => null) : null;

export class CpuPool {
  private free = new Map<string, TypedArray[]>();
  private pooledBytes = 0;
  live = 0;
  /** Bytes of live buffers and their high-water mark (memory measurements: activations, ZeRO shards). */
  liveBytes = 0;
  peakBytes = 0;
  /** Allocations that did not fit the heap (ordinary arrays, staged by the kernels). */
  spilled = 0;
  constructor(private readonly maxPooledBytes = defaultPoolBytes()) {}

  alloc(dtype: DType, size: number): CpuBuffer {
    if (heap?.shared && size > 0) {
      const addr = heap.alloc(size * bytesPerElement(dtype));
      if (addr >= 0) {
        this.live++;
        this.liveBytes += size * bytesPerElement(dtype);
        if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
        return new CpuBuffer(dtype, size, heapArray(dtype, heap.buffer(), addr, size), addr);
      }
    }
    if (heap?.shared && size > 0) this.spilled++;
    const key = storageKey(dtype, size);
    const hit = this.free.get(key)?.pop();
    this.live++;
    this.liveBytes += size * bytesPerElement(dtype);
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    if (hit) {
      this.pooledBytes -= hit.byteLength;
      return new CpuBuffer(dtype, size, hit);
    }
    return new CpuBuffer(dtype, size, arrayFor(dtype, size));
  }

  release(buf: CpuBuffer): void {
    if (buf.freed) throw new Error(`cpu: double free of a ${buf.dtype} buffer of ${buf.size} elements`);
    buf.freed = true;
    this.live--;
    const bytes = buf.size * bytesPerElement(buf.dtype);
    this.liveBytes -= bytes;
    if (buf.addr >= 0) {
      heap!.free(buf.addr, bytes);
      return;
    }
    if (bytes < POOL_MIN_BYTES || this.pooledBytes + bytes > this.maxPooledBytes) return;
    const key = storageKey(buf.dtype, buf.size);
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf.data);
    this.pooledBytes += bytes;
  }

  /** Drop every pooled array (memory goes back to the garbage collector). */
  trim(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }
}

// int64 and float64 share Float64Array storage, bfloat16 and float16 share Uint16Array.
function storageKey(dtype: DType, size: number): string {
  const kind = dtype === 'int64' ? 'float64' : dtype === 'float16' ? 'bfloat16' : dtype;
  return `${kind}:${size}`;
}

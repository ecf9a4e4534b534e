/**
 * Fast float32 matrix multiply for the `cpu` backend: WebAssembly SIMD kernels (kernels/wasm/sgemm.ts,
 * built into dist/kernels/*.wasm) plus worker threads sharing one WebAssembly.Memory.
 *
 * The API is synchronous. A call copies A and B into the (cached, grow-only) wasm memory, then runs a
 * list of tasks — pack A slivers, pack B slivers, then compute C tiles — that every participant (this
 * thread and the workers) pulls from one atomic ticket counter. This thread always takes part, so the
 * call never depends on a worker having started: workers are spawned lazily (first big multiply), are
 * `unref()`'d, and simply join jobs once they are up. This thread then blocks with `Atomics.wait` until
 * the tasks grabbed by workers have finished, and copies C out.
 *
 * Variants, best first: relaxed-SIMD FMA (6x8 micro-kernel; on Node 20 / V8 11.3 relaxed SIMD needs
 * `--experimental-wasm-relaxed-simd`, which we set with v8.setFlagsFromString before compiling), plain
 * SIMD mul+add (5x8 micro-kernel). No SharedArrayBuffer / Worker: single-thread wasm. No wasm SIMD:
 * `sgemm` returns false and the caller uses its reference loop.
 */

// ---------------------------------------------------------------------------------------------------
// Environment (Node modules are loaded dynamically so this file also loads in a browser).

type NodeMods = {
  fs: typeof import('node:fs');
  os: typeof import('node:os');
  v8: typeof import('node:v8');
  wt: typeof import('node:worker_threads');
};

const isNode = typeof process !== 'undefined' && !!(process as { versions?: { node?: string } }).versions?.node;

async function loadNodeMods(): Promise<NodeMods | null> {
  if (!isNode) return null;
  try {
    const [fs, os, v8, wt] = await Promise.all([
      import('node:fs'), import('node:os'), import('node:v8'), import('node:worker_threads'),
    ]);
    return { fs, os, v8, wt };
  } catch {
    return null;
  }
}
const node: NodeMods | null = await loadNodeMods();

// ---------------------------------------------------------------------------------------------------
// Control block layout (Int32Array over a SharedArrayBuffer, shared with the workers). The hot words
// (SEQ, TICKET, DONE) sit on separate 64-byte cache lines.

/** Job sequence number; workers Atomics.wait on it. */
const SEQ = 0;
/** Ticket counter: (job << 16) | next task; next = CLOSED once the job is finished. */
const TICKET = 16;
/** Number of finished tasks of the current job. */
const DONE = 32;
/** Set to 1 by a participant whose task threw. */
const ERR = 48;
/** Current job id (15 bits). */
const JOB = 49;
/** Worker generation: a worker whose generation is no longer current exits (see sgemmShutdown). */
const GEN = 50;
/** Number of tasks run by workers (statistics for tests). */
const WTASKS = 51;
/** Scratch-slot counter of the current batched job (slot 0 is the main thread's). */
const SLOT = 52;
/** Job parameters from here on (see P_* offsets). */
const PARAMS = 64;
const P_K = 0, P_A = 1, P_ARS = 2, P_ACS = 3, P_B = 4, P_BRS = 5, P_BCS = 6, P_AP = 7, P_BP = 8, P_C = 9,
  P_LDC = 10, P_MP = 11, P_NP = 12, P_M = 13, P_N = 14, P_KC = 15, P_MC = 16, P_NC = 17, P_TILES_N = 18,
  P_NPA = 19, P_GA = 20, P_NPB = 21, P_GB = 22, P_NTOTAL = 23,
  // batched jobs (P_MODE = 1): one task per batch item after the packing tasks of a shared operand
  P_MODE = 24, P_ABS = 25, P_BBS = 26, P_CBS = 27, P_ASH = 28, P_BSH = 29, P_SCR = 30, P_SCRSZ = 31, P_NSLOT = 32;
const CTRL_INTS = PARAMS + 48;
const CLOSED = 0xffff;
const MAX_TASKS = 0xfff0;

/** Memory below this byte address is left alone (room for anything the module may place there). */
const HEAP_BASE = 65536;
const PAGE = 65536;

// ---------------------------------------------------------------------------------------------------
// Wasm module.

interface KernelExports {
  mr(): number;
  nr(): number;
  relaxed(): number;
  packA(src: number, rs: number, cs: number, rows: number, K: number, dst: number, nsl: number): void;
  packB(src: number, rs: number, cs: number, cols: number, K: number, dst: number, nsl: number): void;
  tile(ap: number, bp: number, K: number, i0: number, mc: number, j0: number, nc: number, c: number, ldc: number, kc: number): void;
}

/** What a worker needs (sent through workerData). */
export interface SgemmWorkerData {
  lavenderSgemm: true;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctrl: SharedArrayBuffer;
  id: number;
  gen: number;
}

interface State {
  ex: KernelExports;
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  shared: boolean;
  relaxed: boolean;
  MR: number;
  NR: number;
  ctrl: Int32Array;
  f32: Float32Array;
  /** Max memory in bytes. */
  maxBytes: number;
  job: number;
  threads: number;
  workers: unknown[];
  workersStarted: boolean;
}

let state: State | null = null;
let initFailed = false;
let browserLoad: Promise<void> | null = null;

type Bytes = Uint8Array<ArrayBuffer>;

const KERNEL_DIR = '../../../../kernels/';

function kernelUrl(name: string): URL {
  return new URL(KERNEL_DIR + name, import.meta.url);
}

function readKernel(name: string): Bytes | null {
  if (!node) return null;
  try {
    return node.fs.readFileSync(kernelUrl(name)) as Uint8Array as Bytes;
  } catch {
    return null;
  }
}

/** Env override / hardware thread count, capped at 8. */
function defaultThreads(): number {
  const env = isNode ? process.env.LAVENDER_THREADS : undefined;
  if (env !== undefined && env !== '') {
    const n = Math.floor(Number(env));
    if (Number.isFinite(n) && n >= 1) return Math.min(n, 64);
  }
  let hw = 1;
  if (node) hw = typeof node.os.availableParallelism === 'function' ? node.os.availableParallelism() : node.os.cpus().length;
  else if (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) hw = navigator.hardwareConcurrency;
  return Math.max(1, Math.min(8, hw));
}

function canShare(): boolean {
  if (typeof SharedArrayBuffer === 'undefined' || typeof Atomics === 'undefined') return false;
  // Only Node lets the main thread block in Atomics.wait and gives us synchronous worker startup
  // semantics that we rely on; elsewhere stay single-threaded.
  return !!node;
}

function makeMemory(shared: boolean, initialBytes: number): { memory: WebAssembly.Memory; maxBytes: number } | null {
  const initial = Math.ceil(initialBytes / PAGE);
  for (const maximum of [65536, 32768, 16384, 8192]) {
    try {
      const desc = shared ? { initial, maximum, shared: true } : { initial, maximum };
      return { memory: new WebAssembly.Memory(desc as WebAssembly.MemoryDescriptor), maxBytes: maximum * PAGE };
    } catch {
      /* try a smaller maximum */
    }
  }
  return null;
}

function instantiate(bytesByName: (name: string) => Bytes | null, compiled?: Map<string, WebAssembly.Module>): State | null {
  const share = canShare();
  let order = share
    ? ['sgemm-relaxed.wasm', 'sgemm-simd.wasm', 'sgemm-relaxed-st.wasm', 'sgemm-simd-st.wasm']
    : ['sgemm-relaxed-st.wasm', 'sgemm-simd-st.wasm'];
  // LAVENDER_SGEMM=simd forces the plain-SIMD kernels (for comparisons).
  if (isNode && process.env.LAVENDER_SGEMM === 'simd') order = order.filter((n) => !n.startsWith('sgemm-relaxed'));
  let flagTried = false;
  for (const name of order) {
    let module = compiled?.get(name);
    if (!module) {
      const bytes = bytesByName(name);
      if (!bytes) continue;
      let ok = WebAssembly.validate(bytes);
      if (!ok && name.startsWith('sgemm-relaxed') && node && !flagTried) {
        // Node 20 (V8 11.3) ships relaxed SIMD behind a flag; enabling it before compiling works.
        flagTried = true;
        try { node.v8.setFlagsFromString('--experimental-wasm-relaxed-simd'); } catch { /* ignore */ }
        ok = WebAssembly.validate(bytes);
      }
      if (!ok) continue;
      try { module = new WebAssembly.Module(bytes); } catch { continue; }
    }
    const shared = !name.endsWith('-st.wasm');
    const mem = makeMemory(shared, HEAP_BASE + 16 * PAGE);
    if (!mem) continue;
    let inst: WebAssembly.Instance;
    try {
      inst = new WebAssembly.Instance(module, { env: { memory: mem.memory, abort: () => { throw new Error('sgemm: wasm abort'); } } });
    } catch {
      continue;
    }
    const ex = inst.exports as unknown as KernelExports;
    const MR = ex.mr(), NR = ex.nr();
    const ctrl = shared ? new Int32Array(new SharedArrayBuffer(CTRL_INTS * 4)) : new Int32Array(CTRL_INTS);
    return {
      ex, memory: mem.memory, module, shared, relaxed: ex.relaxed() === 1, MR, NR, ctrl,
      f32: new Float32Array(mem.memory.buffer), maxBytes: mem.maxBytes, job: 0,
      threads: shared ? defaultThreads() : 1, workers: [], workersStarted: false,
    };
  }
  return null;
}

function getState(): State | null {
  if (state || initFailed) return state;
  if (!node) {
    // Browser/other: compile asynchronously in the background; until then the caller's loop runs.
    if (!browserLoad) browserLoad = loadInBrowser();
    return null;
  }
  if (typeof WebAssembly === 'undefined') { initFailed = true; return null; }
  state = instantiate(readKernel);
  if (!state) initFailed = true;
  return state;
}

async function loadInBrowser(): Promise<void> {
  try {
    const names = ['sgemm-relaxed-st.wasm', 'sgemm-simd-st.wasm'];
    const compiled = new Map<string, WebAssembly.Module>();
    for (const name of names) {
      try {
        const res = await fetch(kernelUrl(name));
        if (!res.ok) continue;
        const bytes = new Uint8Array(await res.arrayBuffer());
        if (!WebAssembly.validate(bytes)) continue;
        compiled.set(name, await WebAssembly.compile(bytes));
        break;
      } catch { /* next */ }
    }
    state = instantiate(() => null, compiled);
    if (!state) initFailed = true;
  } catch {
    initFailed = true;
  }
}

// ---------------------------------------------------------------------------------------------------
// Workers.

function startWorkers(s: State): void {
  s.workersStarted = true;
  if (!node || !s.shared || s.threads <= 1) return;
  const url = new URL('./sgemm-worker.js', import.meta.url);
  for (let id = 1; id < s.threads; id++) {
    try {
      const data: SgemmWorkerData = {
        lavenderSgemm: true, module: s.module, memory: s.memory, ctrl: s.ctrl.buffer as SharedArrayBuffer, id, gen: Atomics.load(s.ctrl, GEN),
      };
      const w = new node.wt.Worker(url, { workerData: data, stdout: false, stderr: false });
      w.unref();
      // A worker that fails to start never takes a ticket, so nothing waits on it.
      w.on('error', () => { /* ignored: the main thread does the work */ });
      s.workers.push(w);
    } catch {
      break;
    }
  }
}

/**
 * Asks the worker threads to exit (they are unref()'d, so this is never needed to let a process end).
 * Workers are not terminate()d: one may hold a task of a job that is still being joined, so each one
 * finishes what it holds and leaves its loop when it sees that its generation is over.
 */
export function sgemmShutdown(): void {
  const s = state;
  if (!s || !s.shared) return;
  Atomics.add(s.ctrl, GEN, 1);
  Atomics.add(s.ctrl, SEQ, 1);
  Atomics.notify(s.ctrl, SEQ);
  s.workers = [];
  s.workersStarted = false;
}

// ---------------------------------------------------------------------------------------------------
// Task execution (shared with sgemm-worker.ts).

function grab(ctrl: Int32Array, job: number, total: number): number {
  for (;;) {
    const v = Atomics.load(ctrl, TICKET);
    if (v >>> 16 !== job) return -1;
    const n = v & 0xffff;
    if (n >= total) return -1;
    if (Atomics.compareExchange(ctrl, TICKET, v, v + 1) === v) return n;
  }
}

function runTask(ex: KernelExports, p: Int32Array, MR: number, NR: number, t: number, slot: number): void {
  const o = PARAMS;
  const K = p[o + P_K];
  const npa = p[o + P_NPA], npb = p[o + P_NPB];
  if (t < npa) {
    const ga = p[o + P_GA];
    const r0 = t * ga * MR;
    const nsl = Math.min(ga, p[o + P_MP] / MR - t * ga);
    const src = p[o + P_A] + r0 * p[o + P_ARS] * 4;
    ex.packA(src, p[o + P_ARS], p[o + P_ACS], p[o + P_M] - r0, K, p[o + P_AP] + r0 * K * 4, nsl);
    return;
  }
  t -= npa;
  if (t < npb) {
    const gb = p[o + P_GB];
    const c0 = t * gb * NR;
    const nsl = Math.min(gb, p[o + P_NP] / NR - t * gb);
    const src = p[o + P_B] + c0 * p[o + P_BCS] * 4;
    ex.packB(src, p[o + P_BRS], p[o + P_BCS], p[o + P_N] - c0, K, p[o + P_BP] + c0 * K * 4, nsl);
    return;
  }
  t -= npb;
  if (p[o + P_MODE] === 1) {
    runItem(ex, p, MR, NR, t, slot);
    return;
  }
  const tilesN = p[o + P_TILES_N];
  const ti = Math.floor(t / tilesN), tj = t - ti * tilesN;
  const MC = p[o + P_MC], NC = p[o + P_NC];
  const i0 = ti * MC, j0 = tj * NC;
  const mc = Math.min(MC, p[o + P_MP] - i0), nc = Math.min(NC, p[o + P_NP] - j0);
  ex.tile(p[o + P_AP], p[o + P_BP], K, i0, mc, j0, nc, p[o + P_C], p[o + P_LDC], p[o + P_KC]);
}

/** One batch item of a batched job: pack its own operands into the slot's scratch, then all its C tiles. */
function runItem(ex: KernelExports, p: Int32Array, MR: number, NR: number, item: number, slot: number): void {
  const o = PARAMS;
  if (slot < 0 || slot >= p[o + P_NSLOT]) throw new Error('sgemm: no scratch slot');
  const K = p[o + P_K], M = p[o + P_M], N = p[o + P_N], Mp = p[o + P_MP], Np = p[o + P_NP];
  let scr = p[o + P_SCR] + slot * p[o + P_SCRSZ];
  let ap = p[o + P_AP], bp = p[o + P_BP];
  if (!p[o + P_ASH]) {
    ap = scr;
    ex.packA(p[o + P_A] + item * p[o + P_ABS] * 4, p[o + P_ARS], p[o + P_ACS], M, K, ap, Mp / MR);
    scr += Mp * K * 4;
  }
  if (!p[o + P_BSH]) {
    bp = scr;
    ex.packB(p[o + P_B] + item * p[o + P_BBS] * 4, p[o + P_BRS], p[o + P_BCS], N, K, bp, Np / NR);
  }
  const c = p[o + P_C] + item * p[o + P_CBS] * 4, ldc = p[o + P_LDC], kc = p[o + P_KC];
  const MC = p[o + P_MC], NC = p[o + P_NC];
  for (let i0 = 0; i0 < Mp; i0 += MC) {
    const mc = Math.min(MC, Mp - i0);
    for (let j0 = 0; j0 < Np; j0 += NC) ex.tile(ap, bp, K, i0, mc, j0, Math.min(NC, Np - j0), c, ldc, kc);
  }
}

/**
 * Pulls tasks of the current job until none are left. Used by the main thread and by the workers.
 * @internal
 */
export function _participate(ex: KernelExports, ctrl: Int32Array, MR: number, NR: number, worker = false): void {
  const job = Atomics.load(ctrl, JOB);
  // Parameters are published before JOB (and JOB before the ticket opens), so if a grab below succeeds
  // for `job`, these reads saw that job's parameters.
  const total = ctrl[PARAMS + P_NTOTAL];
  const npack = ctrl[PARAMS + P_NPA] + ctrl[PARAMS + P_NPB];
  // Scratch slot for batched jobs: the main thread has 0, a worker claims one with its first task
  // (a successful grab means the job is live, so SLOT was reset for it).
  let slot = worker ? -1 : 0;
  let t: number;
  while ((t = grab(ctrl, job, total)) >= 0) {
    if (slot < 0) slot = Atomics.add(ctrl, SLOT, 1);
    try {
      if (t >= npack) {
        // Compute tasks need every packing task finished.
        let d: number;
        while ((d = Atomics.load(ctrl, DONE)) < npack) Atomics.wait(ctrl, DONE, d, 50);
      }
      runTask(ex, ctrl, MR, NR, t, slot);
    } catch {
      Atomics.store(ctrl, ERR, 1);
    }
    if (worker) Atomics.add(ctrl, WTASKS, 1);
    const d = Atomics.add(ctrl, DONE, 1) + 1;
    if (d === npack || d === total) Atomics.notify(ctrl, DONE);
  }
}

/** Worker main loop. @internal */
export function _workerLoop(data: SgemmWorkerData): void {
  const spinUs = Number(process.env.LAVENDER_SGEMM_SPIN_US ?? 100);
  const inst = new WebAssembly.Instance(data.module, { env: { memory: data.memory, abort: () => { throw new Error('sgemm: wasm abort'); } } });
  const ex = inst.exports as unknown as KernelExports;
  const MR = ex.mr(), NR = ex.nr();
  const ctrl = new Int32Array(data.ctrl);
  let seq = Atomics.load(ctrl, SEQ);
  // Join a job that may already be running.
  if (Atomics.load(ctrl, GEN) !== data.gen) return;
  _participate(ex, ctrl, MR, NR, true);
  for (;;) {
    // Spin a little before sleeping: back-to-back multiplies (a training step) then start without the
    // futex wake-up latency.
    if (spinUs > 0 && Atomics.load(ctrl, SEQ) === seq) {
      const until = performance.now() + spinUs / 1000;
      for (let i = 1; Atomics.load(ctrl, SEQ) === seq; i++) if ((i & 1023) === 0 && performance.now() > until) break;
    }
    Atomics.wait(ctrl, SEQ, seq);
    seq = Atomics.load(ctrl, SEQ);
    if (Atomics.load(ctrl, GEN) !== data.gen) return;
    _participate(ex, ctrl, MR, NR, true);
  }
}

// ---------------------------------------------------------------------------------------------------
// Tuning.

/** Below this many multiply-adds (M*N*K) `sgemm` returns false: the caller's plain loop is as fast. */
let minWork = 4096;
/** At or above this many multiply-adds, worker threads are used. */
let threadWork = 128 * 128 * 128;
/** K block (the B sliver, KC x NR floats, stays in L1). */
let KC = 512;
/** Target tile sizes (rows of MR, columns of NR). */
let MC_TARGET = 120;
let NC_TARGET = 512;

/** Test/bench knobs. `threads` restarts the worker pool. @internal */
export function sgemmSetOptions(o: { threads?: number; minWork?: number; threadWork?: number; kc?: number; mc?: number; nc?: number }): void {
  if (o.minWork !== undefined) minWork = o.minWork;
  if (o.threadWork !== undefined) threadWork = o.threadWork;
  if (o.kc !== undefined) KC = Math.max(1, o.kc | 0);
  if (o.mc !== undefined) MC_TARGET = Math.max(1, o.mc | 0);
  if (o.nc !== undefined) NC_TARGET = Math.max(1, o.nc | 0);
  if (o.threads !== undefined) {
    const s = getState();
    if (s) {
      sgemmShutdown();
      s.threads = s.shared ? Math.max(1, Math.floor(o.threads)) : 1;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Host side of one call.

const align = (x: number, a: number): number => Math.ceil(x / a) * a;

/** Smallest and largest element index touched by a (rows x cols) strided view, relative to its offset. */
function span(rows: number, cols: number, rs: number, cs: number): [number, number] {
  let lo = 0, hi = 0;
  const r = (rows - 1) * rs, c = (cols - 1) * cs;
  if (r < 0) lo += r; else hi += r;
  if (c < 0) lo += c; else hi += c;
  return [lo, hi];
}

function ensureMemory(s: State, bytes: number): boolean {
  const cur = s.memory.buffer.byteLength;
  if (bytes > cur) {
    if (bytes > s.maxBytes) return false;
    // Grow geometrically (at least 25%) so a sequence of slightly larger problems doesn't grow every call.
    const want = Math.min(s.maxBytes, Math.max(bytes, cur + Math.floor(cur / 4)));
    try {
      s.memory.grow(Math.ceil((want - cur) / PAGE));
    } catch {
      try { s.memory.grow(Math.ceil((bytes - cur) / PAGE)); } catch { return false; }
    }
  }
  if (s.f32.buffer !== s.memory.buffer || s.f32.length * 4 !== s.memory.buffer.byteLength) s.f32 = new Float32Array(s.memory.buffer);
  return true;
}

/** Whether a view is copied as its whole index span (else gathered densely). */
const spanCopy = (rows: number, cols: number, lo: number, hi: number): boolean => hi - lo + 1 <= rows * cols * 2 + 64;
/** Floats `copyIn` writes. */
const copySize = (rows: number, cols: number, lo: number, hi: number): number =>
  spanCopy(rows, cols, lo, hi) ? hi - lo + 1 : rows * cols;

/**
 * Copies the strided (rows x cols) view of `X` into wasm memory at byte `dst`.
 * Returns [byte address of element (0,0), row stride, col stride] in the copy.
 */
function copyIn(f32: Float32Array, dst: number, X: Float32Array, off: number, rows: number, cols: number,
  rs: number, cs: number, lo: number, hi: number): [number, number, number] {
  if (spanCopy(rows, cols, lo, hi)) {
    // Contiguous span (row-major, transposed, broadcast, ... views): one memcpy.
    f32.set(X.subarray(off + lo, off + hi + 1), dst >>> 2);
    return [dst + (-lo) * 4, rs, cs];
  }
  // Sparse view (e.g. a slice of a much bigger tensor): gather rows into a dense row-major block.
  let d = dst >>> 2;
  if (cs === 1) {
    for (let i = 0; i < rows; i++, d += cols) f32.set(X.subarray(off + i * rs, off + i * rs + cols), d);
  } else {
    for (let i = 0; i < rows; i++) {
      let p = off + i * rs;
      for (let j = 0; j < cols; j++, p += cs) f32[d++] = X[p];
    }
  }
  return [dst, cols, 1];
}

/** C[cOffset + i*ldc + j] = sum_k A[aOffset + i*aRowStride + k*aColStride] * B[bOffset + k*bRowStride + j*bColStride], for i<M, j<N (overwrites C).
 *  Returns false (doing nothing) if the fast path is not available; the caller then uses its reference loop. */
export function sgemm(M: number, N: number, K: number,
  A: Float32Array, aOffset: number, aRowStride: number, aColStride: number,
  B: Float32Array, bOffset: number, bRowStride: number, bColStride: number,
  C: Float32Array, cOffset: number, ldc: number): boolean {
  if (!(M >= 0 && N >= 0 && K >= 0)) return false;
  if (M === 0 || N === 0) return true;
  const work = M * N * K;
  if (work < minWork) return false;
  const s = getState();
  if (!s) return false;
  // Bounds checks (the reference loop gets to report bad views).
  const [clo, chi] = span(M, N, ldc, 1);
  if (cOffset + clo < 0 || cOffset + chi >= C.length) return false;
  if (K === 0) {
    for (let i = 0; i < M; i++) C.fill(0, cOffset + i * ldc, cOffset + i * ldc + N);
    return true;
  }
  const [alo, ahi] = span(M, K, aRowStride, aColStride);
  const [blo, bhi] = span(K, N, bRowStride, bColStride);
  if (aOffset + alo < 0 || aOffset + ahi >= A.length || bOffset + blo < 0 || bOffset + bhi >= B.length) return false;

  const { MR, NR } = s;
  const Mp = align(M, MR), Np = align(N, NR);
  const aN = copySize(M, K, alo, ahi), bN = copySize(K, N, blo, bhi);
  // Layout (bytes, 64-aligned): raw A | raw B | packed A (Mp x K) | packed B (K x Np) | C (Mp x Np).
  let p = HEAP_BASE;
  const aRaw = p; p = align(p + aN * 4, 64);
  const bRaw = p; p = align(p + bN * 4, 64);
  const ap = p; p = align(p + Mp * K * 4, 64);
  const bp = p; p = align(p + K * Np * 4, 64);
  const ldcW = Np;
  const cb = p; p = align(p + Mp * ldcW * 4, 64);
  if (!ensureMemory(s, p)) return false;
  const f32 = s.f32;
  const [aPtr, ars, acs] = copyIn(f32, aRaw, A, aOffset, M, K, aRowStride, aColStride, alo, ahi);
  const [bPtr, brs, bcs] = copyIn(f32, bRaw, B, bOffset, K, N, bRowStride, bColStride, blo, bhi);

  // Task list: packing groups, then C tiles.
  const useThreads = s.shared && s.threads > 1 && work >= threadWork;
  if (useThreads && !s.workersStarted) startWorkers(s);
  const T = useThreads ? s.threads : 1;
  const slA = Mp / MR, slB = Np / NR;
  // Packing groups: about 4 per participant, at least 8 slivers each.
  const ga = Math.max(8, Math.ceil(slA / (4 * T)));
  const gb = Math.max(8, Math.ceil(slB / (4 * T)));
  const npa = Math.ceil(slA / ga), npb = Math.ceil(slB / gb);
  let MC = Math.max(MR, Math.floor(MC_TARGET / MR) * MR);
  let NC = Math.max(NR, Math.floor(NC_TARGET / NR) * NR);
  if (T > 1) {
    // Enough tiles to balance the load (>= 3 per participant where the problem allows it).
    while (Math.ceil(Mp / MC) * Math.ceil(Np / NC) < 3 * T && (MC > 4 * MR || NC > 8 * NR)) {
      if (MC >= NC / 2 && MC > 4 * MR) MC = Math.max(MR, Math.floor(MC / 2 / MR) * MR);
      else NC = Math.max(NR, Math.floor(NC / 2 / NR) * NR);
    }
  }
  const tilesM = Math.ceil(Mp / MC), tilesN = Math.ceil(Np / NC);
  const total = npa + npb + tilesM * tilesN;
  if (total > MAX_TASKS) return false;

  const ctrl = s.ctrl;
  const o = PARAMS;
  ctrl[o + P_K] = K;
  ctrl[o + P_A] = aPtr; ctrl[o + P_ARS] = ars; ctrl[o + P_ACS] = acs;
  ctrl[o + P_B] = bPtr; ctrl[o + P_BRS] = brs; ctrl[o + P_BCS] = bcs;
  ctrl[o + P_AP] = ap; ctrl[o + P_BP] = bp; ctrl[o + P_C] = cb; ctrl[o + P_LDC] = ldcW;
  ctrl[o + P_MP] = Mp; ctrl[o + P_NP] = Np; ctrl[o + P_M] = M; ctrl[o + P_N] = N;
  ctrl[o + P_KC] = Math.min(KC, K); ctrl[o + P_MC] = MC; ctrl[o + P_NC] = NC; ctrl[o + P_TILES_N] = tilesN;
  ctrl[o + P_NPA] = npa; ctrl[o + P_GA] = ga; ctrl[o + P_NPB] = npb; ctrl[o + P_GB] = gb; ctrl[o + P_NTOTAL] = total;
  ctrl[o + P_MODE] = 0;
  runJob(s, total, useThreads);

  // Copy C out of the padded buffer.
  const cIdx = cb >>> 2;
  if (ldc === N && ldcW === N) {
    C.set(f32.subarray(cIdx, cIdx + M * N), cOffset);
  } else {
    for (let i = 0; i < M; i++) C.set(f32.subarray(cIdx + i * ldcW, cIdx + i * ldcW + N), cOffset + i * ldc);
  }
  return true;
}

/** Runs the published job's `total` tasks: here alone, or with the workers. */
function runJob(s: State, total: number, useThreads: boolean): void {
  const ctrl = s.ctrl, MR = s.MR, NR = s.NR;
  if (!useThreads) {
    for (let t = 0; t < total; t++) runTask(s.ex, ctrl, MR, NR, t, 0);
    return;
  }
  const job = s.job = (s.job + 1) & 0x7fff;
  Atomics.store(ctrl, DONE, 0);
  Atomics.store(ctrl, ERR, 0);
  Atomics.store(ctrl, SLOT, 1);
  Atomics.store(ctrl, JOB, job);
  Atomics.store(ctrl, TICKET, job << 16);
  Atomics.add(ctrl, SEQ, 1);
  Atomics.notify(ctrl, SEQ);
  _participate(s.ex, ctrl, MR, NR);
  let d: number;
  while ((d = Atomics.load(ctrl, DONE)) < total) Atomics.wait(ctrl, DONE, d);
  Atomics.store(ctrl, TICKET, (job << 16) | CLOSED);
  if (Atomics.load(ctrl, ERR)) {
    // A task failed somewhere: stop using threads and redo the whole job here.
    sgemmShutdown();
    s.threads = 1;
    for (let t = 0; t < total; t++) runTask(s.ex, ctrl, MR, NR, t, 0);
  }
}

/** Bytes of raw operands and C per group of a batched call (groups stay in L2 between copy-in, compute and copy-out). */
let groupBytes = 1 << 21;

/** Test/bench knob for the batched path. @internal */
export function sgemmSetBatchOptions(o: { groupBytes?: number }): void {
  if (o.groupBytes !== undefined) groupBytes = Math.max(1, o.groupBytes | 0);
}

/** [lo, hi] element index span of a 3-D strided view relative to its offset. */
function span3(d0: number, s0: number, rows: number, cols: number, rs: number, cs: number): [number, number] {
  const [lo, hi] = span(rows, cols, rs, cs);
  const b = (d0 - 1) * s0;
  return b < 0 ? [lo + b, hi] : [lo, hi + b];
}

/**
 * Batched C_p = A_p @ B_p for p < batch, where X_p is the (rows x cols) view of X at xOffset + p*xBatchStride
 * (a batch stride of 0 broadcasts one matrix to every item; it is packed once). C_p is written at
 * cOffset + p*cBatchStride with row stride ldc (items must not overlap). One worker-pool job per group of
 * items (one task per item, each packing into its participant's scratch), instead of a job per item.
 * Results are bit-identical to `sgemm` on each item. Returns false (doing nothing) when the fast path is
 * unavailable.
 */
export function sgemmBatched(batch: number, M: number, N: number, K: number,
  A: Float32Array, aOffset: number, aBatchStride: number, aRowStride: number, aColStride: number,
  B: Float32Array, bOffset: number, bBatchStride: number, bRowStride: number, bColStride: number,
  C: Float32Array, cOffset: number, cBatchStride: number, ldc: number): boolean {
  if (!(batch >= 0 && M >= 0 && N >= 0 && K >= 0)) return false;
  if (batch === 1 || (aBatchStride === 0 && bBatchStride === 0 && batch > 0 && K > 0 && M * N * K >= minWork)) {
    // one matrix (or every item the same product): a plain call, copied to the other items
    if (!sgemm(M, N, K, A, aOffset, aRowStride, aColStride, B, bOffset, bRowStride, bColStride, C, cOffset, ldc)) return false;
    for (let p = 1; p < batch; p++) for (let i = 0; i < M; i++) {
      const src = cOffset + i * ldc;
      C.copyWithin(cOffset + p * cBatchStride + i * ldc, src, src + N);
    }
    return true;
  }
  if (batch === 0 || M === 0 || N === 0) return true;
  const work = batch * M * N * K;
  if (work < minWork) return false;
  const s = getState();
  if (!s) return false;
  const [clo, chi] = span3(batch, cBatchStride, M, N, ldc, 1);
  if (cOffset + clo < 0 || cOffset + chi >= C.length) return false;
  if (K === 0) {
    for (let p = 0; p < batch; p++) for (let i = 0; i < M; i++) {
      const r = cOffset + p * cBatchStride + i * ldc;
      C.fill(0, r, r + N);
    }
    return true;
  }
  const [alo, ahi] = span(M, K, aRowStride, aColStride);
  const [blo, bhi] = span(K, N, bRowStride, bColStride);
  const [alo3, ahi3] = span3(batch, aBatchStride, M, K, aRowStride, aColStride);
  const [blo3, bhi3] = span3(batch, bBatchStride, K, N, bRowStride, bColStride);
  if (aOffset + alo3 < 0 || aOffset + ahi3 >= A.length || bOffset + blo3 < 0 || bOffset + bhi3 >= B.length) return false;

  const T0 = s.shared ? s.threads : 1;
  const itemWork = M * N * K;
  const eachItem = (): boolean => {
    for (let p = 0; p < batch; p++) {
      const ok = sgemm(M, N, K, A, aOffset + p * aBatchStride, aRowStride, aColStride, B, bOffset + p * bBatchStride, bRowStride, bColStride,
        C, cOffset + p * cBatchStride, ldc);
      if (!ok) { if (p === 0) return false; throw new Error('sgemm: fast path became unavailable mid-batch'); }
    }
    return true;
  };
  // Few big items: each one split over the threads is better balanced.
  if (T0 > 1 && batch < 2 * T0 && itemWork >= threadWork) return eachItem();

  const { MR, NR } = s;
  const Mp = align(M, MR), Np = align(N, NR);
  const aSh = aBatchStride === 0, bSh = bBatchStride === 0;
  const aN = copySize(M, K, alo, ahi), bN = copySize(K, N, blo, bhi);
  const aItem = align(aN, 16), bItem = align(bN, 16), cItem = Mp * Np;
  const useThreads = s.shared && s.threads > 1 && work >= threadWork;
  if (useThreads && !s.workersStarted) startWorkers(s);
  const T = useThreads ? s.threads : 1;
  // Items per group: the group's raw operands and C fit `groupBytes`, at least 2 items per participant.
  const itemBytes = 4 * ((aSh ? 0 : aItem) + (bSh ? 0 : bItem) + cItem);
  let G = Math.max(2 * T, Math.floor(groupBytes / itemBytes), 1);
  const groups = Math.ceil(batch / G);
  G = Math.ceil(batch / groups);
  const nslot = T + 2;
  const scrBytes = align(((aSh ? 0 : Mp * K) + (bSh ? 0 : K * Np)) * 4, 64);
  // Layout: shared raw A | shared raw B | shared packed A | shared packed B | group raw A | group raw B | group C | scratch slots.
  let q = HEAP_BASE;
  const aShRaw = q; if (aSh) q = align(q + aN * 4, 64);
  const bShRaw = q; if (bSh) q = align(q + bN * 4, 64);
  const apSh = q; if (aSh) q = align(q + Mp * K * 4, 64);
  const bpSh = q; if (bSh) q = align(q + K * Np * 4, 64);
  const aRaw = q; if (!aSh) q = align(q + G * aItem * 4, 64);
  const bRaw = q; if (!bSh) q = align(q + G * bItem * 4, 64);
  const cb = q; q = align(q + G * cItem * 4, 64);
  const scr = q; q += nslot * scrBytes;
  // Items too big to hold a group in wasm memory: one call per item (each needs only its own space).
  if (!ensureMemory(s, q)) return eachItem();
  const f32 = s.f32;

  const slA = Mp / MR, slB = Np / NR;
  const ga = Math.max(8, Math.ceil(slA / (4 * T))), gb = Math.max(8, Math.ceil(slB / (4 * T)));
  const npaSh = aSh ? Math.ceil(slA / ga) : 0, npbSh = bSh ? Math.ceil(slB / gb) : 0;
  const MC = Math.max(MR, Math.floor(MC_TARGET / MR) * MR), NC = Math.max(NR, Math.floor(NC_TARGET / NR) * NR);
  if (G + npaSh + npbSh > MAX_TASKS) return eachItem();

  const ctrl = s.ctrl, o = PARAMS;
  ctrl[o + P_K] = K; ctrl[o + P_M] = M; ctrl[o + P_N] = N; ctrl[o + P_MP] = Mp; ctrl[o + P_NP] = Np;
  ctrl[o + P_KC] = Math.min(KC, K); ctrl[o + P_MC] = MC; ctrl[o + P_NC] = NC;
  ctrl[o + P_GA] = ga; ctrl[o + P_GB] = gb;
  ctrl[o + P_AP] = apSh; ctrl[o + P_BP] = bpSh; ctrl[o + P_C] = cb; ctrl[o + P_LDC] = Np; ctrl[o + P_CBS] = cItem;
  ctrl[o + P_ASH] = aSh ? 1 : 0; ctrl[o + P_BSH] = bSh ? 1 : 0;
  ctrl[o + P_ABS] = aItem; ctrl[o + P_BBS] = bItem;
  ctrl[o + P_SCR] = scr; ctrl[o + P_SCRSZ] = scrBytes; ctrl[o + P_NSLOT] = nslot;
  ctrl[o + P_MODE] = 1;
  let aPtr0 = 0, bPtr0 = 0;
  if (aSh) {
    const [ptr, rs, cs] = copyIn(f32, aShRaw, A, aOffset, M, K, aRowStride, aColStride, alo, ahi);
    ctrl[o + P_A] = ptr; ctrl[o + P_ARS] = rs; ctrl[o + P_ACS] = cs;
  }
  if (bSh) {
    const [ptr, rs, cs] = copyIn(f32, bShRaw, B, bOffset, K, N, bRowStride, bColStride, blo, bhi);
    ctrl[o + P_B] = ptr; ctrl[o + P_BRS] = rs; ctrl[o + P_BCS] = cs;
  }
  for (let p0 = 0, g = 0; p0 < batch; p0 += G, g++) {
    const n = Math.min(G, batch - p0);
    for (let i = 0; i < n; i++) {
      const p = p0 + i;
      if (!aSh) {
        const [ptr, rs, cs] = copyIn(f32, aRaw + i * aItem * 4, A, aOffset + p * aBatchStride, M, K, aRowStride, aColStride, alo, ahi);
        if (i === 0) { aPtr0 = ptr; ctrl[o + P_ARS] = rs; ctrl[o + P_ACS] = cs; }
      }
      if (!bSh) {
        const [ptr, rs, cs] = copyIn(f32, bRaw + i * bItem * 4, B, bOffset + p * bBatchStride, K, N, bRowStride, bColStride, blo, bhi);
        if (i === 0) { bPtr0 = ptr; ctrl[o + P_BRS] = rs; ctrl[o + P_BCS] = cs; }
      }
    }
    if (!aSh) ctrl[o + P_A] = aPtr0;
    if (!bSh) ctrl[o + P_B] = bPtr0;
    // The shared operand is packed by the first group's job (packing tasks before its items).
    const npa = g === 0 ? npaSh : 0, npb = g === 0 ? npbSh : 0;
    ctrl[o + P_NPA] = npa; ctrl[o + P_NPB] = npb;
    const total = npa + npb + n;
    ctrl[o + P_NTOTAL] = total;
    runJob(s, total, useThreads && n > 1);
    // Copy C out.
    for (let i = 0; i < n; i++) {
      const src = (cb >>> 2) + i * cItem, dst = cOffset + (p0 + i) * cBatchStride;
      if (ldc === N && Np === N) C.set(f32.subarray(src, src + M * N), dst);
      else for (let r = 0; r < M; r++) C.set(f32.subarray(src + r * Np, src + r * Np + N), dst + r * ldc);
    }
  }
  return true;
}

/** Counters for tests and benches. @internal */
export function _sgemmStats(): { workerTasks: number; workers: number } {
  const s = state;
  if (!s) return { workerTasks: 0, workers: 0 };
  return { workerTasks: Atomics.load(s.ctrl, WTASKS), workers: s.workers.length };
}

/** Which variant is in use, e.g. {simd: true, relaxed: true, threads: 2} — for `lavender info` and benches. */
export function sgemmInfo(): { simd: boolean; relaxed: boolean; threads: number } {
  const s = getState();
  if (!s) return { simd: false, relaxed: false, threads: 1 };
  return { simd: true, relaxed: s.relaxed, threads: s.shared ? s.threads : 1 };
}

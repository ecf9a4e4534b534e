/**
 * The cpu backend's wasm kernels (kernels/wasm/cpu.ts, built into dist/kernels/cpu-*.wasm) and the thread
 * pool that runs them. The module is instantiated on the heap's memory (../heap.ts), so kernels read and
 * write tensors in place; worker threads instantiate it on the same shared memory.
 *
 * A job is a kernel kind plus parameters (written to the job block) and a number of tasks. The calling
 * thread always runs tasks itself, so a job never depends on a worker having started; workers that are
 * awake pull tasks from the same atomic ticket counter. Idle workers spin for a few microseconds (back to
 * back kernels then start without a futex wake-up) and then sleep in Atomics.wait, so they cost nothing
 * between jobs. Tasks of a job write disjoint outputs and the task split never depends on the number of
 * threads, so results are the same with any LAVENDER_THREADS.
 *
 * Variants, best first: relaxed-SIMD FMA (on Node 20 / V8 11.3 relaxed SIMD needs
 * `--experimental-wasm-relaxed-simd`, set with v8.setFlagsFromString before compiling), plain SIMD. No
 * wasm SIMD: `kernels()` is null and the backend runs its TypeScript reference loops.
 */
import { heap, type Heap } from '../heap.js';

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
    const [fs, os, v8, wt] = await Promise.all([import('node:fs'), import('node:os'), import('node:v8'), import('node:worker_threads')]);
    return { fs, os, v8, wt };
  } catch {
    return null;
  }
}
const node: NodeMods | null = await loadNodeMods();

// ---------------------------------------------------------------------------------------------------
// Job kinds and the fixed memory map (kernels/wasm/common.ts, kernels/wasm/cpu.ts).

export const JOB_ADDR = 65536 + 12288;
export const GEMM = 1, GEMM_BATCHED = 2, UNARY = 3, BINARY = 4, COPY = 5, SUM = 6, SOFTMAX = 7, SOFTMAX_BWD = 8,
  LAYERNORM = 9, LAYERNORM_BWD = 10, SILU_BWD = 11, ADAM = 12, SGD = 13, ATTN_FWD = 14, ATTN_BWD = 15,
  SWIGLU = 16, SWIGLU_BWD = 17, ROTARY = 18;
/** Thread slots with private scratch in the module's low memory. */
const MAX_SLOTS = 16;

export interface KernelExports {
  mr(): number;
  nr(): number;
  relaxed(): number;
  initConstants(): void;
  expf32(x: number): number;
  attentionScratch(backward: number, Tq: number, Tk: number, D: number, Dv: number, Br: number): number;
  runTask(job: number, t: number, slot: number): void;
}

// ---------------------------------------------------------------------------------------------------
// Control block (Int32Array over a SharedArrayBuffer shared with the workers); hot words on their own
// 64-byte lines.

const SEQ = 0, TICKET = 16, DONE = 32, ERR = 48, JOB = 49, GEN = 50, WTASKS = 51, SLOT = 52, NTASKS = 53, BARRIER = 54;
const CTRL_INTS = 64;
const CLOSED = 0xffff;
// The ticket is one 64-bit word: the job number (31 bits, wrapping after 2^31 jobs) above the count of
// tasks handed out. A worker descheduled between reading a job's parameters and grabbing must never take a
// task of a later job under the same number: with a 15-bit number that happened after 32,768 small jobs
// (a stall of ~0.1 s on a loaded machine), and the stale task count or barrier ran a task past the new
// job's end (a trap) or before its packing finished (wrong numbers).
const JOB_MASK = 0x7fffffff;
const tickets = new WeakMap<ArrayBufferLike, BigInt64Array>();
function ticketWord(ctrl: Int32Array): BigInt64Array {
  let t = tickets.get(ctrl.buffer);
  if (!t) tickets.set(ctrl.buffer, (t = new BigInt64Array(ctrl.buffer, TICKET * 4, 1)));
  return t;
}
const ticket = (job: number, n: number): bigint => (BigInt(job) << 32n) | BigInt(n);
export const MAX_TASKS = 0xfff0;

/** What a worker needs (sent through workerData). */
export interface KernelWorkerData {
  lavenderKernels: true;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctrl: SharedArrayBuffer;
  gen: number;
  spinUs: number;
}

export interface Kernels {
  ex: KernelExports;
  heap: Heap;
  module: WebAssembly.Module;
  relaxed: boolean;
  MR: number;
  NR: number;
  /** Threads that run jobs (this one included). */
  threads: number;
  /** f64 view of the job block. */
  readonly params: Float64Array;
  f32(): Float32Array;
}

interface PoolState {
  ctrl: Int32Array;
  job: number;
  workers: unknown[];
  started: boolean;
}

let K: Kernels | null = null;
let browserLoad: Promise<void> | null = null;
let pool: PoolState | null = null;
let initFailed = false;
let f32View: Float32Array | null = null;
let paramsView: Float64Array | null = null;

const KERNEL_DIR = '../../../../kernels/';

function kernelUrl(name: string): URL {
  return new URL(KERNEL_DIR + name, import.meta.url);
}

function envInt(name: string): number | undefined {
  const v = isNode ? process.env[name] : undefined;
  if (v === undefined || v === '') return undefined;
  const n = Math.floor(Number(v));
  return Number.isFinite(n) ? n : undefined;
}

/** LAVENDER_THREADS, else the hardware thread count, capped at 8. */
function defaultThreads(): number {
  const env = envInt('LAVENDER_THREADS');
  if (env !== undefined && env >= 1) return Math.min(env, 64);
  let hw = 1;
  if (node) hw = typeof node.os.availableParallelism === 'function' ? node.os.availableParallelism() : node.os.cpus().length;
  return Math.max(1, Math.min(8, hw));
}

/** The module files to try, best first: the shared-memory builds need a shared heap (threads). */
function kernelFiles(h: Heap): string[] {
  const order = h.shared ? ['cpu-relaxed.wasm', 'cpu-simd.wasm'] : ['cpu-relaxed-st.wasm', 'cpu-simd-st.wasm'];
  // LAVENDER_SGEMM=simd forces the plain-SIMD kernels (for comparisons).
  return isNode && process.env.LAVENDER_SGEMM === 'simd' ? order.filter((n) => !n.includes('relaxed')) : order;
}

function instantiate(h: Heap): Kernels | null {
  if (!node) return null;
  let flagTried = false;
  for (const name of kernelFiles(h)) {
    let bytes: Uint8Array<ArrayBuffer>;
    try { bytes = node.fs.readFileSync(kernelUrl(name)) as Uint8Array<ArrayBuffer>; } catch { continue; }
    let ok = WebAssembly.validate(bytes);
    if (!ok && name.includes('relaxed') && !flagTried) {
      // Node 20 (V8 11.3) ships relaxed SIMD behind a flag; enabling it before compiling works.
      flagTried = true;
      try { node.v8.setFlagsFromString('--experimental-wasm-relaxed-simd'); } catch { /* ignore */ }
      ok = WebAssembly.validate(bytes);
    }
    if (!ok) continue;
    const k = fromModule(h, new WebAssembly.Module(bytes));
    if (k) return k;
  }
  return null;
}

/** In a browser: fetch and compile the first module that validates (in the background), then set K. */
async function loadInBrowser(h: Heap): Promise<void> {
  for (const name of kernelFiles(h)) {
    try {
      const res = await fetch(kernelUrl(name));
      if (!res.ok) continue;
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (!WebAssembly.validate(bytes)) continue;
      const k = fromModule(h, await WebAssembly.compile(bytes));
      if (k) {
        K = k;
        return;
      }
    } catch { /* the next file */ }
  }
  initFailed = true;
}

function fromModule(h: Heap, module: WebAssembly.Module): Kernels | null {
  try {
    const inst = new WebAssembly.Instance(module, { env: { memory: h.memory, abort: () => { throw new Error('cpu kernels: wasm abort'); } } });
    const ex = inst.exports as unknown as KernelExports;
    ex.initConstants();
    const threads = h.shared ? Math.min(defaultThreads(), MAX_SLOTS - 1) : 1;
    return {
      ex, heap: h, module, relaxed: ex.relaxed() === 1, MR: ex.mr(), NR: ex.nr(), threads,
      // a view of the job block, made again after an unshared memory grows (its old buffer detaches)
      get params(): Float64Array {
        const b = h.buffer();
        if (!paramsView || paramsView.buffer !== b) paramsView = new Float64Array(b, JOB_ADDR, 512);
        return paramsView;
      },
      f32: () => {
        const b = h.buffer();
        if (!f32View || f32View.buffer !== b) f32View = new Float32Array(b);
        return f32View;
      },
    };
  } catch {
    return null;
  }
}

/** The kernels, or null where wasm SIMD (or its file) is unavailable or LAVENDER_CPU_REFERENCE is set. */
export function kernels(): Kernels | null {
  if (K || initFailed) return K;
  if (!heap || (isNode && process.env.LAVENDER_CPU_REFERENCE)) { initFailed = true; return null; }
  if (!node) {
    // a browser compiles asynchronously; until the kernels are in, callers run their TypeScript loops
    if (!browserLoad) browserLoad = loadInBrowser(heap);
    return null;
  }
  K = instantiate(heap);
  if (!K) initFailed = true;
  return K;
}

// ---------------------------------------------------------------------------------------------------
// The pool.

function poolOf(k: Kernels): PoolState {
  if (!pool) pool = { ctrl: new Int32Array(new SharedArrayBuffer(CTRL_INTS * 4)), job: 0, workers: [], started: false };
  if (!pool.started) startWorkers(k, pool);
  return pool;
}

function startWorkers(k: Kernels, p: PoolState): void {
  p.started = true;
  if (!node || !k.heap.shared || k.threads <= 1) return;
  const url = new URL('./worker.js', import.meta.url);
  for (let id = 1; id < k.threads; id++) {
    try {
      const data: KernelWorkerData = {
        lavenderKernels: true, module: k.module, memory: k.heap.memory, ctrl: p.ctrl.buffer as SharedArrayBuffer,
        gen: Atomics.load(p.ctrl, GEN), spinUs: envInt('LAVENDER_SPIN_US') ?? 50,
      };
      const w = new node.wt.Worker(url, { workerData: data, stdout: false, stderr: false });
      w.unref();
      // A worker that fails to start never takes a ticket, so nothing waits on it.
      w.on('error', () => { /* the calling thread does the work */ });
      p.workers.push(w);
    } catch {
      break;
    }
  }
}

/**
 * Asks the worker threads to exit (they are unref()'d, so this is never needed to let a process end).
 * A worker finishes the task it holds and leaves its loop when it sees that its generation is over.
 */
export function shutdownWorkers(): void {
  if (!pool) return;
  Atomics.add(pool.ctrl, GEN, 1);
  Atomics.add(pool.ctrl, SEQ, 1);
  Atomics.notify(pool.ctrl, SEQ);
  pool.workers = [];
  pool.started = false;
}

/** Test/bench knob: the number of threads (restarts the pool). @internal */
export function setThreads(n: number): void {
  const k = kernels();
  if (!k) return;
  shutdownWorkers();
  k.threads = k.heap.shared ? Math.max(1, Math.min(MAX_SLOTS - 1, Math.floor(n))) : 1;
}

/** The next task of job `job` (of `total`), or -1 when that job has none left or is not the open one. @internal */
export function _grab(ctrl: Int32Array, job: number, total: number): number {
  const word = ticketWord(ctrl);
  for (;;) {
    const v = Atomics.load(word, 0);
    if (Number(v >> 32n) !== job) return -1;
    const n = Number(v & 0xffffffffn);
    if (n >= total) return -1;
    if (Atomics.compareExchange(word, 0, v, v + 1n) === v) return n;
  }
}

/** Open job `job`'s tickets (after its parameters are published), or close them. @internal */
export function _openTickets(ctrl: Int32Array, job: number, open: boolean): void {
  Atomics.store(ticketWord(ctrl), 0, ticket(job, open ? 0 : CLOSED));
}

/**
 * Pulls tasks of the current job until none are left (the calling thread and the workers). Tasks at or
 * after BARRIER start only when every task before it has finished (gemm: packing before products).
 * @internal
 */
export function _participate(ex: KernelExports, ctrl: Int32Array, worker: boolean): void {
  const job = Atomics.load(ctrl, JOB);
  // Parameters are published before JOB (and JOB before the ticket opens), so if a grab below succeeds
  // for `job`, these reads saw that job's parameters.
  const total = Atomics.load(ctrl, NTASKS), barrier = Atomics.load(ctrl, BARRIER);
  let slot = worker ? -1 : 0;
  let t: number;
  while ((t = _grab(ctrl, job, total)) >= 0) {
    if (slot < 0) slot = Atomics.add(ctrl, SLOT, 1);
    try {
      if (t >= barrier && barrier > 0) {
        let d: number;
        while ((d = Atomics.load(ctrl, DONE)) < barrier) Atomics.wait(ctrl, DONE, d, 50);
      }
      if (slot >= MAX_SLOTS) throw new Error('cpu kernels: out of thread slots');
      ex.runTask(JOB_ADDR, t, slot);
    } catch {
      Atomics.store(ctrl, ERR, 1);
    }
    if (worker) Atomics.add(ctrl, WTASKS, 1);
    const d = Atomics.add(ctrl, DONE, 1) + 1;
    if (d === barrier || d === total) Atomics.notify(ctrl, DONE);
  }
}

/** Worker main loop. @internal */
export function _workerLoop(data: KernelWorkerData): void {
  const inst = new WebAssembly.Instance(data.module, { env: { memory: data.memory, abort: () => { throw new Error('cpu kernels: wasm abort'); } } });
  const ex = inst.exports as unknown as KernelExports;
  const ctrl = new Int32Array(data.ctrl);
  let seq = Atomics.load(ctrl, SEQ);
  if (Atomics.load(ctrl, GEN) !== data.gen) return;
  _participate(ex, ctrl, true);
  for (;;) {
    // Spin a little before sleeping: the next kernel of a training step usually follows within microseconds.
    if (data.spinUs > 0 && Atomics.load(ctrl, SEQ) === seq) {
      const until = performance.now() + data.spinUs / 1000;
      for (let i = 1; Atomics.load(ctrl, SEQ) === seq; i++) if ((i & 255) === 0 && performance.now() > until) break;
    }
    Atomics.wait(ctrl, SEQ, seq);
    seq = Atomics.load(ctrl, SEQ);
    if (Atomics.load(ctrl, GEN) !== data.gen) return;
    _participate(ex, ctrl, true);
  }
}

/**
 * Runs the job whose parameters are in k.params: `tasks` tasks, on the worker threads too when
 * `parallel` (the caller's judgement that the job is big enough to pay for waking them). Tasks at or
 * after `barrier` (if > 0) wait for all tasks before it. Throws if a task trapped.
 */
export function runJob(k: Kernels, tasks: number, parallel: boolean, barrier = 0): void {
  if (tasks <= 0) return;
  if (tasks > MAX_TASKS) throw new Error(`cpu kernels: ${tasks} tasks in one job (at most ${MAX_TASKS})`);
  if (!parallel || k.threads <= 1 || tasks === 1) {
    try {
      for (let t = 0; t < tasks; t++) k.ex.runTask(JOB_ADDR, t, 0);
    } catch (e) {
      throw new Error(`cpu kernels: job ${k.params[0]} trapped: ${(e as Error).message}`);
    }
    return;
  }
  const p = poolOf(k);
  const ctrl = p.ctrl;
  const job = p.job = (p.job + 1) & JOB_MASK;
  Atomics.store(ctrl, DONE, 0);
  Atomics.store(ctrl, ERR, 0);
  Atomics.store(ctrl, SLOT, 1);
  Atomics.store(ctrl, NTASKS, tasks);
  Atomics.store(ctrl, BARRIER, barrier);
  Atomics.store(ctrl, JOB, job);
  _openTickets(ctrl, job, true);
  Atomics.add(ctrl, SEQ, 1);
  Atomics.notify(ctrl, SEQ);
  _participate(k.ex, ctrl, false);
  let d: number;
  while ((d = Atomics.load(ctrl, DONE)) < tasks) Atomics.wait(ctrl, DONE, d);
  _openTickets(ctrl, job, false);
  if (Atomics.load(ctrl, ERR)) throw new Error(`cpu kernels: a task of job ${k.params[0]} trapped`);
}

/** Counters for tests and benches. @internal */
export function _poolStats(): { workerTasks: number; workers: number } {
  if (!pool) return { workerTasks: 0, workers: 0 };
  return { workerTasks: Atomics.load(pool.ctrl, WTASKS), workers: pool.workers.length };
}

/** Per-kernel counts of calls that took the wasm path (tests prove the fast path was reached). @internal */
export const fastHits: Record<string, number> = {};
export function hit(name: string): void {
  fastHits[name] = (fastHits[name] ?? 0) + 1;
}

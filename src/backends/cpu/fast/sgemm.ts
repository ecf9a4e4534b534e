/**
 * Fast float32 matrix multiply for the cpu backend: the wasm gemm (kernels/wasm/gemm.ts) over operands
 * in the heap, in place: A and B are packed straight from the tensors (any strides) into scratch panels,
 * C is written straight into the output. Arrays outside the heap are staged (./operands.ts).
 *
 * A call is one job of the kernel pool (./kernels.ts): packing tasks for A and B, then one task per C
 * tile (or per batch item), run by this thread and the awake workers. Each C element is computed by one
 * task with a fixed K order, so results do not depend on the number of threads.
 */
import { GEMM, GEMM_BATCHED, kernels, runJob, setThreads, shutdownWorkers, _poolStats, hit, MAX_TASKS, type Kernels } from './kernels.js';
import { Operands, spanOf } from './operands.js';

// ---------------------------------------------------------------------------------------------------
// Tuning.

/** Below this many multiply-adds (M*N*K) `sgemm` returns false: the caller's plain loop is as fast. */
let minWork = 4096;
/** At or above this many multiply-adds, worker threads are used. */
let threadWork = 64 * 64 * 64;
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
  if (o.threads !== undefined) setThreads(o.threads);
}

/** Asks the worker threads to exit (they are unref()'d, so this is never needed to let a process end). */
export function sgemmShutdown(): void {
  shutdownWorkers();
}

const align = (x: number, a: number): number => Math.ceil(x / a) * a;

// ---------------------------------------------------------------------------------------------------
// The gemm on heap addresses.

/** One operand: byte address of element (0, 0) and element strides. */
interface Mat { addr: number; rs: number; cs: number }

/** C = A B (+ C when beta) on heap addresses; M, N, K >= 1. */
function gemmAt(k: Kernels, M: number, N: number, K: number, A: Mat, B: Mat, C: Mat, beta: boolean): boolean {
  const { MR, NR } = k;
  const Mp = align(M, MR), Np = align(N, NR);
  const aBytes = align(Mp * K * 4, 64), bBytes = K * Np * 4;
  const ap = k.heap.alloc(aBytes + bBytes);
  if (ap < 0) return false;
  const bp = ap + aBytes;
  try {
    const work = M * N * K;
    const useThreads = k.threads > 1 && work >= threadWork;
    const T = useThreads ? k.threads : 1;
    const slA = Mp / MR, slB = Np / NR;
    // Packing groups: about 4 per participant, at least 8 slivers each.
    const ga = Math.max(8, Math.ceil(slA / (4 * T))), gb = Math.max(8, Math.ceil(slB / (4 * T)));
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
    const tilesN = Math.ceil(Np / NC);
    const total = npa + npb + Math.ceil(Mp / MC) * tilesN;
    if (total > MAX_TASKS) return false;
    const p = k.params;
    p[0] = GEMM; p[1] = K; p[2] = A.addr; p[3] = A.rs; p[4] = A.cs; p[5] = B.addr; p[6] = B.rs; p[7] = B.cs;
    p[8] = ap; p[9] = bp; p[10] = C.addr; p[11] = C.rs; p[12] = Mp; p[13] = Np; p[14] = M; p[15] = N;
    p[16] = Math.min(KC, K); p[17] = MC; p[18] = NC; p[19] = tilesN; p[20] = npa; p[21] = ga; p[22] = npb; p[23] = gb; p[24] = beta ? 1 : 0;
    runJob(k, total, useThreads, npa + npb);
  } finally {
    k.heap.free(ap, aBytes + bBytes);
  }
  return true;
}

/** C_p = A_p B_p over a batch (batch strides in elements; 0 shares one matrix, packed once). */
function gemmBatchedAt(k: Kernels, batch: number, M: number, N: number, K: number, A: Mat, aBs: number, B: Mat, bBs: number,
  C: Mat, cBs: number): boolean {
  const { MR, NR } = k;
  const Mp = align(M, MR), Np = align(N, NR);
  const aSh = aBs === 0, bSh = bBs === 0;
  const work = batch * M * N * K;
  const useThreads = k.threads > 1 && work >= threadWork;
  const T = useThreads ? k.threads : 1;
  const shBytes = (aSh ? align(Mp * K * 4, 64) : 0) + (bSh ? align(K * Np * 4, 64) : 0);
  const scrBytes = align(((aSh ? 0 : Mp * K) + (bSh ? 0 : K * Np)) * 4, 64);
  const bytes = shBytes + T * scrBytes + 64;
  const base = k.heap.alloc(bytes);
  if (base < 0) return false;
  try {
    const apSh = base, bpSh = base + (aSh ? align(Mp * K * 4, 64) : 0), scr = base + shBytes;
    const slA = Mp / MR, slB = Np / NR;
    const ga = Math.max(8, Math.ceil(slA / (4 * T))), gb = Math.max(8, Math.ceil(slB / (4 * T)));
    const npa = aSh ? Math.ceil(slA / ga) : 0, npb = bSh ? Math.ceil(slB / gb) : 0;
    const MC = Math.max(MR, Math.floor(MC_TARGET / MR) * MR), NC = Math.max(NR, Math.floor(NC_TARGET / NR) * NR);
    const total = npa + npb + batch;
    if (total > MAX_TASKS) return false;
    const p = k.params;
    p[0] = GEMM_BATCHED; p[1] = K; p[2] = A.addr; p[3] = A.rs; p[4] = A.cs; p[5] = B.addr; p[6] = B.rs; p[7] = B.cs;
    p[8] = apSh; p[9] = bpSh; p[10] = C.addr; p[11] = C.rs; p[12] = Mp; p[13] = Np; p[14] = M; p[15] = N;
    p[16] = Math.min(KC, K); p[17] = MC; p[18] = NC; p[19] = 0; p[20] = npa; p[21] = ga; p[22] = npb; p[23] = gb; p[24] = 0;
    p[25] = aBs; p[26] = bBs; p[27] = cBs; p[28] = aSh ? 1 : 0; p[29] = bSh ? 1 : 0; p[30] = scr; p[31] = scrBytes; p[32] = T;
    runJob(k, total, useThreads && batch > 1, npa + npb);
  } finally {
    k.heap.free(base, bytes);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Typed-array entry points.

/** Whether a (rows x cols) view at `off` lies inside an array of `len` elements. */
function inside(len: number, off: number, shape: number[], strides: number[]): boolean {
  const [lo, hi] = spanOf(shape, strides);
  return off + lo >= 0 && off + hi < len;
}

/**
 * C[cOffset + i*ldc + j] = sum_k A[aOffset + i*aRowStride + k*aColStride] * B[bOffset + k*bRowStride + j*bColStride],
 * for i<M, j<N (overwrites C). Returns false (doing nothing) if the fast path is not available or a view
 * is out of bounds; the caller then uses its reference loop.
 */
export function sgemm(M: number, N: number, K: number,
  A: Float32Array, aOffset: number, aRowStride: number, aColStride: number,
  B: Float32Array, bOffset: number, bRowStride: number, bColStride: number,
  C: Float32Array, cOffset: number, ldc: number): boolean {
  return sgemmBatched(1, M, N, K, A, aOffset, 0, aRowStride, aColStride, B, bOffset, 0, bRowStride, bColStride, C, cOffset, 0, ldc);
}

/**
 * Batched C_p = A_p @ B_p for p < batch, where X_p is the (rows x cols) view of X at xOffset + p*xBatchStride
 * (a batch stride of 0 broadcasts one matrix to every item; it is packed once). C_p is written at
 * cOffset + p*cBatchStride with row stride ldc (items must not overlap). Results are bit-identical to
 * `sgemm` on each item. Returns false (doing nothing) when the fast path is unavailable.
 */
export function sgemmBatched(batch: number, M: number, N: number, K: number,
  A: Float32Array, aOffset: number, aBatchStride: number, aRowStride: number, aColStride: number,
  B: Float32Array, bOffset: number, bBatchStride: number, bRowStride: number, bColStride: number,
  C: Float32Array, cOffset: number, cBatchStride: number, ldc: number): boolean {
  if (!(batch >= 0 && M >= 0 && N >= 0 && K >= 0)) return false;
  if (batch === 0 || M === 0 || N === 0) return true;
  if (batch * M * N * K < minWork && K > 0) return false;
  const k = kernels();
  if (!k) return false;
  if (!inside(C.length, cOffset, [batch, M, N], [cBatchStride, ldc, 1])) return false;
  if (K === 0) {
    for (let p = 0; p < batch; p++) for (let i = 0; i < M; i++) C.fill(0, cOffset + p * cBatchStride + i * ldc, cOffset + p * cBatchStride + i * ldc + N);
    return true;
  }
  if (!inside(A.length, aOffset, [batch, M, K], [aBatchStride, aRowStride, aColStride])) return false;
  if (!inside(B.length, bOffset, [batch, K, N], [bBatchStride, bRowStride, bColStride])) return false;
  const ops = new Operands(k);
  let ok = false;
  try {
    const aAddr = ops.view({ buf: { data: A, dtype: 'float32' } as never, shape: [batch, M, K], strides: [aBatchStride, aRowStride, aColStride], offset: aOffset });
    const bAddr = ops.view({ buf: { data: B, dtype: 'float32' } as never, shape: [batch, K, N], strides: [bBatchStride, bRowStride, bColStride], offset: bOffset });
    const cAddr = ops.view({ buf: { data: C, dtype: 'float32' } as never, shape: [batch, M, N], strides: [cBatchStride, ldc, 1], offset: cOffset }, true);
    if (aAddr < 0 || bAddr < 0 || cAddr < 0) return false;
    hit('matmul');
    const a: Mat = { addr: aAddr, rs: aRowStride, cs: aColStride }, b: Mat = { addr: bAddr, rs: bRowStride, cs: bColStride };
    ok = batch === 1 || (aBatchStride === 0 && bBatchStride === 0)
      ? gemmAt(k, M, N, K, a, b, { addr: cAddr, rs: ldc, cs: 1 }, false) && copyItems(k, batch, M, N, cAddr, cBatchStride, ldc)
      : eachOrBatched(k, batch, M, N, K, a, aBatchStride, b, bBatchStride, { addr: cAddr, rs: ldc, cs: 1 }, cBatchStride);
  } finally {
    if (ok) ops.finish(); else ops.abort();
  }
  return ok;
}

/** Every item the same product: item 0 copied to the others. */
function copyItems(k: Kernels, batch: number, M: number, N: number, c: number, cBs: number, ldc: number): boolean {
  if (batch === 1) return true;
  const f = k.f32(), c0 = c >>> 2;
  for (let p = 1; p < batch; p++) for (let i = 0; i < M; i++) f.copyWithin(c0 + p * cBs + i * ldc, c0 + i * ldc, c0 + i * ldc + N);
  return true;
}

function eachOrBatched(k: Kernels, batch: number, M: number, N: number, K: number, a: Mat, aBs: number, b: Mat, bBs: number, c: Mat, cBs: number): boolean {
  // Few big items: each one split over the threads is better balanced.
  if (k.threads > 1 && batch < 2 * k.threads && M * N * K >= threadWork) {
    for (let p = 0; p < batch; p++) {
      const ok = gemmAt(k, M, N, K, { ...a, addr: a.addr + 4 * p * aBs }, { ...b, addr: b.addr + 4 * p * bBs }, { ...c, addr: c.addr + 4 * p * cBs }, false);
      if (!ok) { if (p === 0) return false; throw new Error('sgemm: out of heap memory mid-batch'); }
    }
    return true;
  }
  return gemmBatchedAt(k, batch, M, N, K, a, aBs, b, bBs, c, cBs);
}

/** Counters for tests and benches. @internal */
export function _sgemmStats(): { workerTasks: number; workers: number } {
  return _poolStats();
}

/** Which variant is in use, e.g. {simd: true, relaxed: true, threads: 2} — for `lavender info` and benches. */
export function sgemmInfo(): { simd: boolean; relaxed: boolean; threads: number } {
  const k = kernels();
  if (!k) return { simd: false, relaxed: false, threads: 1 };
  return { simd: true, relaxed: k.relaxed, threads: k.threads };
}

/**
 * Float32 row kernels for the cpu backend through the wasm module (kernels/wasm/rows.ts): softmax and its
 * backward, layer norm forward and backward, silu backward. Rows are contiguous; the kernels run in
 * place on the heap (other arrays are staged) and big problems are split into row ranges over the
 * threads. Each entry point returns false, doing nothing, when the kernels are unavailable; the caller
 * then runs its TypeScript loop.
 */
import { hit, kernels, LAYERNORM, LAYERNORM_BWD, runJob, SILU_BWD, SOFTMAX, SOFTMAX_BWD, type Kernels } from './kernels.js';
import { Operands } from './operands.js';
import { tuning } from './elementwise.js';

/** Test knob: below minElems elements the TypeScript loops run (no call overhead worth paying). @internal */
let minElems = 256;
export function rowopsSetOptions(o: { minElems?: number }): void {
  if (o.minElems !== undefined) minElems = o.minElems;
}

/** Whether the wasm kernels are in use (for tests and `lavender info`). */
export function rowopsAvailable(): boolean {
  return kernels() !== null;
}

/** Fixed task count for a row range (independent of the thread count, so results are too). */
function rowTasks(rows: number, cols: number): number {
  return rows * cols >= tuning.parallelElems ? Math.max(1, Math.min(rows, tuning.tasks)) : 1;
}

function run(fn: (k: Kernels, ops: Operands) => boolean, elems: number): boolean {
  if (elems < minElems) return false;
  const k = kernels();
  if (!k) return false;
  const ops = new Operands(k);
  let ok = false;
  try {
    ok = fn(k, ops);
  } finally {
    if (ok) ops.finish(); else ops.abort();
  }
  return ok;
}

const dense = (ops: Operands, A: Float32Array, off: number, n: number, written = false): number => ops.addr(A, off, 0, n - 1, written);

/** Softmax / log-softmax of scale * x over rows of `cols` contiguous floats. */
export function fastSoftmax(X: Float32Array, xo: number, O: Float32Array, oo: number, rows: number, cols: number, scale: number, log: boolean): boolean {
  if (cols === 0 || rows === 0) return false;
  return run((k, ops) => {
    const x = dense(ops, X, xo, rows * cols), o = dense(ops, O, oo, rows * cols, true);
    if (x < 0 || o < 0) return false;
    hit('softmax');
    const T = rowTasks(rows, cols), p = k.params;
    p[0] = SOFTMAX; p[1] = x; p[2] = o; p[3] = rows; p[4] = cols; p[5] = Math.fround(scale); p[6] = log ? 1 : 0; p[7] = T;
    runJob(k, T, T > 1);
    return true;
  }, rows * cols);
}

/** out = scale * y * (g - rowsum(g * y)). */
export function fastSoftmaxBackward(Y: Float32Array, yo: number, G: Float32Array, go: number, O: Float32Array, oo: number,
  rows: number, cols: number, scale: number): boolean {
  if (cols === 0 || rows === 0) return false;
  return run((k, ops) => {
    const n = rows * cols;
    const y = dense(ops, Y, yo, n), g = dense(ops, G, go, n), o = dense(ops, O, oo, n, true);
    if (y < 0 || g < 0 || o < 0) return false;
    hit('softmaxBackward');
    const T = rowTasks(rows, cols), p = k.params;
    p[0] = SOFTMAX_BWD; p[1] = y; p[2] = g; p[3] = o; p[4] = rows; p[5] = cols; p[6] = Math.fround(scale); p[7] = T;
    runJob(k, T, T > 1);
    return true;
  }, rows * cols);
}

/** Layer norm over rows; writes mean/rstd (contiguous, one per row). */
export function fastLayerNorm(X: Float32Array, xo: number, W: Float32Array | null, wo: number, B: Float32Array | null, bo: number,
  O: Float32Array, oo: number, Mu: Float32Array, muo: number, Rs: Float32Array, rso: number, rows: number, cols: number, eps: number): boolean {
  if (cols === 0 || rows === 0) return false;
  return run((k, ops) => {
    const n = rows * cols;
    const x = dense(ops, X, xo, n), o = dense(ops, O, oo, n, true);
    const w = W ? dense(ops, W, wo, cols) : 0, b = B ? dense(ops, B, bo, cols) : 0;
    const mu = dense(ops, Mu, muo, rows, true), rs = dense(ops, Rs, rso, rows, true);
    if (x < 0 || o < 0 || w < 0 || b < 0 || mu < 0 || rs < 0) return false;
    hit('layerNorm');
    const T = rowTasks(rows, cols), p = k.params;
    p[0] = LAYERNORM; p[1] = x; p[2] = w; p[3] = b; p[4] = o; p[5] = mu; p[6] = rs; p[7] = rows; p[8] = cols; p[9] = eps; p[10] = T;
    runJob(k, T, T > 1);
    return true;
  }, rows * cols);
}

/**
 * Layer norm backward: dx (rows x cols), and the column sums dw = sum(g * xhat), db = sum(g) when given.
 * Per-task partial sums are added in task order, so the result does not depend on the thread count.
 */
export function fastLayerNormBackward(X: Float32Array, xo: number, Mu: Float32Array | null, muo: number, Rs: Float32Array, rso: number,
  W: Float32Array | null, wo: number, G: Float32Array, go: number, DX: Float32Array, dxo: number,
  DW: Float32Array | null, dwo: number, DB: Float32Array | null, dbo: number, rows: number, cols: number): boolean {
  if (cols === 0 || rows === 0) return false;
  return run((k, ops) => {
    const n = rows * cols;
    const x = dense(ops, X, xo, n), g = dense(ops, G, go, n), dx = dense(ops, DX, dxo, n, true);
    const mu = Mu ? dense(ops, Mu, muo, rows) : 0, rs = dense(ops, Rs, rso, rows);
    const w = W ? dense(ops, W, wo, cols) : 0;
    if (x < 0 || g < 0 || dx < 0 || mu < 0 || rs < 0 || w < 0) return false;
    const T = Math.max(1, Math.min(rows, tuning.tasks));
    const partial = k.heap.alloc(T * cols * 8);
    if (partial < 0) return false;
    try {
      hit('layerNormBackward');
      const p = k.params;
      p[0] = LAYERNORM_BWD; p[1] = x; p[2] = mu; p[3] = rs; p[4] = w; p[5] = g; p[6] = dx; p[7] = partial; p[8] = rows; p[9] = cols; p[10] = T;
      runJob(k, T, n >= tuning.parallelElems);
      const f = k.f32(), base = partial >>> 2;
      for (let j = 0; j < cols; j++) {
        let sw = 0, sb = 0;
        for (let t = 0; t < T; t++) {
          sw = Math.fround(sw + f[base + t * 2 * cols + j]!);
          sb = Math.fround(sb + f[base + t * 2 * cols + cols + j]!);
        }
        if (DW) DW[dwo + j] = sw;
        if (DB) DB[dbo + j] = sb;
      }
    } finally {
      k.heap.free(partial, T * cols * 8);
    }
    return true;
  }, rows * cols);
}

/** out = g * s * (1 + x * (1 - s)), s = sigmoid(x), over n contiguous floats. */
export function fastSiluBackward(X: Float32Array, xo: number, G: Float32Array, go: number, O: Float32Array, oo: number, n: number): boolean {
  if (n === 0) return false;
  return run((k, ops) => {
    const x = dense(ops, X, xo, n), g = dense(ops, G, go, n), o = dense(ops, O, oo, n, true);
    if (x < 0 || g < 0 || o < 0) return false;
    hit('siluBackward');
    const T = n >= tuning.parallelElems ? tuning.tasks : 1, p = k.params;
    p[0] = SILU_BWD; p[1] = x; p[2] = g; p[3] = o; p[4] = n; p[5] = T;
    runJob(k, T, T > 1);
    return true;
  }, n);
}

/** The kernel's scalar exp (for accuracy tests). @internal */
export function _expf32(x: number): number | null {
  const k = kernels();
  return k ? k.ex.expf32(x) : null;
}

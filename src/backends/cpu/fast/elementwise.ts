// Float32 elementwise primitives through the wasm kernels (kernels/wasm/elementwise.ts): unary maps,
// binary maps (tensor or scalar operands), strided copy / copy-accumulate and sum reductions, in place on
// the heap and split over the worker threads when big enough.
//
// Dimensions are collapsed first (merged where every operand walks them contiguously; size-1 dims
// dropped), so a dense op is one long row. Each entry point returns false, having done nothing, when it
// cannot run the case (not float32, more than 6 collapsed dims, no wasm); the caller then runs the
// TypeScript reference. Results equal the reference's float32 arithmetic bit for bit, except exp,
// sigmoid and silu (a polynomial exp, within 2 ulps) and row sums (accumulated in float64 in a different
// order, then rounded).
import type { BinaryOp, UnaryOp, View } from '../../backend.js';
import type { CpuBuffer } from '../buffer.js';
import { collapse } from '../strided.js';
import { BINARY, COPY, hit, JOB_ADDR, kernels, runJob, SUM, UNARY, type Kernels } from './kernels.js';
import { allF32, Operands } from './operands.js';

const UNARY_CODE: Partial<Record<UnaryOp, number>> = { neg: 0, abs: 1, sqrt: 2, rsqrt: 3, exp: 4, sigmoid: 5, silu: 6, relu: 7, square: 8, reciprocal: 9 };
const BINARY_CODE: Partial<Record<BinaryOp, number>> = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5 };
const MAXD = 6;
/** Where a scalar operand is placed (a float in the job block, past the parameters). */
const SCALAR_ADDR = JOB_ADDR + 8 * 480;

/** Elements from which a job is split over the worker threads. @internal (tests lower it) */
export const tuning = { parallelElems: 1 << 16, pieceElems: 4096, tasks: 8 };

export const fastUnaryOp = (op: UnaryOp): boolean => UNARY_CODE[op] !== undefined;
export const fastBinaryOp = (op: BinaryOp): boolean => BINARY_CODE[op] !== undefined;

/** Writes the walk parameters of collapsed dims (operand strides in st[0..2]) and runs the job. */
function walk(k: Kernels, kind: number, op: number, dims: number[], st: number[][], addrs: number[], flag: number): void {
  const p = k.params;
  if (dims.length === 0) { dims = [1]; st = st.map(() => [0]); }
  const nd = dims.length, n = dims[nd - 1]!;
  let rows = 1;
  for (let d = 0; d < nd - 1; d++) rows *= dims[d]!;
  const total = rows * n;
  const parallel = total >= tuning.parallelElems;
  const tasks = parallel ? tuning.tasks : 1;
  const pieces = rows >= tasks ? 1 : Math.max(1, Math.min(Math.ceil(tasks / rows), Math.floor(n / tuning.pieceElems)));
  p[0] = kind; p[1] = op; p[2] = nd;
  for (let d = 0; d < MAXD; d++) {
    p[3 + d] = d < nd ? dims[d]! : 1;
    for (let j = 0; j < 3; j++) p[9 + 6 * j + d] = d < nd ? st[j]![d]! : 0;
  }
  p[27] = addrs[0]!; p[28] = addrs[1]!; p[29] = addrs[2]!;
  p[30] = rows; p[31] = pieces; p[32] = Math.min(tasks, rows * pieces); p[33] = flag;
  runJob(k, p[32]!, parallel);
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Runs `fn` with operand addresses; false (nothing done) if staging ran out of heap. */
function withOperands(k: Kernels, fn: (ops: Operands) => boolean): boolean {
  const ops = new Operands(k);
  let ok = false;
  try {
    ok = fn(ops);
  } finally {
    if (ok) ops.finish(); else ops.abort();
  }
  return ok;
}

export function unaryF32(op: UnaryOp, x: View, out: View): boolean {
  const code = UNARY_CODE[op];
  const k = kernels();
  if (code === undefined || !k || !allF32(x, out)) return false;
  if (numel(x.shape) === 0) return true;
  const { dims, st } = collapse(x.shape, [x.strides, out.strides]);
  if (dims.length > MAXD) return false;
  return withOperands(k, (ops) => {
    const ax = ops.view(x), ao = ops.view(out, true);
    if (ax < 0 || ao < 0) return false;
    hit('unary');
    walk(k, UNARY, code, dims, [st[0]!, st[0]!, st[1]!], [ax, ax, ao], 0);
    return true;
  });
}

export function binaryF32(op: BinaryOp, a: View, b: View, out: View): boolean {
  const code = BINARY_CODE[op];
  const k = kernels();
  if (code === undefined || !k || !allF32(a, b, out)) return false;
  if (numel(out.shape) === 0) return true;
  const { dims, st } = collapse(out.shape, [a.strides, b.strides, out.strides]);
  if (dims.length > MAXD) return false;
  return withOperands(k, (ops) => {
    const aa = ops.view(a), ab = ops.view(b), ao = ops.view(out, true);
    if (aa < 0 || ab < 0 || ao < 0) return false;
    hit('binary');
    walk(k, BINARY, code, dims, st, [aa, ab, ao], 0);
    return true;
  });
}

/** out = a op s (s op a when scalarFirst), s already rounded to float32 by the caller. */
export function binaryScalarF32(op: BinaryOp, a: View, s: number, out: View, scalarFirst: boolean): boolean {
  const code = BINARY_CODE[op];
  const k = kernels();
  if (code === undefined || !k || !allF32(a, out)) return false;
  if (numel(out.shape) === 0) return true;
  const { dims, st } = collapse(out.shape, [a.strides, out.strides]);
  if (dims.length > MAXD) return false;
  return withOperands(k, (ops) => {
    const aa = ops.view(a), ao = ops.view(out, true);
    if (aa < 0 || ao < 0) return false;
    new Float32Array(k.heap.buffer(), SCALAR_ADDR, 1)[0] = s;
    hit('binaryScalar');
    const zero = st[0]!.map(() => 0);
    if (scalarFirst) walk(k, BINARY, code, dims, [zero, st[0]!, st[1]!], [SCALAR_ADDR, aa, ao], 0);
    else walk(k, BINARY, code, dims, [st[0]!, zero, st[1]!], [aa, SCALAR_ADDR, ao], 0);
    return true;
  });
}

export function copyF32(src: View, dst: View, accumulate: boolean): boolean {
  const k = kernels();
  if (!k || !allF32(src, dst)) return false;
  if (numel(src.shape) === 0) return true;
  const { dims, st } = collapse(src.shape, [src.strides, dst.strides]);
  if (dims.length > MAXD) return false;
  return withOperands(k, (ops) => {
    const as = ops.view(src), ad = ops.view(dst, true);
    if (as < 0 || ad < 0) return false;
    hit('copy');
    walk(k, COPY, 0, dims, [st[0]!, st[0]!, st[1]!], [as, as, ad], accumulate ? 1 : 0);
    return true;
  });
}

/** Sum of x over `axes` into a dense out (x's shape with those axes 1). */
export function sumF32(x: View, axes: readonly number[], out: View): boolean {
  const k = kernels();
  if (!k || !allF32(x, out)) return false;
  const O = (out.buf as CpuBuffer).data as Float32Array;
  const outN = numel(out.shape);
  O.fill(0, out.offset, out.offset + outN);
  if (numel(x.shape) === 0) return true;
  const os: number[] = new Array(out.shape.length);
  let s = 1;
  for (let d = out.shape.length - 1; d >= 0; d--) { os[d] = axes.includes(d) ? 0 : s; s *= out.shape[d]!; }
  let { dims, st } = collapse(x.shape, [x.strides, os]);
  if (dims.length > MAXD) return false;
  if (dims.length === 0) { dims = [1]; st = [[0], [0]]; }
  const nd = dims.length, n = dims[nd - 1]!;
  const rows = numel(dims) / n;
  const rowMode = st[1]![nd - 1] === 0;
  const big = rows * n >= tuning.parallelElems;
  let tasks = 1, group = rows;
  if (rowMode) {
    // groups of rows that share no output: one index of the outermost dim when that dim is kept
    if (nd > 1 && st[1]![0] !== 0) group = rows / dims[0]!;
    tasks = big ? Math.min(tuning.tasks, rows / group) : 1;
  } else {
    tasks = big ? Math.max(1, Math.min(tuning.tasks, Math.floor(n / 16))) : 1;
  }
  return withOperands(k, (ops) => {
    const ax = ops.view(x), ao = ops.view(out, true);
    if (ax < 0 || ao < 0) return false;
    hit('sum');
    const p = k.params;
    p[0] = SUM; p[1] = rowMode ? 0 : 1; p[2] = nd;
    for (let d = 0; d < MAXD; d++) {
      p[3 + d] = d < nd ? dims[d]! : 1;
      p[9 + d] = d < nd ? st[0]![d]! : 0;
      p[21 + d] = d < nd ? st[1]![d]! : 0;
    }
    p[27] = ax; p[29] = ao; p[30] = rows; p[32] = tasks; p[33] = group;
    runJob(k, tasks, tasks > 1);
    return true;
  });
}

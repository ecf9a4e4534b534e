// The cpu reference: every primitive of the seam in plain TypeScript over typed arrays. It is the spec
// the other backends (and the cpu fast paths) are tested against, so it favours clarity over speed,
// except for a dense fast case in the elementwise loops.
import type { BinaryOp, ReduceOp, UnaryOp, View } from '../backend.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, isStorageOnly, type DType, type TypedArray } from '../../tensor/dtype.js';
import { fillRandom, type Distribution } from '../../tensor/random.js';
import { numel } from '../../tensor/shape.js';
import { CpuBuffer } from './buffer.js';
import { erf, erfinv, geluErf, geluTanh, roundHalfEven, sigmoid } from './math.js';
import { isDense, stridedOffsets, viewOffsets } from './strided.js';

function buf(v: View): CpuBuffer {
  const b = v.buf as CpuBuffer;
  if (b.freed) throw new Error(`cpu: use of a freed ${b.dtype} buffer of ${b.size} elements`);
  return b;
}

/** The typed array of a view for computing; storage-only dtypes are refused here. */
function computeData(op: string, v: View): TypedArray {
  const b = buf(v);
  if (isStorageOnly(b.dtype)) throw new Error(`cpu ${op}: dtype ${b.dtype} is a storage dtype on the cpu backend; cast with .to('float32') first`);
  return b.data;
}

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid,
  silu: (x) => x * sigmoid(x),
  gelu: geluErf,
  gelu_tanh: geluTanh,
  relu: (x) => (x > 0 ? x : 0),
  erf,
  erfinv,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
  floor: Math.floor,
  ceil: Math.ceil,
  round: roundHalfEven,
  reciprocal: (x) => 1 / x,
  square: (x) => x * x,
  not: (x) => (x ? 0 : 1),
};

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a > b ? a : b),
  minimum: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a < b ? a : b),
  eq: (a, b) => +(a === b),
  ne: (a, b) => +(a !== b),
  lt: (a, b) => +(a < b),
  le: (a, b) => +(a <= b),
  gt: (a, b) => +(a > b),
  ge: (a, b) => +(a >= b),
  and: (a, b) => +(!!a && !!b),
  or: (a, b) => +(!!a || !!b),
};

/** Values stored into an integer/bool buffer are converted as torch casts do. */
function storeFn(dtype: DType): ((x: number) => number) | null {
  switch (dtype) {
    case 'int32': case 'int64': return Math.trunc;
    case 'bool': return (x) => (x !== 0 ? 1 : 0);
    case 'bfloat16': return f32ToBf16;
    case 'float16': return f32ToF16;
    default: return null;
  }
}

function loadFn(dtype: DType): ((x: number) => number) | null {
  if (dtype === 'bfloat16') return bf16ToF32;
  if (dtype === 'float16') return f16ToF32;
  return null;
}

export function unary(op: UnaryOp, x: View, out: View): void {
  const f = UNARY[op];
  const X = computeData(op, x), O = computeData(op, out);
  const n = numel(out.shape), store = storeFn(buf(out).dtype), o0 = out.offset;
  if (isDense(x)) {
    const x0 = x.offset;
    if (store) for (let i = 0; i < n; i++) O[o0 + i] = store(f(X[x0 + i]!));
    else for (let i = 0; i < n; i++) O[o0 + i] = f(X[x0 + i]!);
    return;
  }
  const xo = viewOffsets(x);
  for (let i = 0; i < n; i++) O[o0 + i] = store ? store(f(X[xo[i]!]!)) : f(X[xo[i]!]!);
}

export function binary(op: BinaryOp, a: View, b: View, out: View): void {
  const f = BINARY[op];
  const A = computeData(op, a), B = computeData(op, b), O = computeData(op, out);
  const n = numel(out.shape), store = storeFn(buf(out).dtype), o0 = out.offset;
  if (isDense(a) && isDense(b) && !store) {
    const a0 = a.offset, b0 = b.offset;
    for (let i = 0; i < n; i++) O[o0 + i] = f(A[a0 + i]!, B[b0 + i]!);
    return;
  }
  const ao = viewOffsets(a), bo = viewOffsets(b);
  for (let i = 0; i < n; i++) {
    const v = f(A[ao[i]!]!, B[bo[i]!]!);
    O[o0 + i] = store ? store(v) : v;
  }
}

export function where(cond: View, a: View, b: View, out: View): void {
  const C = computeData('where', cond), A = computeData('where', a), B = computeData('where', b), O = computeData('where', out);
  const co = viewOffsets(cond), ao = viewOffsets(a), bo = viewOffsets(b);
  const n = numel(out.shape), o0 = out.offset;
  for (let i = 0; i < n; i++) O[o0 + i] = C[co[i]!] ? A[ao[i]!]! : B[bo[i]!]!;
}

export function fill(dst: View, value: number): void {
  const b = buf(dst), store = storeFn(b.dtype), v = store ? store(value) : value;
  if (isDense(dst)) {
    b.data.fill(v, dst.offset, dst.offset + numel(dst.shape));
    return;
  }
  for (const o of viewOffsets(dst)) b.data[o] = v;
}

export function copy(src: View, dst: View, accumulate: boolean): void {
  const S = buf(src).data, D = buf(dst).data;
  const load = loadFn(buf(src).dtype);
  const dstType = buf(dst).dtype;
  const store = storeFn(dstType), loadDst = loadFn(dstType);
  const so = viewOffsets(src), dO = viewOffsets(dst);
  const n = so.length;
  for (let i = 0; i < n; i++) {
    let v = S[so[i]!]!;
    if (load) v = load(v);
    if (accumulate) v += loadDst ? loadDst(D[dO[i]!]!) : D[dO[i]!]!;
    D[dO[i]!] = store ? store(v) : v;
  }
}

export function reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void {
  const X = computeData(op, x), O = computeData(op, out);
  const r = x.shape.length;
  const kept = [...Array(r).keys()].filter((d) => !axes.includes(d));
  const order = [...kept, ...axes];
  const offs = stridedOffsets(order.map((d) => x.shape[d]!), order.map((d) => x.strides[d]!), x.offset);
  const outer = numel(kept.map((d) => x.shape[d]!));
  const inner = numel(axes.map((d) => x.shape[d]!));
  const o0 = out.offset;
  for (let o = 0; o < outer; o++) {
    const base = o * inner;
    let acc: number;
    switch (op) {
      case 'sum':
        acc = 0;
        for (let i = 0; i < inner; i++) acc += X[offs[base + i]!]!;
        break;
      case 'prod':
        acc = 1;
        for (let i = 0; i < inner; i++) acc *= X[offs[base + i]!]!;
        break;
      case 'max': case 'min': {
        const isMax = op === 'max';
        acc = isMax ? -Infinity : Infinity;
        for (let i = 0; i < inner; i++) {
          const v = X[offs[base + i]!]!;
          if (Number.isNaN(v)) { acc = NaN; break; }
          if (isMax ? v > acc : v < acc) acc = v;
        }
        break;
      }
      case 'argmax': case 'argmin': {
        const isMax = op === 'argmax';
        let best = isMax ? -Infinity : Infinity;
        acc = 0;
        for (let i = 0; i < inner; i++) {
          const v = X[offs[base + i]!]!;
          if (Number.isNaN(v)) { acc = i; break; }
          if (isMax ? v > best : v < best) { best = v; acc = i; }
        }
        break;
      }
    }
    O[o0 + o] = acc;
  }
}

/** Reference batched matmul, i-k-j order with a float64 row accumulator. */
export function matmulReference(a: View, b: View, out: View): void {
  const A = computeData('matmul', a), B = computeData('matmul', b), O = computeData('matmul', out);
  const [batch, M, K] = a.shape as [number, number, number];
  const N = b.shape[2]!;
  const [as0, as1, as2] = a.strides as [number, number, number];
  const [bs0, bs1, bs2] = b.strides as [number, number, number];
  const row = new Float64Array(N);
  for (let p = 0; p < batch; p++) {
    for (let i = 0; i < M; i++) {
      row.fill(0);
      const aRow = a.offset + p * as0 + i * as1;
      for (let k = 0; k < K; k++) {
        const av = A[aRow + k * as2]!;
        if (av === 0) continue;
        const bRow = b.offset + p * bs0 + k * bs1;
        for (let j = 0; j < N; j++) row[j] += av * B[bRow + j * bs2]!;
      }
      const oRow = out.offset + (p * M + i) * N;
      for (let j = 0; j < N; j++) O[oRow + j] = row[j]!;
    }
  }
}

function checkIndex(op: string, idx: number, size: number): number {
  if (!Number.isInteger(idx) || idx < 0 || idx >= size) {
    throw new Error(`${op}: index ${idx} is out of range for an axis of size ${size}`);
  }
  return idx;
}

export function gather(x: View, axis: number, index: View, out: View): void {
  const X = computeData('gather', x), I = computeData('gather', index), O = computeData('gather', out);
  const baseStrides = x.strides.map((s, d) => (d === axis ? 0 : s));
  const base = stridedOffsets(index.shape, baseStrides, x.offset);
  const io = viewOffsets(index);
  const size = x.shape[axis]!, step = x.strides[axis]!;
  for (let i = 0; i < base.length; i++) O[out.offset + i] = X[base[i]! + checkIndex('gather', I[io[i]!]!, size) * step]!;
}

export function scatterAdd(dst: View, axis: number, index: View, src: View): void {
  const D = computeData('scatterAdd', dst), I = computeData('scatterAdd', index), S = computeData('scatterAdd', src);
  const baseStrides = dst.strides.map((s, d) => (d === axis ? 0 : s));
  const base = stridedOffsets(index.shape, baseStrides, dst.offset);
  const io = viewOffsets(index), so = viewOffsets(src);
  const size = dst.shape[axis]!, step = dst.strides[axis]!;
  for (let i = 0; i < base.length; i++) D[base[i]! + checkIndex('scatterAdd', I[io[i]!]!, size) * step] += S[so[i]!]!;
}

export function random(out: View, dist: Distribution, seed: number, offset: number): void {
  const O = computeData('random', out);
  const n = numel(out.shape);
  const store = storeFn(buf(out).dtype);
  const tmp = new Float64Array(n);
  fillRandom(tmp, n, dist, seed, offset);
  const offs = viewOffsets(out);
  for (let i = 0; i < n; i++) O[offs[i]!] = store ? store(tmp[i]!) : tmp[i]!;
}

// The cpu reference: every primitive of the seam in plain TypeScript over typed arrays. It is the spec
// the other backends (and the cpu fast paths) are tested against, so it favours clarity over speed,
// except for a dense fast case in the elementwise loops.
import type { BinaryOp, ReduceOp, UnaryOp, View } from '../backend.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, isStorageOnly, type DType, type TypedArray } from '../../tensor/dtype.js';
import { fillRandom, type Distribution } from '../../tensor/random.js';
import { contiguousStrides, numel } from '../../tensor/shape.js';
import { CpuBuffer } from './buffer.js';
import { erf, erfinv, geluErf, geluTanh, roundHalfEven, sigmoid } from './math.js';
import { forEachRow, isDense, rowStrides, stridedOffsets, viewOffsets } from './strided.js';

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

/** One row of a unary op, the op chosen once per row so the inner loop is monomorphic. */
function unaryRow(op: UnaryOp, X: TypedArray, x: number, xs: number, O: TypedArray, o: number, n: number): void {
  switch (op) {
    case 'neg': for (let i = 0; i < n; i++) O[o + i] = -X[x + i * xs]!; return;
    case 'exp': for (let i = 0; i < n; i++) O[o + i] = Math.exp(X[x + i * xs]!); return;
    case 'log': for (let i = 0; i < n; i++) O[o + i] = Math.log(X[x + i * xs]!); return;
    case 'sqrt': for (let i = 0; i < n; i++) O[o + i] = Math.sqrt(X[x + i * xs]!); return;
    case 'rsqrt': for (let i = 0; i < n; i++) O[o + i] = 1 / Math.sqrt(X[x + i * xs]!); return;
    case 'tanh': for (let i = 0; i < n; i++) O[o + i] = Math.tanh(X[x + i * xs]!); return;
    case 'relu': for (let i = 0; i < n; i++) { const v = X[x + i * xs]!; O[o + i] = v > 0 ? v : 0; } return;
    case 'square': for (let i = 0; i < n; i++) { const v = X[x + i * xs]!; O[o + i] = v * v; } return;
    case 'reciprocal': for (let i = 0; i < n; i++) O[o + i] = 1 / X[x + i * xs]!; return;
    case 'sigmoid': for (let i = 0; i < n; i++) O[o + i] = sigmoid(X[x + i * xs]!); return;
    case 'silu': for (let i = 0; i < n; i++) { const v = X[x + i * xs]!; O[o + i] = v * sigmoid(v); } return;
    default: {
      const f = UNARY[op];
      for (let i = 0; i < n; i++) O[o + i] = f(X[x + i * xs]!);
    }
  }
}

export function unary(op: UnaryOp, x: View, out: View): void {
  const X = computeData(op, x), O = computeData(op, out);
  const store = storeFn(buf(out).dtype);
  if (store) {
    const f = UNARY[op], xo = viewOffsets(x), o0 = out.offset;
    for (let i = 0; i < xo.length; i++) O[o0 + i] = store(f(X[xo[i]!]!));
    return;
  }
  const strides = [x.strides, out.strides];
  const [xs] = rowStrides(x.shape, strides) as [number, number];
  forEachRow(x.shape, strides, [x.offset, out.offset], (p, n) => unaryRow(op, X, p[0]!, xs, O, p[1]!, n));
}

/** One row of a binary op with per-operand inner strides (0 for a broadcast operand). */
function binaryRow(op: BinaryOp, A: TypedArray, a: number, as: number, B: TypedArray, b: number, bs: number, O: TypedArray, o: number, n: number): void {
  switch (op) {
    case 'add': for (let i = 0; i < n; i++) O[o + i] = A[a + i * as]! + B[b + i * bs]!; return;
    case 'sub': for (let i = 0; i < n; i++) O[o + i] = A[a + i * as]! - B[b + i * bs]!; return;
    case 'mul': for (let i = 0; i < n; i++) O[o + i] = A[a + i * as]! * B[b + i * bs]!; return;
    case 'div': for (let i = 0; i < n; i++) O[o + i] = A[a + i * as]! / B[b + i * bs]!; return;
    default: {
      const f = BINARY[op];
      for (let i = 0; i < n; i++) O[o + i] = f(A[a + i * as]!, B[b + i * bs]!);
    }
  }
}

export function binary(op: BinaryOp, a: View, b: View, out: View): void {
  const A = computeData(op, a), B = computeData(op, b), O = computeData(op, out);
  const store = storeFn(buf(out).dtype);
  if (store && buf(out).dtype !== 'bool') {
    const f = BINARY[op], ao = viewOffsets(a), bo = viewOffsets(b), o0 = out.offset;
    for (let i = 0; i < ao.length; i++) O[o0 + i] = store(f(A[ao[i]!]!, B[bo[i]!]!));
    return;
  }
  // comparison results are already 0/1, so bool outputs need no conversion
  const strides = [a.strides, b.strides, out.strides];
  const [as, bs] = rowStrides(out.shape, strides) as [number, number, number];
  forEachRow(out.shape, strides, [a.offset, b.offset, out.offset], (p, n) => binaryRow(op, A, p[0]!, as, B, p[1]!, bs, O, p[2]!, n));
}

/** out = a op s (s op a when scalarFirst); s is already in a's dtype (float32 values rounded by the caller). */
export function binaryScalar(op: BinaryOp, a: View, s: number, out: View, scalarFirst: boolean): void {
  const A = computeData(op, a), O = computeData(op, out);
  const store = storeFn(buf(out).dtype);
  const f = BINARY[op];
  const ao = viewOffsets(a), o0 = out.offset;
  if (store && buf(out).dtype !== 'bool') {
    for (let i = 0; i < ao.length; i++) O[o0 + i] = store(scalarFirst ? f(s, A[ao[i]!]!) : f(A[ao[i]!]!, s));
    return;
  }
  if (scalarFirst) for (let i = 0; i < ao.length; i++) O[o0 + i] = f(s, A[ao[i]!]!);
  else for (let i = 0; i < ao.length; i++) O[o0 + i] = f(A[ao[i]!]!, s);
}

export { isDense };

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

let F16_TABLE: Float32Array | null = null;
function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = f16ToF32(h);
  }
  return F16_TABLE;
}

export function copy(src: View, dst: View, accumulate: boolean): void {
  const S = buf(src).data, D = buf(dst).data;
  const load = loadFn(buf(src).dtype);
  const dstType = buf(dst).dtype;
  const store = storeFn(dstType), loadDst = loadFn(dstType);
  const strides = [src.strides, dst.strides];
  const [ss, ds] = rowStrides(src.shape, strides) as [number, number];
  // 16-bit floats widened into a float32 buffer (weights kept 16-bit, cast per use): bfloat16 is the high
  // half of a float32, float16 goes through a 64K-entry table; both exact
  if (!accumulate && !store && !loadDst && (load === bf16ToF32 || load === f16ToF32) && D instanceof Float32Array) {
    const bits = new Uint32Array(D.buffer, D.byteOffset, D.length), table = load === f16ToF32 ? f16Table() : null;
    forEachRow(src.shape, strides, [src.offset, dst.offset], (p, n) => {
      const s0 = p[0]!, d0 = p[1]!;
      if (table) for (let i = 0; i < n; i++) D[d0 + i * ds] = table[S[s0 + i * ss]!]!;
      else for (let i = 0; i < n; i++) bits[d0 + i * ds] = S[s0 + i * ss]! << 16;
    });
    return;
  }
  if (!load && !store && !loadDst) {
    forEachRow(src.shape, strides, [src.offset, dst.offset], (p, n) => {
      const s0 = p[0]!, d0 = p[1]!;
      if (accumulate) for (let i = 0; i < n; i++) D[d0 + i * ds] += S[s0 + i * ss]!;
      else for (let i = 0; i < n; i++) D[d0 + i * ds] = S[s0 + i * ss]!;
    });
    return;
  }
  forEachRow(src.shape, strides, [src.offset, dst.offset], (p, n) => {
    for (let i = 0; i < n; i++) {
      let v = S[p[0]! + i * ss]!;
      if (load) v = load(v);
      const d = p[1]! + i * ds;
      if (accumulate) v += loadDst ? loadDst(D[d]!) : D[d]!;
      D[d] = store ? store(v) : v;
    }
  });
}

/** sum/max/min/prod: walk x in its own layout, folding each element into its output slot. */
function reduceByRows(op: 'sum' | 'max' | 'min' | 'prod', X: TypedArray, x: View, axes: readonly number[], O: TypedArray, out: View): void {
  const outStrides = contiguousStrides(out.shape).map((s, d) => (axes.includes(d) ? 0 : s));
  const init = op === 'sum' ? 0 : op === 'prod' ? 1 : op === 'max' ? -Infinity : Infinity;
  O.fill(init, out.offset, out.offset + numel(out.shape));
  const strides = [x.strides, outStrides];
  const [xs, os] = rowStrides(x.shape, strides) as [number, number];
  forEachRow(x.shape, strides, [x.offset, out.offset], (p, n) => {
    const x0 = p[0]!, o0 = p[1]!;
    if (os === 0) {
      // the whole row folds into one output element
      let acc = O[o0]!;
      switch (op) {
        case 'sum': for (let i = 0; i < n; i++) acc += X[x0 + i * xs]!; break;
        case 'prod': for (let i = 0; i < n; i++) acc *= X[x0 + i * xs]!; break;
        case 'max': for (let i = 0; i < n; i++) { const v = X[x0 + i * xs]!; if (v > acc || v !== v) acc = v; if (acc !== acc) break; } break;
        case 'min': for (let i = 0; i < n; i++) { const v = X[x0 + i * xs]!; if (v < acc || v !== v) acc = v; if (acc !== acc) break; } break;
      }
      O[o0] = acc;
      return;
    }
    switch (op) {
      case 'sum': for (let i = 0; i < n; i++) O[o0 + i * os] += X[x0 + i * xs]!; break;
      case 'prod': for (let i = 0; i < n; i++) O[o0 + i * os] *= X[x0 + i * xs]!; break;
      case 'max': for (let i = 0; i < n; i++) { const v = X[x0 + i * xs]!, c = O[o0 + i * os]!; if (v > c || v !== v) O[o0 + i * os] = c !== c ? c : v; } break;
      case 'min': for (let i = 0; i < n; i++) { const v = X[x0 + i * xs]!, c = O[o0 + i * os]!; if (v < c || v !== v) O[o0 + i * os] = c !== c ? c : v; } break;
    }
  });
}

export function reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void {
  const X = computeData(op, x), O = computeData(op, out);
  if (op !== 'argmax' && op !== 'argmin' && isDense(out)) return reduceByRows(op, X, x, axes, O, out);
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

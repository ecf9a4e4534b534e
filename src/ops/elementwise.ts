// Elementwise ops: unary maps, broadcasting binary maps, comparisons, where. Each has its gradient rule.
import type { BinaryOp, UnaryOp } from '../backends/backend.js';
import { noGrad } from '../autograd/grad-mode.js';
import { isFloat, promote, type DType } from '../tensor/dtype.js';
import { broadcastShapes, contiguousStrides, sameShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { backendOf, empty, record } from './record.js';
import { full } from './creation.js';

export type TensorLike = Tensor | number;

/** A number becomes a 0-d tensor on `like`'s device, keeping like's dtype where the value fits it. */
export function lift(x: TensorLike, like: Tensor): Tensor {
  if (typeof x !== 'number') return x;
  const dtype: DType = isFloat(like.dtype) || (Number.isInteger(x) && like.dtype !== 'bool') ? like.dtype : 'float32';
  return full([], x, { dtype, device: like.device });
}

/** View of t broadcast to `shape` (stride 0 on new and size-1 dims). */
export function broadcastView(t: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(t.shape, shape)) return t.alias();
  const lead = shape.length - t.ndim;
  const strides = shape.map((d, i) => {
    const k = i - lead;
    if (k < 0) return 0;
    return t.shape[k] === 1 && d !== 1 ? 0 : t.strides[k]!;
  });
  return t.alias(shape, strides, t.offset);
}

/** Sum g down to `shape` (the inverse of broadcasting), used by every broadcasting gradient. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g.alias();
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  const be = g.backend;
  const keepShape = g.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = empty(be, keepShape, g.dtype);
  be.reduce('sum', g.view('sumTo'), axes, out.view());
  const res = out.alias([...shape], contiguousStrides(shape), 0);
  out.dispose();
  return res;
}

// ---- unary -------------------------------------------------------------------------------------

const KEEPS_DTYPE = new Set<UnaryOp>(['neg', 'abs', 'relu', 'sign', 'square', 'floor', 'ceil', 'round']);

function unaryKernel(op: UnaryOp, x: Tensor): Tensor {
  const be = backendOf(op, x);
  const dtype: DType = op === 'not' ? 'bool' : isFloat(x.dtype) || KEEPS_DTYPE.has(op) ? x.dtype : 'float32';
  const out = empty(be, x.shape, dtype);
  be.unary(op, x.view(op), out.view());
  return out;
}

type UnaryGrad = (g: Tensor, x: Tensor, y: Tensor) => Tensor;

const SQRT_2PI = Math.sqrt(2 * Math.PI);
const GELU_C = Math.sqrt(2 / Math.PI);

const UNARY_GRADS: Partial<Record<UnaryOp, UnaryGrad>> = {
  neg: (g) => neg(g),
  abs: (g, x) => mul(g, sign(x)),
  exp: (g, _x, y) => mul(g, y),
  log: (g, x) => div(g, x),
  sqrt: (g, _x, y) => div(mul(g, 0.5), y),
  rsqrt: (g, _x, y) => mul(g, mul(pow(y, 3), -0.5)),
  sin: (g, x) => mul(g, cos(x)),
  cos: (g, x) => neg(mul(g, sin(x))),
  tanh: (g, _x, y) => mul(g, sub(1, square(y))),
  sigmoid: (g, _x, y) => mul(g, mul(y, sub(1, y))),
  silu: (g, x) => {
    const be = x.backend;
    if (be.fused.siluBackward && x.isContiguous() && g.isContiguous() && sameShape(g.shape, x.shape)) {
      const out = empty(be, x.shape, x.dtype);
      be.fused.siluBackward(x.view(), g.view(), out.view());
      return out;
    }
    const s = sigmoid(x);
    return mul(g, mul(s, add(1, mul(x, sub(1, s)))));
  },
  gelu: (g, x) => mul(g, add(mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5), div(mul(x, exp(mul(square(x), -0.5))), SQRT_2PI))),
  gelu_tanh: (g, x) => {
    const inner = mul(add(x, mul(pow(x, 3), 0.044715)), GELU_C);
    const t = tanh(inner);
    const dInner = mul(add(mul(square(x), 3 * 0.044715), 1), GELU_C);
    return mul(g, add(mul(add(t, 1), 0.5), mul(mul(mul(x, 0.5), sub(1, square(t))), dInner)));
  },
  relu: (g, x) => mul(g, gt(x, 0)),
  erf: (g, x) => mul(g, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI))),
  erfinv: (g, _x, y) => mul(g, mul(exp(square(y)), Math.sqrt(Math.PI) / 2)),
  reciprocal: (g, _x, y) => neg(mul(g, square(y))),
  square: (g, x) => mul(g, mul(x, 2)),
  sign: (g) => mul(g, 0),
  floor: (g) => mul(g, 0),
  ceil: (g) => mul(g, 0),
  round: (g) => mul(g, 0),
};

/** What each unary rule reads: its input, its output, or neither (the graph keeps no more than that). */
const UNARY_SAVES: Partial<Record<UnaryOp, 'x' | 'y'>> = {
  abs: 'x', exp: 'y', log: 'x', sqrt: 'y', rsqrt: 'y', sin: 'x', cos: 'x', tanh: 'y', sigmoid: 'y', silu: 'x',
  gelu: 'x', gelu_tanh: 'x', relu: 'x', erf: 'x', erfinv: 'y', reciprocal: 'y', square: 'x',
};

/** d silu(x)/dx * g (the fused kernel where the backend has one). */
export function siluGrad(g: Tensor, x: Tensor): Tensor {
  return UNARY_GRADS.silu!(g, x, null!);
}

function unaryOp(op: UnaryOp, x: Tensor): Tensor {
  const y = unaryKernel(op, x);
  const rule = UNARY_GRADS[op];
  if (!rule || !isFloat(y.dtype)) return y;
  const saves = UNARY_SAVES[op];
  return record(y, op, [x], saves ? [saves === 'x' ? x : y] : [], (g, [s]) =>
    [rule(g, (saves === 'x' ? s : null)!, (saves === 'y' ? s : null)!)]);
}

export const neg = (x: Tensor) => unaryOp('neg', x);
export const abs = (x: Tensor) => unaryOp('abs', x);
export const exp = (x: Tensor) => unaryOp('exp', x);
export const log = (x: Tensor) => unaryOp('log', x);
export const sqrt = (x: Tensor) => unaryOp('sqrt', x);
export const rsqrt = (x: Tensor) => unaryOp('rsqrt', x);
export const sin = (x: Tensor) => unaryOp('sin', x);
export const cos = (x: Tensor) => unaryOp('cos', x);
export const tanh = (x: Tensor) => unaryOp('tanh', x);
export const sigmoid = (x: Tensor) => unaryOp('sigmoid', x);
export const silu = (x: Tensor) => unaryOp('silu', x);
/** GELU; approximate 'tanh' selects the tanh form (PyTorch's approximate='tanh'). */
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none') => unaryOp(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
export const relu = (x: Tensor) => unaryOp('relu', x);
export const erf = (x: Tensor) => unaryOp('erf', x);
export const erfinv = (x: Tensor) => unaryOp('erfinv', x);
export const sign = (x: Tensor) => unaryOp('sign', x);
export const floor = (x: Tensor) => unaryOp('floor', x);
export const ceil = (x: Tensor) => unaryOp('ceil', x);
export const round = (x: Tensor) => unaryOp('round', x);
export const reciprocal = (x: Tensor) => unaryOp('reciprocal', x);
export const square = (x: Tensor) => unaryOp('square', x);
export const logicalNot = (x: Tensor) => unaryOp('not', x);

// ---- binary ------------------------------------------------------------------------------------

const COMPARISONS = new Set<BinaryOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or']);

function binaryKernel(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const be = backendOf(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  let dtype = COMPARISONS.has(op) ? 'bool' : promote(a.dtype, b.dtype);
  if ((op === 'div' || op === 'pow') && !isFloat(dtype as DType)) dtype = 'float32';
  const out = empty(be, shape, dtype as DType);
  const av = broadcastView(a, shape), bv = broadcastView(b, shape);
  be.binary(op, av.view(op), bv.view(op), out.view());
  av.dispose();
  bv.dispose();
  return out;
}

/** Gradients of a binary op with respect to a and to b; each is computed only when that operand needs one. */
type BinaryGrad = (g: Tensor, a: Tensor, b: Tensor, y: Tensor, needA: boolean, needB: boolean) => [Tensor | null, Tensor | null];

const BINARY_GRADS: Partial<Record<BinaryOp, BinaryGrad>> = {
  add: (g) => [g, g],
  sub: (g, _a, _b, _y, _na, nb) => [g, nb ? neg(g) : null],
  mul: (g, a, b, _y, na, nb) => [na ? mul(g, b) : null, nb ? mul(g, a) : null],
  div: (g, a, b, _y, na, nb) => [na ? div(g, b) : null, nb ? neg(div(mul(g, a), square(b))) : null],
  pow: (g, a, b, y, na, nb) => {
    const ga = na ? mul(g, mul(b, pow(a, sub(b, 1)))) : null;
    // d/db a^b = a^b log a, taken as 0 where a == 0 and b >= 0 (as PyTorch does)
    const gb = nb ? where(logicalAnd(eq(a, 0), ge(b, 0)), 0, mul(g, mul(y, log(a)))) : null;
    return [ga, gb];
  },
  maximum: (g, a, b, _y, na, nb) => {
    const share = add(gt(a, b), mul(eq(a, b), 0.5));
    return [na ? mul(g, share) : null, nb ? mul(g, sub(1, share)) : null];
  },
  minimum: (g, a, b, _y, na, nb) => {
    const share = add(lt(a, b), mul(eq(a, b), 0.5));
    return [na ? mul(g, share) : null, nb ? mul(g, sub(1, share)) : null];
  },
};

type ScalarGrad = (g: Tensor, t: Tensor, s: number) => Tensor;

/** Gradients with respect to the tensor of `t op s` (SCALAR_FIRST_GRADS: of `s op t`); s is in t's dtype. */
const SCALAR_GRADS: Partial<Record<BinaryOp, ScalarGrad>> = {
  add: (g) => g.alias(),
  sub: (g) => g.alias(),
  mul: (g, _t, s) => mul(g, s),
  div: (g, _t, s) => div(g, s),
  pow: (g, t, s) => mul(g, mul(pow(t, s - 1), s)),
  maximum: (g, t, s) => mul(g, add(gt(t, s), mul(eq(t, s), 0.5))),
  minimum: (g, t, s) => mul(g, add(lt(t, s), mul(eq(t, s), 0.5))),
};
const SCALAR_FIRST_GRADS: Partial<Record<BinaryOp, ScalarGrad>> = {
  add: (g) => g.alias(),
  sub: (g) => neg(g),
  mul: (g, _t, s) => mul(g, s),
  div: (g, t, s) => neg(div(mul(g, s), square(t))),
  // maximum and minimum are symmetric: the tensor's share is the same whichever side the scalar is on
  maximum: (g, t, s) => mul(g, add(gt(t, s), mul(eq(t, s), 0.5))),
  minimum: (g, t, s) => mul(g, add(lt(t, s), mul(eq(t, s), 0.5))),
};

/**
 * `t op s` (or `s op t`) with the number travelling as a kernel argument (Backend.binaryScalar), when the
 * backend has it and the scalar takes t's dtype (as lift() would give it); null otherwise.
 */
function scalarOp(op: BinaryOp, t: Tensor, s: number, scalarFirst: boolean): Tensor | null {
  const be = backendOf(op, t);
  if (!be.binaryScalar) return null;
  if (!(isFloat(t.dtype) || (Number.isInteger(s) && t.dtype !== 'bool'))) return null;
  const cmp = COMPARISONS.has(op);
  if (!cmp && !isFloat(t.dtype) && (op === 'div' || op === 'pow')) return null;
  const rule = (scalarFirst ? SCALAR_FIRST_GRADS : SCALAR_GRADS)[op];
  if (!cmp && isFloat(t.dtype) && !rule) return null;
  const out = empty(be, t.shape, cmp ? 'bool' : t.dtype);
  be.binaryScalar(op, t.view(op), s, out.view(), scalarFirst);
  if (cmp || !isFloat(t.dtype)) return out;
  // the value the kernel used: s rounded to t's dtype (float32 here; the others hold s exactly or as float64)
  const sv = t.dtype === 'float32' ? Math.fround(s) : s;
  const needsT = op === 'pow' || op === 'maximum' || op === 'minimum' || (scalarFirst && op === 'div');
  return record(out, op, [t], needsT ? [t] : [], (g, [st]) => [rule!(g, st ?? t, sv)]);
}

function binaryOp(op: BinaryOp, x: TensorLike, y: TensorLike): Tensor {
  if (typeof x === 'number' && typeof y === 'number') throw new Error(`${op}: at least one argument must be a tensor`);
  if (typeof x === 'number' || typeof y === 'number') {
    const r = typeof x === 'number' ? scalarOp(op, y as Tensor, x, true) : scalarOp(op, x, y as number, false);
    if (r) return r;
  }
  const a = typeof x === 'number' ? lift(x, y as Tensor) : x;
  const b = lift(y, a);
  const out = binaryKernel(op, a, b);
  const rule = BINARY_GRADS[op];
  if (!rule || !isFloat(out.dtype)) return out;
  // add and sub read no operand; pow also reads its output
  const saved = op === 'add' || op === 'sub' ? [] : op === 'pow' ? [a, b, out] : [a, b];
  const aShape = a.shape, bShape = b.shape;
  return record(out, op, [a, b], saved, (g, [sa, sb, so], [na, nb]) => {
    const [ga, gb] = rule(g, sa!, sb!, so!, na!, nb!);
    return [ga && na ? sumTo(ga, aShape) : null, gb && nb ? sumTo(gb, bShape) : null];
  });
}

export const add = (a: TensorLike, b: TensorLike) => binaryOp('add', a, b);
export const sub = (a: TensorLike, b: TensorLike) => binaryOp('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike) => binaryOp('mul', a, b);
export const div = (a: TensorLike, b: TensorLike) => binaryOp('div', a, b);
export const pow = (a: TensorLike, b: TensorLike) => binaryOp('pow', a, b);
export const maximum = (a: TensorLike, b: TensorLike) => binaryOp('maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike) => binaryOp('minimum', a, b);
export const eq = (a: TensorLike, b: TensorLike) => binaryOp('eq', a, b);
export const ne = (a: TensorLike, b: TensorLike) => binaryOp('ne', a, b);
export const lt = (a: TensorLike, b: TensorLike) => binaryOp('lt', a, b);
export const le = (a: TensorLike, b: TensorLike) => binaryOp('le', a, b);
export const gt = (a: TensorLike, b: TensorLike) => binaryOp('gt', a, b);
export const ge = (a: TensorLike, b: TensorLike) => binaryOp('ge', a, b);
export const logicalAnd = (a: TensorLike, b: TensorLike) => binaryOp('and', a, b);
export const logicalOr = (a: TensorLike, b: TensorLike) => binaryOp('or', a, b);

/** Elementwise select with broadcasting: cond ? a : b. Gradients flow to a and b through the mask. */
export function where(cond: Tensor, x: TensorLike, y: TensorLike): Tensor {
  const a = typeof x === 'number' ? (typeof y === 'number' ? full([], x, { device: cond.device }) : lift(x, y)) : x;
  const b = lift(y, a);
  const be = backendOf('where', cond, a, b);
  const shape = broadcastShapes('where', cond.shape, a.shape, b.shape);
  const out = empty(be, shape, promote(a.dtype, b.dtype));
  const views = [cond, a, b].map((t) => broadcastView(t, shape));
  be.where(views[0]!.view('where'), views[1]!.view('where'), views[2]!.view('where'), out.view());
  for (const v of views) v.dispose();
  if (!isFloat(out.dtype)) return out;
  const aShape = a.shape, bShape = b.shape;
  return record(out, 'where', [a, b], [cond], (g, [c], [na, nb]) => [
    na ? sumTo(where(c!, g, 0), aShape) : null,
    nb ? sumTo(where(c!, 0, g), bShape) : null,
  ]);
}

/** Limit values to [min, max]; the gradient passes where min <= x <= max (bounds included, as torch). */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  if (min !== undefined && max !== undefined && min > max) throw new Error(`clamp: min ${min} is greater than max ${max}`);
  const out = noGrad(() => {
    let y = x.alias();
    if (min !== undefined) y = maximum(y, min);
    if (max !== undefined) y = minimum(y, max);
    return y;
  });
  return record(out, 'clamp', [x], [x], (g, [sx]) => {
    let inside = g;
    if (min !== undefined) inside = where(ge(sx!, min), inside, 0);
    if (max !== undefined) inside = where(le(sx!, max), inside, 0);
    return [inside === g ? g.alias() : inside];
  });
}

// View ops: new shape/strides over the same storage, no copy (reshape copies only when it must).
// Each is differentiable; slicing's gradient writes g into a zero tensor at the sliced positions.
import { isFloat } from '../tensor/dtype.js';
import { contiguousStrides, normAxis, numel, shapeStr } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from './creation.js';
import { broadcastView, sumTo } from './elementwise.js';
import { backendOf, empty, record } from './record.js';

function recordView(out: Tensor, op: string, x: Tensor, rule: (g: Tensor) => Tensor): Tensor {
  if (!isFloat(x.dtype)) return out;
  return record(out, op, [x], [], (g) => [rule(g)]);
}

/** A contiguous copy (or a view when x is already contiguous). */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous()) return recordView(x.alias(), 'contiguous', x, (g) => g.alias());
  return clone(x);
}

export function clone(x: Tensor): Tensor {
  const be = backendOf('clone', x);
  const out = empty(be, x.shape, x.dtype);
  be.copy(x.view('clone'), out.view(), false);
  return recordView(out, 'clone', x, (g) => g.alias());
}

/** A view that shares storage but is cut from the graph. */
export function detach(x: Tensor): Tensor {
  return x.alias();
}

function resolveShape(op: string, x: Tensor, shape: readonly number[]): number[] {
  const out = [...shape];
  const free = out.indexOf(-1);
  if (free !== out.lastIndexOf(-1)) throw new Error(`${op}: only one dimension can be -1, got ${shapeStr(shape)}`);
  const known = numel(out.filter((d) => d !== -1));
  if (free >= 0) {
    if (known === 0 || x.size % known !== 0) throw new Error(`${op}: cannot reshape ${x.describe()} to ${shapeStr(shape)}`);
    out[free] = x.size / known;
  }
  if (out.some((d) => !Number.isInteger(d) || d < 0) || numel(out) !== x.size) {
    throw new Error(`${op}: cannot reshape ${x.describe()} (${x.size} elements) to ${shapeStr(shape)}`);
  }
  return out;
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  x.assertAlive('reshape');
  const target = resolveShape('reshape', x, shape);
  if (!x.isContiguous()) {
    const c = clone(x);
    const out = reshape(c, target);
    c.dispose();
    return out;
  }
  const out = x.alias(target, contiguousStrides(target), x.offset);
  return recordView(out, 'reshape', x, (g) => reshape(g, x.shape));
}

export const view = reshape;

export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normAxis('flatten', startAxis, x.ndim), e = normAxis('flatten', endAxis, x.ndim);
  if (s > e) throw new Error(`flatten: start axis ${startAxis} comes after end axis ${endAxis}`);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  x.assertAlive('permute');
  const d = dims.map((a) => normAxis('permute', a, x.ndim));
  if (d.length !== x.ndim || new Set(d).size !== d.length) {
    throw new Error(`permute: [${dims.join(', ')}] is not a permutation of the ${x.ndim} axes of ${x.describe()}`);
  }
  const out = x.alias(d.map((a) => x.shape[a]!), d.map((a) => x.strides[a]!), x.offset);
  const inverse = new Array<number>(d.length);
  d.forEach((a, i) => (inverse[a] = i));
  return recordView(out, 'permute', x, (g) => permute(g, inverse));
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  if (x.ndim < 2 && a === -2 && b === -1) return permute(x, [...x.shape.keys()]);
  const dims = [...x.shape.keys()];
  const i = normAxis('transpose', a, x.ndim), j = normAxis('transpose', b, x.ndim);
  [dims[i], dims[j]] = [dims[j]!, dims[i]!];
  return permute(x, dims);
}

/** Broadcast to `shape` without copying (-1 keeps a dimension), as torch.expand. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  x.assertAlive('expand');
  if (shape.length < x.ndim) throw new Error(`expand: cannot expand ${x.describe()} to fewer dimensions ${shapeStr(shape)}`);
  const lead = shape.length - x.ndim;
  const target = shape.map((d, i) => (d === -1 && i >= lead ? x.shape[i - lead]! : d));
  target.forEach((d, i) => {
    const k = i - lead;
    if (k >= 0 && x.shape[k] !== 1 && x.shape[k] !== d) throw new Error(`expand: ${x.describe()} cannot be expanded to ${shapeStr(shape)} (dim ${i})`);
    if (!Number.isInteger(d) || d < 0) throw new Error(`expand: invalid target shape ${shapeStr(shape)}`);
  });
  const out = broadcastView(x, target);
  return recordView(out, 'expand', x, (g) => sumTo(g, x.shape));
}

export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return expand(x, shape);
}

/** Python-style slice along one axis: start/end may be negative and are clamped; step > 0. */
export function slice(x: Tensor, axis: number, start = 0, end?: number, step = 1): Tensor {
  x.assertAlive('slice');
  const ax = normAxis('slice', axis, x.ndim);
  const n = x.shape[ax]!;
  if (!Number.isInteger(step) || step <= 0) throw new Error(`slice: step must be a positive integer, got ${step}`);
  const norm = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = norm(start), e = Math.max(norm(end ?? n), s);
  const len = Math.ceil((e - s) / step);
  const shape = x.shape.map((d, i) => (i === ax ? len : d));
  const strides = x.strides.map((st, i) => (i === ax ? st * step : st));
  const out = x.alias(shape, strides, x.offset + s * x.strides[ax]!);
  // g written (or added) into this slice's region of an x-shaped tensor
  const place = (g: Tensor, into: Tensor, accumulate: boolean): void => {
    const dst = slice(into, ax, s, e, step);
    into.backend.copy(g.view('slice backward'), dst.view(), accumulate);
    dst.dispose();
  };
  const y = recordView(out, 'slice', x, (g) => {
    const gx = zeros(x.shape, { dtype: g.dtype, device: g.device });
    place(g, gx, false);
    return gx;
  });
  // added into an accumulator the engine already holds (autograd/backward.ts)
  if (y.gradFn) y.gradFn.scatter = (g, into) => place(g, into, true);
  return y;
}

export const narrow = (x: Tensor, axis: number, start: number, length: number) => slice(x, axis, start, start + length);

/** Element `index` along `axis`, removing that axis (like x[..., i, ...]). */
export function select(x: Tensor, axis: number, index: number): Tensor {
  const ax = normAxis('select', axis, x.ndim);
  const n = x.shape[ax]!;
  if (!Number.isInteger(index) || index < -n || index >= n) throw new Error(`select: index ${index} is out of range for axis ${ax} of ${x.describe()}`);
  const i = index < 0 ? index + n : index;
  const s = slice(x, ax, i, i + 1);
  const out = squeeze(s, ax);
  s.dispose();
  return out;
}

export function squeeze(x: Tensor, axis?: number | readonly number[]): Tensor {
  x.assertAlive('squeeze');
  const axes = axis === undefined
    ? x.shape.flatMap((d, i) => (d === 1 ? [i] : []))
    : (typeof axis === 'number' ? [axis] : [...axis]).map((a) => normAxis('squeeze', a, x.ndim)).filter((a) => x.shape[a] === 1);
  const out = x.alias(x.shape.filter((_, i) => !axes.includes(i)), x.strides.filter((_, i) => !axes.includes(i)), x.offset);
  return recordView(out, 'squeeze', x, (g) => reshape(g, x.shape));
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  x.assertAlive('unsqueeze');
  const ax = normAxis('unsqueeze', axis, x.ndim + 1);
  const shape = [...x.shape], strides = [...x.strides];
  shape.splice(ax, 0, 1);
  strides.splice(ax, 0, ax < x.ndim ? x.strides[ax]! * x.shape[ax]! : 1);
  const out = x.alias(shape, strides, x.offset);
  return recordView(out, 'unsqueeze', x, (g) => reshape(g, x.shape));
}

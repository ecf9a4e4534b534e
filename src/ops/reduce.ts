// Reductions over axes with keepdim: sum, mean, max, min, var, argmax, argmin.
import type { ReduceOp } from '../backends/backend.js';
import { isFloat } from '../tensor/dtype.js';
import { contiguousStrides, normAxes, numel } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { broadcastView, div, eq, mul, square, sub } from './elementwise.js';
import { backendOf, empty, record } from './record.js';
import { contiguous, reshape } from './views.js';

export type Axes = number | readonly number[] | undefined;

function reduceKernel(op: ReduceOp, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  const be = backendOf(op, x);
  const keepShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  for (const a of axes) {
    if (x.shape[a] === 0 && op !== 'sum') throw new Error(`${op}: cannot reduce over axis ${a} of size 0 (shape [${x.shape.join(', ')}])`);
  }
  const dtype = op === 'argmax' || op === 'argmin' ? 'int64' : op === 'sum' && !isFloat(x.dtype) ? 'int64' : x.dtype;
  const out = empty(be, keepShape, dtype);
  be.reduce(op, x.view(op), axes, out.view());
  if (keepdim) return out;
  const shape = x.shape.filter((_, i) => !axes.includes(i));
  const res = out.alias(shape, contiguousStrides(shape), 0);
  out.dispose();
  return res;
}

/** g (reduced shape) reshaped to keepdim form and broadcast back over x's shape. */
function expandBack(g: Tensor, shape: readonly number[], axes: number[]): Tensor {
  const keepShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const gc = g.isContiguous() ? g : contiguous(g);
  const keep = gc.alias(keepShape, contiguousStrides(keepShape), gc.offset);
  return broadcastView(keep, shape);
}

export function sum(x: Tensor, axis?: Axes, keepdim = false): Tensor {
  const axes = normAxes('sum', axis, x.ndim);
  const out = reduceKernel('sum', x, axes, keepdim);
  const shape = x.shape;
  return record(out, 'sum', [x], [], (g) => [expandBack(g, shape, axes)]);
}

export function mean(x: Tensor, axis?: Axes, keepdim = false): Tensor {
  const axes = normAxes('mean', axis, x.ndim);
  if (!isFloat(x.dtype)) throw new Error(`mean: expected a floating-point tensor, got ${x.describe()}`);
  const n = numel(axes.map((a) => x.shape[a]!));
  return div(sum(x, axes, keepdim), n);
}

function extremum(op: 'max' | 'min', x: Tensor, axis: Axes, keepdim: boolean): Tensor {
  const axes = normAxes(op, axis, x.ndim);
  const out = reduceKernel(op, x, axes, keepdim);
  // the gradient is shared equally between tied extrema, as PyTorch's amax/amin do
  return record(out, op, [x], [x, out], (g, [sx, so]) => {
    const ext = expandBack(so!, sx!.shape, axes);
    const mask = eq(sx!, ext);
    const count = sum(mask, axes, true);
    return [div(mul(expandBack(g, sx!.shape, axes), mask), count)];
  });
}

export const max = (x: Tensor, axis?: Axes, keepdim = false) => extremum('max', x, axis, keepdim);
export const min = (x: Tensor, axis?: Axes, keepdim = false) => extremum('min', x, axis, keepdim);

export interface VarOptions {
  /** Bessel's correction: 1 (default, like torch.var) or 0 for the population variance. */
  correction?: number;
  keepdim?: boolean;
}

export function variance(x: Tensor, axis?: Axes, opts: VarOptions = {}): Tensor {
  const axes = normAxes('var', axis, x.ndim);
  const n = numel(axes.map((a) => x.shape[a]!));
  const correction = opts.correction ?? 1;
  const d = sub(x, mean(x, axes, true));
  return div(sum(square(d), axes, opts.keepdim ?? false), Math.max(0, n - correction));
}

function argExtremum(op: 'argmax' | 'argmin', x: Tensor, axis: number | undefined, keepdim: boolean): Tensor {
  if (axis === undefined) {
    const flat = reshape(x, [-1]);
    return reduceKernel(op, flat, [0], false);
  }
  return reduceKernel(op, x, normAxes(op, axis, x.ndim), keepdim);
}

export const argmax = (x: Tensor, axis?: number, keepdim = false) => argExtremum('argmax', x, axis, keepdim);
export const argmin = (x: Tensor, axis?: number, keepdim = false) => argExtremum('argmin', x, axis, keepdim);

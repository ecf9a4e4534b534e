// Creating tensors: from host data, constants, ranges, and the seeded Philox generator.
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { DTYPES, f32ToBf16, f32ToF16, type DType } from '../tensor/dtype.js';
import { checkShape, numel, shapeStr } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { deviceBackend, empty } from './record.js';

export interface CreateOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

type Nested = number | boolean | readonly Nested[];

function checkDtype(op: string, dtype: DType): DType {
  if (!DTYPES.includes(dtype)) throw new Error(`${op}: unknown dtype '${dtype}' (expected one of ${DTYPES.join(', ')})`);
  return dtype;
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
  }
  return shape;
}

function flatten(op: string, data: Nested, shape: readonly number[], dim: number, out: number[]): void {
  if (dim === shape.length) {
    if (Array.isArray(data)) throw new Error(`${op}: ragged nested array (expected shape ${shapeStr(shape)})`);
    out.push(+(data as number | boolean));
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[dim]) throw new Error(`${op}: ragged nested array (expected shape ${shapeStr(shape)})`);
  for (const d of data) flatten(op, d, shape, dim + 1, out);
}

/** Host values -> raw storage values (float16/bfloat16 are stored as their bit patterns). */
function encode(values: ArrayLike<number>, dtype: DType): ArrayLike<number> {
  if (dtype === 'bfloat16') return Array.from(values, f32ToBf16);
  if (dtype === 'float16') return Array.from(values, f32ToF16);
  return values;
}

/** A tensor from nested arrays, a typed array or a number. `shape` reshapes flat data. */
export function tensor(data: Nested | ArrayLike<number>, opts: CreateOptions & { shape?: readonly number[] } = {}): Tensor {
  const dtype = checkDtype('tensor', opts.dtype ?? (data instanceof Int32Array ? 'int32' : data instanceof Float64Array ? 'float64' : 'float32'));
  let flat: ArrayLike<number>;
  let shape: number[];
  if (ArrayBuffer.isView(data)) {
    flat = data as unknown as ArrayLike<number>;
    shape = [flat.length];
  } else {
    shape = inferShape(data as Nested);
    const out: number[] = [];
    flatten('tensor', data as Nested, shape, 0, out);
    flat = out;
  }
  if (opts.shape) {
    const want = checkShape('tensor', opts.shape);
    if (numel(want) !== flat.length) throw new Error(`tensor: ${flat.length} values cannot fill shape ${shapeStr(want)}`);
    shape = want;
  }
  const backend = deviceBackend(opts.device);
  const t = empty(backend, shape, dtype);
  if (flat.length) backend.write(t.storage.buf, encode(flat, dtype));
  return finish(t, opts);
}

export const fromArray = tensor;

export function full(shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor {
  const t = empty(deviceBackend(opts.device), checkShape('full', shape), checkDtype('full', opts.dtype ?? 'float32'));
  t.backend.fill(t.view(), value);
  return finish(t, opts);
}

export function zeros(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return full(shape, 1, opts);
}

export function zerosLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, device: t.device, ...opts });
}

export function onesLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, device: t.device, ...opts });
}

export function fullLike(t: Tensor, value: number, opts: CreateOptions = {}): Tensor {
  return full(t.shape, value, { dtype: t.dtype, device: t.device, ...opts });
}

/** Values start, start+step, ... below end (like torch.arange); int64 when all arguments are integers. */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0 || !Number.isFinite(start) || !Number.isFinite(end) || !Number.isFinite(step)) {
    throw new Error(`arange: invalid range start=${start} end=${end} step=${step}`);
  }
  const n = Math.max(0, Math.ceil((end - start) / step));
  const ints = [start, end, step].every(Number.isInteger);
  const values = Array.from({ length: n }, (_, i) => start + i * step);
  return tensor(values, { dtype: opts.dtype ?? (ints ? 'int64' : 'float32'), device: opts.device, requiresGrad: opts.requiresGrad, shape: [n] });
}

export function linspace(start: number, end: number, steps: number, opts: CreateOptions = {}): Tensor {
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`linspace: steps must be a non-negative integer, got ${steps}`);
  const step = steps > 1 ? (end - start) / (steps - 1) : 0;
  // fill from both ends like torch so the last value is exactly `end`
  const values = Array.from({ length: steps }, (_, i) => (i < steps / 2 ? start + i * step : end - (steps - 1 - i) * step));
  return tensor(values, { ...opts, shape: [steps] });
}

function randomTensor(op: string, dist: 'uniform' | 'normal', shape: readonly number[], opts: RandomOptions): Tensor {
  const dtype = checkDtype(op, opts.dtype ?? 'float32');
  const t = empty(deviceBackend(opts.device), checkShape(op, shape), dtype);
  const gen = opts.generator ?? defaultGenerator;
  t.backend.random(t.view(), dist, gen.seed, gen.take(t.size));
  return finish(t, opts);
}

/** Standard normal draws from the Philox stream (see tensor/random.ts). */
export function randn(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return randomTensor('randn', 'normal', shape, opts);
}

/** Uniform draws in [0, 1). */
export function rand(shape: readonly number[], opts: RandomOptions = {}): Tensor {
  return randomTensor('rand', 'uniform', shape, opts);
}

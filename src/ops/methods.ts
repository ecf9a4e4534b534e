// Tensor methods (x.add(y), x.sum(1), ...) as thin calls into the op functions. Attached here so that
// tensor/ does not import ops/ (the dependency stays one-way).
import { backward, type BackwardOptions } from '../autograd/backward.js';
import type { DType } from '../tensor/dtype.js';
import { Tensor, tensorHooks } from '../tensor/tensor.js';
import * as ew from './elementwise.js';
import * as mm from './matmul.js';
import * as mv from './movement.js';
import * as nn from './nn.js';
import * as red from './reduce.js';
import * as vw from './views.js';
import type { Axes, VarOptions } from './reduce.js';
import type { TensorLike } from './elementwise.js';

declare module '../tensor/tensor.js' {
  interface Tensor {
    add(o: TensorLike): Tensor; sub(o: TensorLike): Tensor; mul(o: TensorLike): Tensor; div(o: TensorLike): Tensor;
    pow(o: TensorLike): Tensor; maximum(o: TensorLike): Tensor; minimum(o: TensorLike): Tensor;
    eq(o: TensorLike): Tensor; ne(o: TensorLike): Tensor; lt(o: TensorLike): Tensor; le(o: TensorLike): Tensor;
    gt(o: TensorLike): Tensor; ge(o: TensorLike): Tensor;
    neg(): Tensor; abs(): Tensor; exp(): Tensor; log(): Tensor; sqrt(): Tensor; rsqrt(): Tensor; sin(): Tensor;
    cos(): Tensor; tanh(): Tensor; sigmoid(): Tensor; silu(): Tensor; gelu(approximate?: 'none' | 'tanh'): Tensor;
    relu(): Tensor; erf(): Tensor; erfinv(): Tensor; square(): Tensor; reciprocal(): Tensor; sign(): Tensor;
    clamp(min?: number, max?: number): Tensor;
    sum(axis?: Axes, keepdim?: boolean): Tensor; mean(axis?: Axes, keepdim?: boolean): Tensor;
    max(axis?: Axes, keepdim?: boolean): Tensor; min(axis?: Axes, keepdim?: boolean): Tensor;
    var(axis?: Axes, opts?: VarOptions): Tensor; argmax(axis?: number, keepdim?: boolean): Tensor;
    argmin(axis?: number, keepdim?: boolean): Tensor;
    matmul(o: Tensor): Tensor;
    reshape(shape: readonly number[]): Tensor; flatten(start?: number, end?: number): Tensor;
    permute(dims: readonly number[]): Tensor; transpose(a?: number, b?: number): Tensor; readonly T: Tensor;
    expand(shape: readonly number[]): Tensor; slice(axis: number, start?: number, end?: number, step?: number): Tensor;
    select(axis: number, index: number): Tensor;
    squeeze(axis?: number | readonly number[]): Tensor; unsqueeze(axis: number): Tensor;
    contiguous(): Tensor; clone(): Tensor; detach(): Tensor;
    split(sizes: number | readonly number[], axis?: number): Tensor[]; chunk(n: number, axis?: number): Tensor[];
    to(target: DType | string): Tensor;
    softmax(axis?: number): Tensor; logSoftmax(axis?: number): Tensor;
    backward(grad?: Tensor, opts?: BackwardOptions): void;
    /** In-place copy of src's values into this tensor's storage (no autograd); for optimizer updates. */
    assign(src: Tensor): this;
  }
}

const P = Tensor.prototype as unknown as Record<string, unknown>;
const binaries = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
for (const name of binaries) P[name] = function (this: Tensor, o: TensorLike) { return ew[name](this, o); };
const unaries = ['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'silu', 'relu', 'erf', 'erfinv', 'square', 'reciprocal', 'sign'] as const;
for (const name of unaries) P[name] = function (this: Tensor) { return ew[name](this); };

Object.assign(Tensor.prototype, {
  gelu(this: Tensor, approximate?: 'none' | 'tanh') { return ew.gelu(this, approximate); },
  clamp(this: Tensor, min?: number, max?: number) { return ew.clamp(this, min, max); },
  sum(this: Tensor, axis?: Axes, keepdim?: boolean) { return red.sum(this, axis, keepdim); },
  mean(this: Tensor, axis?: Axes, keepdim?: boolean) { return red.mean(this, axis, keepdim); },
  max(this: Tensor, axis?: Axes, keepdim?: boolean) { return red.max(this, axis, keepdim); },
  min(this: Tensor, axis?: Axes, keepdim?: boolean) { return red.min(this, axis, keepdim); },
  var(this: Tensor, axis?: Axes, opts?: VarOptions) { return red.variance(this, axis, opts); },
  argmax(this: Tensor, axis?: number, keepdim?: boolean) { return red.argmax(this, axis, keepdim); },
  argmin(this: Tensor, axis?: number, keepdim?: boolean) { return red.argmin(this, axis, keepdim); },
  matmul(this: Tensor, o: Tensor) { return mm.matmul(this, o); },
  reshape(this: Tensor, shape: readonly number[]) { return vw.reshape(this, shape); },
  flatten(this: Tensor, s?: number, e?: number) { return vw.flatten(this, s, e); },
  permute(this: Tensor, dims: readonly number[]) { return vw.permute(this, dims); },
  transpose(this: Tensor, a?: number, b?: number) { return vw.transpose(this, a, b); },
  expand(this: Tensor, shape: readonly number[]) { return vw.expand(this, shape); },
  slice(this: Tensor, axis: number, start?: number, end?: number, step?: number) { return vw.slice(this, axis, start, end, step); },
  select(this: Tensor, axis: number, index: number) { return vw.select(this, axis, index); },
  squeeze(this: Tensor, axis?: number | readonly number[]) { return vw.squeeze(this, axis); },
  unsqueeze(this: Tensor, axis: number) { return vw.unsqueeze(this, axis); },
  contiguous(this: Tensor) { return vw.contiguous(this); },
  clone(this: Tensor) { return vw.clone(this); },
  detach(this: Tensor) { return vw.detach(this); },
  split(this: Tensor, sizes: number | readonly number[], axis?: number) { return mv.split(this, sizes, axis); },
  chunk(this: Tensor, n: number, axis?: number) { return mv.chunk(this, n, axis); },
  to(this: Tensor, target: DType | string) { return mv.to(this, target); },
  softmax(this: Tensor, axis?: number) { return nn.softmax(this, axis); },
  logSoftmax(this: Tensor, axis?: number) { return nn.logSoftmax(this, axis); },
  backward(this: Tensor, grad?: Tensor, opts?: BackwardOptions) { backward(this, grad, opts); },
  assign<T extends Tensor>(this: T, src: Tensor): T {
    this.assertAlive('assign');
    src.assertAlive('assign');
    if (src.device !== this.device) throw new Error(`assign: source on ${src.device}, target on ${this.device}`);
    if (src.size !== this.size || src.ndim !== this.ndim || src.shape.some((d, i) => d !== this.shape[i])) {
      throw new Error(`assign: shape mismatch: ${src.describe()} into ${this.describe()}`);
    }
    this.backend.copy(src.view('assign'), this.view('assign'), false);
    return this;
  },
});
Object.defineProperty(Tensor.prototype, 'T', { get(this: Tensor) { return vw.transpose(this, -2, -1); } });

tensorHooks.readContiguous = (t) => {
  const c = vw.contiguous(t);
  try {
    const raw = c.backend.read(c.storage.buf).subarray(c.offset, c.offset + c.size);
    if (t.dtype === 'float16' || t.dtype === 'bfloat16') {
      const f = mv.cast(c, 'float32');
      const out = f.backend.read(f.storage.buf) as Float32Array;
      f.dispose();
      return out;
    }
    return raw as Float32Array | Float64Array | Int32Array | Uint8Array;
  } finally {
    c.dispose();
  }
};

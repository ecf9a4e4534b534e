// Basic layers with PyTorch's parameter names, shapes and default initialisation.
import { defaultGenerator, type Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { scope } from '../tensor/scope.js';
import { ones, rand, randn, zeros } from '../ops/creation.js';
import { mul, sub } from '../ops/elementwise.js';
import { conv2d, embedding, groupNorm, layerNorm } from '../ops/nn.js';
import { linear } from '../ops/matmul.js';
import { cast } from '../ops/movement.js';
import { remakeable } from '../autograd/remake.js';
import type { DType } from '../tensor/dtype.js';
import { Module } from './module.js';

/**
 * fn(t in `dtype`): a 16-bit weight is widened for this one use and the copy freed right after, so a model
 * keeps its weights 16-bit in memory (loadStateDict with assign) and computes in its activations' dtype.
 */
export function usingDtype<T>(t: Tensor, dtype: DType, fn: (t: Tensor) => T): T {
  if (t.dtype === dtype) return fn(t);
  // a parameter's copy is remade in the backward rather than saved (autograd/remake.ts)
  const c = t.requiresGrad && t.isLeaf ? remakeable(cast(t, dtype), t, (s) => cast(s, dtype)) : cast(t, dtype);
  try {
    // the scope frees views of the copy (a transposed weight) now, not at the end of the caller's scope
    return scope(() => fn(c));
  } finally {
    c.dispose(); // an autograd node that needs it holds its own reference
  }
}

export interface InitOptions {
  generator?: Generator;
  device?: string;
}

/** uniform(-bound, bound), PyTorch's default for Linear/Conv weights and biases (bound = 1/sqrt(fan_in)). */
export function uniformInit(shape: number[], bound: number, opts: InitOptions = {}): Tensor {
  return scope(() => sub(mul(rand(shape, { generator: opts.generator ?? defaultGenerator, device: opts.device }), 2 * bound), bound));
}

/** normal(0, std) initialisation. */
export function normalInit(shape: number[], std: number, opts: InitOptions = {}): Tensor {
  return scope(() => mul(randn(shape, { generator: opts.generator ?? defaultGenerator, device: opts.device }), std));
}

/** Set a parameter to zero in place (initialisation). */
export function zero_(t: Tensor): void {
  t.backend.fill(t.view('zero_'), 0);
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: InitOptions & { bias?: boolean } = {}) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param('weight', uniformInit([outFeatures, inFeatures], bound, opts));
    this.bias = opts.bias === false ? null : this.param('bias', uniformInit([outFeatures], bound, opts));
  }
  forward(x: Tensor): Tensor {
    const b = this.bias;
    return usingDtype(this.weight, x.dtype, (w) => (b ? usingDtype(b, x.dtype, (bb) => linear(x, w, bb)) : linear(x, w)));
  }
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(inChannels: number, outChannels: number, kernel: number, readonly opts: InitOptions & { stride?: number; padding?: number; bias?: boolean } = {}) {
    super();
    const bound = 1 / Math.sqrt(inChannels * kernel * kernel);
    this.weight = this.param('weight', uniformInit([outChannels, inChannels, kernel, kernel], bound, opts));
    this.bias = opts.bias === false ? null : this.param('bias', uniformInit([outChannels], bound, opts));
  }
  forward(x: Tensor): Tensor {
    const b = this.bias, o = { stride: this.opts.stride, padding: this.opts.padding };
    return usingDtype(this.weight, x.dtype, (w) => (b ? usingDtype(b, x.dtype, (bb) => conv2d(x, w, bb, o)) : conv2d(x, w, null, o)));
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(readonly dim: number, readonly eps = 1e-5, affine = true, opts: InitOptions = {}) {
    super();
    this.weight = affine ? this.param('weight', ones([dim], { device: opts.device })) : null;
    this.bias = affine ? this.param('bias', zeros([dim], { device: opts.device })) : null;
  }
  forward(x: Tensor): Tensor {
    const w = this.weight, b = this.bias;
    if (!w || !b) return layerNorm(x, [this.dim], w, b, this.eps);
    return usingDtype(w, x.dtype, (ww) => usingDtype(b, x.dtype, (bb) => layerNorm(x, [this.dim], ww, bb, this.eps)));
  }
}

export class GroupNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly groups: number, channels: number, readonly eps = 1e-5, opts: InitOptions = {}) {
    super();
    this.weight = this.param('weight', ones([channels], { device: opts.device }));
    this.bias = this.param('bias', zeros([channels], { device: opts.device }));
  }
  forward(x: Tensor): Tensor {
    return usingDtype(this.weight, x.dtype, (w) => usingDtype(this.bias, x.dtype, (b) => groupNorm(x, this.groups, w, b, this.eps)));
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(num: number, dim: number, opts: InitOptions = {}) {
    super();
    this.weight = this.param('weight', randn([num, dim], { generator: opts.generator ?? defaultGenerator, device: opts.device }));
  }
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}

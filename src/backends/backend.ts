// The backend seam: the small set of primitive kernels every backend implements, plus optional fused
// kernels that ops/ uses when present and otherwise decomposes into primitives. Backends know nothing
// about autograd, tensors or scopes: they see buffers and strided views of them. See docs/backends.md.

import type { DType, TypedArray } from '../tensor/dtype.js';
import type { Distribution } from '../tensor/random.js';

/** An allocation owned by one backend. Freed explicitly (never by the garbage collector). */
export interface BackendBuffer {
  readonly backend: string;
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
}

/** A strided window onto a buffer: element (i0, i1, ...) lives at offset + sum(ik * strides[k]). */
export interface View {
  readonly buf: BackendBuffer;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

export type UnaryOp =
  | 'neg' | 'abs' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'sin' | 'cos' | 'tanh' | 'sigmoid' | 'silu'
  | 'gelu' | 'gelu_tanh' | 'relu' | 'erf' | 'erfinv' | 'sign' | 'floor' | 'ceil' | 'round' | 'reciprocal'
  | 'square' | 'not';

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'and' | 'or';

export type ReduceOp = 'sum' | 'max' | 'min' | 'prod' | 'argmax' | 'argmin';

/** Kernels a backend may provide to beat the default decomposition in ops/. Shapes are pre-validated. */
export interface FusedKernels {
  /** Softmax (or log-softmax) of scale * x over the last axis of a contiguous [rows, cols] input. */
  softmax(x: View, out: View, log: boolean, scale: number): void;
  /** Softmax backward over the last axis: out = scale * y * (g - rowsum(g * y)); y, g, out contiguous. */
  softmaxBackward(y: View, g: View, out: View, scale: number): void;
  /** d silu(x) / dx * g = g * s * (1 + x * (1 - s)) with s = sigmoid(x); x, g, out contiguous, same shape. */
  siluBackward(x: View, g: View, out: View): void;
  /** Normalise the last `cols` elements of each row; writes mean and rstd per row (for the backward). */
  layerNorm(x: View, weight: View | null, bias: View | null, eps: number, out: View, mean: View, rstd: View): void;
  /**
   * Optional: layer norm backward over contiguous [rows, cols] x, g, dx with the forward's per-row mean and
   * rstd: dx = rstd * ((gy - mean(gy)) - xhat * mean(gy * xhat)) with xhat = (x - mean) * rstd, gy = g * weight
   * (g when weight is null); dweight = column sums of g * xhat, dbias = column sums of g (each when given).
   * mean null: x holds xhat already (the output of a norm without weight and bias, which the graph kept).
   */
  layerNormBackward?(x: View, mean: View | null, rstd: View, weight: View | null, g: View, dx: View, dweight: View | null, dbias: View | null): void;
  /** Optional: out = silu(a) * b over contiguous views of one shape; false (nothing done) when declined. */
  swiglu?(a: View, b: View, out: View): boolean;
  /** Optional: da = g * b * silu'(a) and db = g * silu(a) (each when given) over contiguous views; false when declined. */
  swigluBackward?(a: View, b: View, g: View, da: View | null, db: View | null): boolean;
  /**
   * Optional: out = x * (1 + scale) + shift (adaLN's modulate) in one pass, scale and shift broadcast to
   * out's shape (stride 0), rounded as the composed ops round (1 + scale in scale's dtype, then a float32
   * multiply and add); false (nothing done) when declined (e.g. dtypes it has no kernel for).
   */
  modulate?(x: View, scale: View, shift: View, out: View): boolean;
  /**
   * Optional: out = x + gate * y (adaLN's gated residual) in one pass, gate and y broadcast to out's shape,
   * rounded as the composed ops round (gate * y in their dtype, then a float32 add); false when declined.
   */
  gatedAdd?(x: View, gate: View, y: View, out: View): boolean;
  /**
   * Optional: rotary embedding of contiguous x [B, T, H, hd] with contiguous cos/sin [T, hd/2]: each pair
   * (x0, x1) -> (x0 c - x1 s, x0 s + x1 c), or with `inverse` (x0 c + x1 s, x1 c - x0 s); false when declined.
   */
  rotary?(x: View, cos: View, sin: View, out: View, inverse: boolean): boolean;
  /**
   * Optional: fused attention forward, out = softmax(scale * q k^T (+ causal mask)) v, over views
   * q [B, H, Tq, D], k and v [B, H, Tk, D], out [B, H, Tq, D], each with unit stride on D (any other
   * strides). Writes the per-row log-sum-exp into lse ([B, H, Tq] float32, contiguous) when given.
   * Returns false, having done nothing, when the case is outside the kernel (caller decomposes).
   */
  attention?(q: View, k: View, v: View, out: View, scale: number, lse: View | null, causal: boolean): boolean;
  /**
   * Optional: the backward of `attention` from its output and log-sum-exp (the probabilities are
   * recomputed): dq, dk, dv are fresh contiguous tensors shaped like q, k, v. Returns false, having done
   * nothing, when the case is outside the kernel (ops/ then recomputes the probabilities by primitives).
   */
  attentionBackward?(q: View, k: View, v: View, out: View, lse: View, dout: View, dq: View, dk: View, dv: View, scale: number, causal: boolean): boolean;
  /**
   * Optional: one Adam / AdamW step (torch.optim semantics, see src/optim/adamw.ts) over a whole parameter
   * group: each entry's p (master weights), g (gradient), m, v (moments) are contiguous views of equal size,
   * `step` its 1-based step count; pLow, when given, receives a copy of the updated p in its own dtype.
   * Returns false, having done nothing, when it cannot (ops/ decomposes into primitives).
   */
  adamw?(params: readonly AdamWParam[], hp: AdamWHyper): boolean;
  /** Optional: one SGD step (momentum buffer per entry or null, weight decay) over a parameter group; false as adamw. */
  sgd?(params: readonly SgdParam[], hp: SgdHyper): boolean;
}

export interface AdamWParam {
  p: View;
  g: View;
  m: View;
  v: View;
  /** 1-based step count of this parameter (bias correction). */
  step: number;
  pLow?: View | null;
}

/** Hyperparameters of one fused Adam / AdamW step. */
export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** true: AdamW (p *= 1 - lr * wd first); false: Adam (g += wd * p). */
  decoupled: boolean;
  /** Multiplies the gradient first (loss-scale removal, clipping); default 1. */
  gradScale?: number;
}

export interface SgdParam {
  p: View;
  g: View;
  /** Momentum buffer (updated in place), or null without momentum. */
  buf: View | null;
}

export interface SgdHyper {
  lr: number;
  momentum: number;
  weightDecay: number;
}

export interface Backend {
  readonly name: string;
  /** Whether the backend can run on this machine right now, and why not. */
  readonly available: boolean;
  readonly reason?: string;
  /** True for backends that track shapes but hold no data (meta): they have no numbers to test. */
  readonly dataless?: boolean;
  /** Low-precision float dtypes the backend computes in natively (autocast casts to them); absent: none,
   *  and autocast emulates them by rounding float32 values (src/ops/autocast.ts). */
  readonly lowPrecision?: readonly DType[];
  /** Optional: floats of im2col columns a convolution builds at once (default a few MiB, sized for a CPU
   *  cache; a GPU, where each chunk costs launches, takes far larger chunks). */
  readonly convChunkFloats?: number;
  /** The accelerator's name ('NVIDIA H200'), for throughput reports; absent on host backends. */
  readonly deviceName?: string;
  /** Block until all queued work has finished (asynchronous devices); for timing. Absent = synchronous. */
  synchronize?(): void;

  // memory -------------------------------------------------------------------------------------------
  alloc(dtype: DType, size: number): BackendBuffer;
  free(buf: BackendBuffer): void;
  /** Write host data into a buffer starting at element `offset`. */
  write(buf: BackendBuffer, data: ArrayLike<number>, offset?: number): void;
  /** Copy a buffer's elements to the host (float16/bfloat16 come back as raw uint16 bits). */
  read(buf: BackendBuffer): TypedArray;
  /** Buffers allocated and not yet freed (pooled memory not counted): for leak tests. */
  liveBuffers(): number;
  /** Bytes of live buffers (pooled memory not counted), where the backend tracks them (cpu, meta). */
  liveBytes?(): number;
  /** The most liveBytes() reached since the last resetPeakBytes() (or the start). */
  peakBytes?(): number;
  /** Start a new peak measurement at the current live bytes. */
  resetPeakBytes?(): void;

  // primitives (outputs `out` are contiguous views of fresh buffers unless stated) -------------------
  /** dst[...] = value; dst may be any strided view. */
  fill(dst: View, value: number): void;
  /** Strided copy with dtype conversion; with accumulate, dst += src. dst may be any non-overlapping view. */
  copy(src: View, dst: View, accumulate: boolean): void;
  unary(op: UnaryOp, x: View, out: View): void;
  /** a and b are already broadcast to out's shape (stride 0 on broadcast dims). */
  binary(op: BinaryOp, a: View, b: View, out: View): void;
  where(cond: View, a: View, b: View, out: View): void;
  /**
   * Optional: out = a op s (s op a when scalarFirst) with the number s as a kernel argument, rounded first
   * to a's dtype (as a 0-d tensor of that dtype would hold it). Absent: ops/ materialises s as a 0-d tensor.
   */
  binaryScalar?(op: BinaryOp, a: View, s: number, out: View, scalarFirst: boolean): void;
  /** Reduce x over `axes`; out has x's shape with those axes set to 1. */
  reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void;
  /** Batched matmul: a [B, M, K], b [B, K, N] (any strides, stride 0 for broadcast), out [B, M, N]. */
  matmul(a: View, b: View, out: View): void;
  /** torch.gather: out[..i..] = x[..index[..i..] on `axis`..]; index and out share a shape. */
  gather(x: View, axis: number, index: View, out: View): void;
  /** dst[..index[..i..] on `axis`..] += src[..i..]; dst is modified in place. */
  scatterAdd(dst: View, axis: number, index: View, src: View): void;
  /** Fill out with draws offset.. offset+n-1 of the Philox stream for `seed` (see tensor/random.ts). */
  random(out: View, dist: Distribution, seed: number, offset: number): void;

  /** Optional fused kernels; ops/ falls back to primitives for any that are missing. */
  readonly fused: Partial<FusedKernels>;
}

// Neural-network ops: softmax family, normalisation, conv2d, embedding, losses, dropout.
// softmax and layer_norm use a backend's fused kernel when it has one, else a primitive decomposition.
import type { Backend, View } from '../backends/backend.js';
import { isGradEnabled, noGrad } from '../autograd/grad-mode.js';
import { isFloat } from '../tensor/dtype.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { normAxis, numel, shapeStr } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { full, rand } from './creation.js';
import { add, broadcastView, div, exp, lt, mul, neg, rsqrt, square, sub, sumTo as sumToShape } from './elementwise.js';
import { matmul } from './matmul.js';
import { cast, gather, indexSelect, pad } from './movement.js';
import { conv2dChunked } from './conv.js';
import { autocast, autocastDtype, fullInput, lowInputs, lowOutput } from './autocast.js';
import { backendOf, empty, needsGrad, record } from './record.js';
import { mean, sum, variance } from './reduce.js';
import { contiguous, reshape, transpose, unsqueeze } from './views.js';

function checkFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (!isFloat(t.dtype)) throw new Error(`${op}: expected a floating-point tensor, got ${t.describe()}`);
}

/** Primitive decomposition of a row softmax of scale * x: max, subtract, exp, sum, divide (or subtract log-sum). */
function softmaxByPrimitives(be: Backend, x: Tensor, out: Tensor, log: boolean, scale: number): void {
  const rowShape = [...x.shape.slice(0, -1), 1];
  const axes = [x.ndim - 1];
  const bcast = (t: Tensor): View => broadcastView(t, x.shape).view();
  const scaled = empty(be, x.shape, x.dtype);
  const s0 = full([], scale, { dtype: x.dtype, device: x.device });
  be.binary('mul', x.view(), bcast(s0), scaled.view());
  const mx = empty(be, rowShape, x.dtype);
  be.reduce('max', scaled.view(), axes, mx.view());
  const shifted = empty(be, x.shape, x.dtype);
  be.binary('sub', scaled.view(), bcast(mx), shifted.view());
  const e = empty(be, x.shape, x.dtype);
  be.unary('exp', shifted.view(), e.view());
  const s = empty(be, rowShape, x.dtype);
  be.reduce('sum', e.view(), axes, s.view());
  if (log) {
    const ls = empty(be, rowShape, x.dtype);
    be.unary('log', s.view(), ls.view());
    be.binary('sub', shifted.view(), bcast(ls), out.view());
    ls.dispose();
  } else {
    be.binary('div', e.view(), bcast(s), out.view());
  }
  for (const t of [s0, scaled, mx, shifted, e, s]) t.dispose();
}

/** scale * y * (g - rowsum(g * y)) over the last axis: the softmax backward, fused where the backend can. */
function softmaxBackward(y: Tensor, g: Tensor, scale: number): Tensor {
  const be = y.backend;
  if (be.fused.softmaxBackward) {
    const gc = contiguous(g), yc = contiguous(y);
    const out = empty(be, y.shape, y.dtype);
    be.fused.softmaxBackward(yc.view(), gc.view(), out.view(), scale);
    gc.dispose();
    yc.dispose();
    return out;
  }
  return mul(mul(y, sub(g, sum(mul(g, y), -1, true))), scale);
}

function softmaxLast(x: Tensor, log: boolean, scale = 1): Tensor {
  x = fullInput(x);
  const op = log ? 'logSoftmax' : 'softmax';
  const be = backendOf(op, x);
  checkFloat(op, x);
  if (!(scale > 0)) throw new Error(`${op}: scale must be positive, got ${scale}`);
  const xc = noGrad(() => contiguous(x));
  const out = empty(be, x.shape, x.dtype);
  if (be.fused.softmax && x.size > 0) be.fused.softmax(xc.view(op), out.view(), log, scale);
  else softmaxByPrimitives(be, xc, out, log, scale);
  xc.dispose();
  return record(out, op, [x], [out], (g, [y]) => {
    if (log) return [mul(sub(g, mul(exp_(y!), sum(g, -1, true))), scale)];
    return [softmaxBackward(y!, g, scale)];
  });
}

function exp_(t: Tensor): Tensor {
  const out = empty(t.backend, t.shape, t.dtype);
  t.backend.unary('exp', t.view(), out.view());
  return out;
}

function alongLast(x: Tensor, axis: number, f: (t: Tensor) => Tensor): Tensor {
  const ax = normAxis('softmax', axis, x.ndim);
  if (ax === x.ndim - 1 || x.ndim === 0) return f(x);
  const t = transpose(x, ax, -1);
  const y = f(t);
  return transpose(y, ax, -1);
}

export const softmax = (x: Tensor, axis = -1) => alongLast(x, axis, (t) => softmaxLast(t, false));
export const logSoftmax = (x: Tensor, axis = -1) => alongLast(x, axis, (t) => softmaxLast(t, true));

/**
 * softmax(q k^T * scale) v over the last two axes of q, k, v [..., T, hd] (scale defaults to 1/sqrt(hd)),
 * as one op. With a backend's fused attention (4-D inputs of one batch and head count) only the output
 * and the per-row log-sum-exp are kept for the backward, which recomputes the probabilities (fused, or by
 * primitives from the log-sum-exp); otherwise the probabilities are kept and the backward runs as matmuls
 * plus one fused row pass.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, scale?: number): Tensor {
  if (autocastDtype()) {
    // under autocast: low-precision inputs and output, the op itself as without autocast
    const be = backendOf('attention', q, k, v);
    const [lq, lk, lv] = lowInputs(be, [q, k, v]) as [Tensor, Tensor, Tensor];
    return lowOutput(be, autocast(null, () => scaledDotProductAttention(lq, lk, lv, scale)));
  }
  const be = backendOf('attention', q, k, v);
  checkFloat('attention', q, k, v);
  const hd = q.shape[q.ndim - 1]!;
  if (q.ndim < 2 || k.ndim !== q.ndim || v.ndim !== q.ndim || k.shape[k.ndim - 1] !== hd || k.shape[k.ndim - 2] !== v.shape[v.ndim - 2]) {
    throw new Error(`attention: expected q [..., Tq, d], k [..., Tk, d], v [..., Tk, dv], got ${q.describe()}, ${k.describe()}, ${v.describe()}`);
  }
  const s = scale ?? 1 / Math.sqrt(hd);
  const fused = fusedAttention(be, q, k, v, s);
  if (fused) return fused;
  const [p, out] = noGrad(() => {
    const scores = matmul(q, transpose(k, -2, -1));
    const probs = softmaxLast(scores, false, s);
    scores.dispose();
    return [probs, matmul(probs, v)];
  });
  const result = record(out, 'attention', [q, k, v], [q, k, v, p], (g, [sq, sk, sv, sp]) => {
    const dp = matmul(g, transpose(sv!, -2, -1));
    const ds = softmaxBackward(sp!, dp, s);
    return [
      sumToShape(matmul(ds, sk!), sq!.shape),
      sumToShape(matmul(transpose(ds, -2, -1), sq!), sk!.shape),
      sumToShape(matmul(transpose(sp!, -2, -1), g), sv!.shape),
    ];
  });
  p.dispose();
  return result;
}

/** The fused path of scaledDotProductAttention, or null when the backend has none or declines the case. */
function fusedAttention(be: Backend, q: Tensor, k: Tensor, v: Tensor, s: number): Tensor | null {
  if (!be.fused.attention || q.ndim !== 4 || q.dtype !== k.dtype || q.dtype !== v.dtype) return null;
  const [B, H, Tq] = q.shape as [number, number, number, number];
  if (k.shape[0] !== B || k.shape[1] !== H || v.shape[0] !== B || v.shape[1] !== H) return null;
  const grad = needsGrad([q, k, v]);
  const [qc, kc, vc] = noGrad(() => [q, k, v].map((t) => (t.strides[3] === 1 || t.shape[3] === 1 ? t.alias() : contiguous(t))));
  const out = empty(be, [B, H, Tq, v.shape[3]!], q.dtype);
  const lse = grad ? empty(be, [B, H, Tq], 'float32') : null;
  const ok = be.fused.attention(qc!.view('attention'), kc!.view('attention'), vc!.view('attention'), out.view(), s, lse?.view() ?? null, false);
  for (const t of [qc, kc, vc]) t!.dispose();
  if (!ok) {
    out.dispose();
    lse?.dispose();
    return null;
  }
  if (!lse) return out;
  const result = record(out, 'attention', [q, k, v], [q, k, v, out, lse], (g, [sq, sk, sv, so, sl]) => attentionGrads(g, sq!, sk!, sv!, so!, sl!, s));
  lse.dispose();
  return result;
}

/** Gradients of fused attention from its output and log-sum-exp: the backend's kernel, else primitives. */
function attentionGrads(g: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, s: number): Tensor[] {
  const be = g.backend;
  const gc = contiguous(g);
  if (be.fused.attentionBackward) {
    const [dq, dk, dv] = [q, k, v].map((t) => empty(be, t.shape, t.dtype)) as [Tensor, Tensor, Tensor];
    const unit = (t: Tensor) => (t.strides[3] === 1 || t.shape[3] === 1 ? t.alias() : contiguous(t));
    const [qc, kc, vc] = [unit(q), unit(k), unit(v)];
    const ok = be.fused.attentionBackward(qc.view(), kc.view(), vc.view(), out.view(), lse.view(), gc.view(), dq.view(), dk.view(), dv.view(), s, false);
    for (const t of [qc, kc, vc]) t.dispose();
    if (ok) return [dq, dk, dv];
    for (const t of [dq, dk, dv]) t.dispose();
  }
  // p = exp(s q k^T - lse); ds = s p (dp - rowsum(g * out)) with dp = g v^T
  const p = exp(sub(mul(matmul(q, transpose(k, -2, -1)), s), unsqueeze(lse, -1)));
  const dv = matmul(transpose(p, -2, -1), gc);
  const ds = mul(mul(p, sub(matmul(gc, transpose(v, -2, -1)), sum(mul(gc, out), -1, true))), s);
  return [matmul(ds, k), matmul(transpose(ds, -2, -1), q), dv];
}

/** Layer norm over the trailing `normalizedShape` dims, with optional affine weight and bias (float32 math). */
export function layerNorm(input: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const x = fullInput(input);
  const be = backendOf('layerNorm', x, ...(weight ? [weight] : []), ...(bias ? [bias] : []));
  checkFloat('layerNorm', x);
  const k = normalizedShape.length;
  if (k === 0 || k > x.ndim || normalizedShape.some((d, i) => d !== x.shape[x.ndim - k + i])) {
    throw new Error(`layerNorm: normalized shape ${shapeStr(normalizedShape)} does not match the trailing dims of ${x.describe()}`);
  }
  for (const p of [weight, bias]) {
    if (p && (p.ndim !== k || p.shape.some((d, i) => d !== normalizedShape[i]))) {
      throw new Error(`layerNorm: parameter ${p.describe()} must have shape ${shapeStr(normalizedShape)}`);
    }
  }
  const cols = numel(normalizedShape), rows = x.size / Math.max(cols, 1);
  const out = empty(be, [rows, cols], x.dtype);
  // statistics in float32 whatever the input's dtype (float64 for float64 inputs)
  const statDtype = x.dtype === 'float64' ? 'float64' : 'float32';
  const mu = empty(be, [rows, 1], statDtype), rs = empty(be, [rows, 1], statDtype);
  const [x2, w2, b2] = noGrad(() => [x, weight, bias].map((t) => (t ? reshape(t, t === x ? [rows, cols] : [cols]) : null)));
  if (be.fused.layerNorm) {
    be.fused.layerNorm(x2!.view(), w2?.view() ?? null, b2?.view() ?? null, eps, out.view(), mu.view(), rs.view());
  } else {
    noGrad(() => layerNormByPrimitives(be, x2!, w2!, b2!, eps, out, mu, rs));
  }
  const y = out.alias(x.shape, x.shape.map((_, i) => numel(x.shape.slice(i + 1))), 0);
  b2?.dispose();
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  // What the backward keeps. By default the input and the statistics; under autocast a bf16/fp16 input as it
  // came rather than its float32 copy (half the bytes, exact). Without weight and bias a float32 input is
  // not kept at all: the output is x-hat itself, and in the models a modulate keeps that output anyway, so
  // the residual stream that came in is freed after its block (both: 13% of the 4.78B MMDiT's activations).
  const upcast = input !== x;
  const savesOutput = !upcast && !weight && !bias && (x.dtype === 'float32' || x.dtype === 'float64');
  const keptInput = upcast ? noGrad(() => reshape(input, [rows, cols])) : x2!;
  // saved: (the input or the output x-hat), rstd, then the input's means (none when x-hat is kept) and weight
  const saved = savesOutput ? [out, rs] : [keptInput, rs, mu, ...(w2 ? [w2] : [])];
  const result = record(y, 'layerNorm', inputs, saved, (g, [kx, srs, smu, sw]) => {
    const sx = kx!.dtype === x.dtype ? kx! : cast(kx!, x.dtype);
    if (be.fused.layerNormBackward) {
      const gc = contiguous(reshape(g, [rows, cols]));
      const dx = empty(be, [rows, cols], x.dtype);
      const dw = weight ? empty(be, [cols], weight.dtype) : null, db = bias ? empty(be, [cols], bias.dtype) : null;
      be.fused.layerNormBackward(sx.view(), smu?.view() ?? null, srs!.view(), sw?.view() ?? null, gc.view(), dx.view(), dw?.view() ?? null, db?.view() ?? null);
      const grads: Tensor[] = [reshape(dx, x.shape)];
      if (dw) grads.push(reshape(dw, weight!.shape));
      if (db) grads.push(reshape(db, bias!.shape));
      return grads;
    }
    const g2 = reshape(g, [rows, cols]);
    const xhat = smu ? mul(sub(sx, smu), srs!) : sx;
    const gy = sw ? mul(g2, sw) : g2;
    const dx = mul(srs!, sub(sub(gy, mean(gy, -1, true)), mul(xhat, mean(mul(gy, xhat), -1, true))));
    const grads: Tensor[] = [reshape(dx, x.shape)];
    if (weight) grads.push(reshape(sum(mul(g2, xhat), 0), weight.shape));
    if (bias) grads.push(reshape(sum(g2, 0), bias.shape));
    return grads;
  });
  // the graph node holds its own references
  for (const t of new Set([out, rs, mu, x2!, keptInput])) t.dispose();
  return result;
}

function layerNormByPrimitives(be: Backend, x: Tensor, w: Tensor | null, b: Tensor | null, eps: number, out: Tensor, mu: Tensor, rs: Tensor): void {
  const m = mean(x, -1, true);
  const v = variance(x, -1, { correction: 0, keepdim: true });
  const r = rsqrt(add(v, eps));
  let y = mul(sub(x, m), r);
  if (w) y = mul(y, w);
  if (b) y = add(y, b);
  be.copy(y.view(), out.view(), false);
  be.copy(m.view(), mu.view(), false);
  be.copy(r.view(), rs.view(), false);
  for (const t of [m, v, r, y]) t.dispose();
}

/** Group norm over [N, C, ...] with G groups and per-channel affine, as torch.nn.functional.group_norm. */
export function groupNorm(x: Tensor, groups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  checkFloat('groupNorm', x);
  const C = x.shape[1];
  if (x.ndim < 2 || C === undefined || !Number.isInteger(groups) || groups <= 0 || C % groups !== 0) {
    throw new Error(`groupNorm: ${x.describe()} needs shape [N, C, ...] with C divisible by groups=${groups}`);
  }
  for (const p of [weight, bias]) if (p && (p.ndim !== 1 || p.shape[0] !== C)) throw new Error(`groupNorm: parameter ${p.describe()} must have shape [${C}]`);
  // each (item, group) is a row normalised like layerNorm's (population variance, eps inside the root),
  // so the fused layer norm kernels (and their backward) do the work
  const xr = reshape(x, [x.shape[0]!, groups, -1]);
  let y = reshape(layerNorm(xr, [xr.shape[2]!], null, null, eps), x.shape);
  const affineShape = [C, ...x.shape.slice(2).map(() => 1)];
  if (weight) y = mul(y, reshape(weight, affineShape));
  if (bias) y = add(y, reshape(bias, affineShape));
  return y;
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
}

/** 2-D convolution (cross-correlation) of x [N, C, H, W] with weight [O, C, KH, KW], as torch's conv2d. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  if (autocastDtype()) {
    const be = backendOf('conv2d', x, weight, ...(bias ? [bias] : []));
    const [lx, lw, lb] = lowInputs(be, [x, weight, ...(bias ? [bias] : [])]) as [Tensor, Tensor, Tensor | undefined];
    return lowOutput(be, autocast(null, () => conv2d(lx, lw, lb ?? null, opts)));
  }
  const stride = opts.stride ?? 1, padding = opts.padding ?? 0;
  checkFloat('conv2d', x, weight);
  if (x.ndim !== 4 || weight.ndim !== 4 || x.shape[1] !== weight.shape[1]) {
    throw new Error(`conv2d: expected x [N, C, H, W] and weight [O, C, KH, KW] with matching C, got ${x.describe()} and ${weight.describe()}`);
  }
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(padding) || padding < 0) {
    throw new Error(`conv2d: stride must be >= 1 and padding >= 0 (integers), got stride=${stride} padding=${padding}`);
  }
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [O, , KH, KW] = weight.shape as [number, number, number, number];
  if (H + 2 * padding < KH || W + 2 * padding < KW) throw new Error(`conv2d: kernel ${KH}x${KW} is larger than the padded input ${H + 2 * padding}x${W + 2 * padding}`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== O)) throw new Error(`conv2d: bias ${bias.describe()} must have shape [${O}]`);
  let out: Tensor;
  if (KH === 1 && KW === 1 && stride === 1 && padding === 0) {
    // a 1x1 convolution is a matmul over the channels: no im2col copy
    out = reshape(matmul(reshape(weight, [O, C]), reshape(x, [N, C, H * W])), [N, O, H, W]);
  } else if (!isGradEnabled() || !(x.requiresGrad || weight.requiresGrad)) {
    out = conv2dBanded(x, weight, stride, padding);
  } else {
    // differentiable: im2col a few batch items at a time, rebuilt in the backward (ops/conv.ts)
    backendOf('conv2d', x, weight, ...(bias ? [bias] : []));
    if (x.dtype !== weight.dtype) throw new Error(`conv2d: dtypes differ: ${x.describe()} and ${weight.describe()}`);
    const xp = padding ? pad(contiguous(x), [padding, padding, padding, padding]) : contiguous(x);
    out = conv2dChunked(xp, contiguous(weight), stride);
  }
  if (bias) out = add(out, reshape(bias, [O, 1, 1]));
  return out;
}

/** Elements of im2col matrix built at a time by the forward-only convolution (64 MB of float32). */
const CONV_BAND_ELEMENTS = 1 << 24;

/**
 * Forward-only convolution (nothing to differentiate): im2col over bands of output rows, each band one
 * GEMM whose result is copied into its rows of the output. The same arithmetic as the differentiable path,
 * with im2col memory bounded by CONV_BAND_ELEMENTS instead of C*KH*KW*OH*OW (9.6 GB for the SDXL VAE's
 * last 256->128 convolution at 1024x1024).
 */
function conv2dBanded(x: Tensor, weight: Tensor, stride: number, padding: number): Tensor {
  return noGrad(() => {
    const [N, C] = x.shape as [number, number, number, number];
    const [O, , KH, KW] = weight.shape as [number, number, number, number];
    const xp = padding ? pad(contiguous(x), [padding, padding, padding, padding]) : contiguous(x);
    const [, , HP, WP] = xp.shape as [number, number, number, number];
    const OH = Math.floor((HP - KH) / stride) + 1, OW = Math.floor((WP - KW) / stride) + 1;
    const K = C * KH * KW;
    const w2 = reshape(weight, [O, K]);
    const be = xp.backend;
    const out = empty(be, [N, O, OH, OW], x.dtype);
    const [sN, sC, sH, sW] = xp.strides as [number, number, number, number];
    const band = Math.max(1, Math.min(OH, Math.floor(CONV_BAND_ELEMENTS / (K * OW))));
    for (let n = 0; n < N; n++) {
      for (let r0 = 0; r0 < OH; r0 += band) {
        const rows = Math.min(band, OH - r0);
        const windows = xp.alias([C, KH, KW, rows, OW], [sC, sH, sW, sH * stride, sW * stride], xp.offset + n * sN + r0 * stride * sH);
        const cols = empty(be, [K, rows * OW], x.dtype);
        be.copy(windows.view('conv2d'), cols.alias([C, KH, KW, rows, OW], [KH * KW * rows * OW, KW * rows * OW, rows * OW, OW, 1], 0).view(), false);
        const y = matmul(w2, cols); // [O, rows*OW]
        const dst = out.alias([O, rows, OW], [OH * OW, OW, 1], n * O * OH * OW + r0 * OW);
        be.copy(y.alias([O, rows, OW], [rows * OW, OW, 1], 0).view(), dst.view(), false);
        for (const t of [windows, cols, y, dst]) t.dispose();
      }
    }
    xp.dispose();
    w2.dispose();
    return out;
  });
}

/** Rows of `weight` [V, D] picked by integer ids of any shape -> [...ids.shape, D]. */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be [num_embeddings, dim], got ${weight.describe()}`);
  const rows = indexSelect(weight, 0, reshape(ids, [-1]));
  return reshape(rows, [...ids.shape, weight.shape[1]!]);
}

export type Reduction = 'mean' | 'sum' | 'none';

function reduceLoss(t: Tensor, reduction: Reduction): Tensor {
  return reduction === 'mean' ? mean(t) : reduction === 'sum' ? sum(t) : t;
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  input = fullInput(input);
  target = fullInput(target);
  if (input.ndim !== target.ndim || input.shape.some((d, i) => d !== target.shape[i])) {
    throw new Error(`mseLoss: input ${input.describe()} and target ${target.describe()} must have the same shape`);
  }
  return reduceLoss(square(sub(input, target)), reduction);
}

/** Cross entropy of logits [N, C] against integer class targets [N] (torch.nn.functional.cross_entropy). */
export function crossEntropy(logits: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  logits = fullInput(logits);
  if (logits.ndim !== 2 || target.ndim !== 1 || target.shape[0] !== logits.shape[0]) {
    throw new Error(`crossEntropy: expected logits [N, C] and targets [N], got ${logits.describe()} and ${target.describe()}`);
  }
  if (target.dtype !== 'int32' && target.dtype !== 'int64') throw new Error(`crossEntropy: targets must be int32 or int64 class indices, got ${target.describe()}`);
  const lp = logSoftmax(logits, -1);
  const picked = gather(lp, 1, unsqueeze(target, 1));
  return reduceLoss(neg(reshape(picked, [-1])), reduction);
}

/** Inverted dropout: zero with probability p and scale the rest by 1/(1-p). Identity when not training. */
export function dropout(x: Tensor, p: number, training = true, generator: Generator = defaultGenerator): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x.alias();
  const keepMask = lt(rand(x.shape, { device: x.device, dtype: x.dtype, generator }), 1 - p);
  return div(mul(x, keepMask), 1 - p);
}

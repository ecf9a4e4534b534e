// Fused cpu kernels: one pass per row instead of the primitive decomposition's several (wasm for
// float32, with TypeScript loops for other dtypes), fused attention and fused optimizer steps.
import type { FusedKernels, View } from '../backend.js';
import type { CpuBuffer } from './buffer.js';
import { fastLayerNorm, fastLayerNormBackward, fastSiluBackward, fastSoftmax, fastSoftmaxBackward } from './fast/rowops.js';
import { fastAttention, fastAttentionBackward } from './fast/attention.js';
import { fastAdam, fastSgd } from './fast/optim.js';
import { fastRotary, fastSwiglu, fastSwigluBackward } from './fast/composite.js';

const f32 = (...vs: (View | null)[]): boolean => vs.every((v) => !v || (v.buf as CpuBuffer).data instanceof Float32Array);

function rowsOf(x: View): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols === 0 ? 0 : x.buf.size === 0 ? 0 : Math.round(x.shape.reduce((a, b) => a * b, 1) / cols), cols];
}

export const cpuFused: FusedKernels = {
  softmax(x, out, log, scale) {
    const X = (x.buf as CpuBuffer).data, O = (out.buf as CpuBuffer).data;
    const [rows, cols] = rowsOf(x);
    if (f32(x, out) && fastSoftmax(X as Float32Array, x.offset, O as Float32Array, out.offset, rows, cols, scale, log)) return;
    for (let r = 0; r < rows; r++) {
      const xi = x.offset + r * cols, oi = out.offset + r * cols;
      let max = -Infinity;
      for (let j = 0; j < cols; j++) { const v = X[xi + j]!; if (v > max) max = v; }
      const m = max * scale;
      let sum = 0;
      if (log) {
        for (let j = 0; j < cols; j++) sum += Math.exp(X[xi + j]! * scale - m);
        const lse = m + Math.log(sum);
        for (let j = 0; j < cols; j++) O[oi + j] = X[xi + j]! * scale - lse;
      } else {
        for (let j = 0; j < cols; j++) { const e = Math.exp(X[xi + j]! * scale - m); O[oi + j] = e; sum += e; }
        const inv = 1 / sum;
        for (let j = 0; j < cols; j++) O[oi + j]! *= inv;
      }
    }
  },
  softmaxBackward(y, g, out, scale) {
    const Y = (y.buf as CpuBuffer).data, G = (g.buf as CpuBuffer).data, O = (out.buf as CpuBuffer).data;
    const [rows, cols] = rowsOf(y);
    if (f32(y, g, out) && fastSoftmaxBackward(Y as Float32Array, y.offset, G as Float32Array, g.offset, O as Float32Array, out.offset, rows, cols, scale)) return;
    for (let r = 0; r < rows; r++) {
      const yi = y.offset + r * cols, gi = g.offset + r * cols, oi = out.offset + r * cols;
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += G[gi + j]! * Y[yi + j]!;
      for (let j = 0; j < cols; j++) O[oi + j] = scale * Y[yi + j]! * (G[gi + j]! - dot);
    }
  },
  siluBackward(x, g, out) {
    const X = (x.buf as CpuBuffer).data, G = (g.buf as CpuBuffer).data, O = (out.buf as CpuBuffer).data;
    const n = x.shape.reduce((a, b) => a * b, 1);
    if (f32(x, g, out) && fastSiluBackward(X as Float32Array, x.offset, G as Float32Array, g.offset, O as Float32Array, out.offset, n)) return;
    for (let i = 0; i < n; i++) {
      const v = X[x.offset + i]!, s = 1 / (1 + Math.exp(-v));
      O[out.offset + i] = G[g.offset + i]! * s * (1 + v * (1 - s));
    }
  },
  layerNorm(x, weight, bias, eps, out, mean, rstd) {
    const X = (x.buf as CpuBuffer).data, O = (out.buf as CpuBuffer).data;
    const W = weight ? (weight.buf as CpuBuffer).data : null, B = bias ? (bias.buf as CpuBuffer).data : null;
    const Mu = (mean.buf as CpuBuffer).data, Rs = (rstd.buf as CpuBuffer).data;
    const [rows, cols] = rowsOf(x);
    if (f32(x, weight, bias, out, mean, rstd) && fastLayerNorm(X as Float32Array, x.offset, W as Float32Array | null, weight ? weight.offset : 0,
      B as Float32Array | null, bias ? bias.offset : 0, O as Float32Array, out.offset, Mu as Float32Array, mean.offset, Rs as Float32Array, rstd.offset, rows, cols, eps)) return;
    for (let r = 0; r < rows; r++) {
      const xi = x.offset + r * cols, oi = out.offset + r * cols;
      let s = 0;
      for (let j = 0; j < cols; j++) s += X[xi + j]!;
      const mu = s / cols;
      let v = 0;
      for (let j = 0; j < cols; j++) v += (X[xi + j]! - mu) ** 2;
      const rs = 1 / Math.sqrt(v / cols + eps);
      Mu[mean.offset + r] = mu;
      Rs[rstd.offset + r] = rs;
      for (let j = 0; j < cols; j++) {
        let y = (X[xi + j]! - mu) * rs;
        if (W) y *= W[weight!.offset + j]!;
        if (B) y += B[bias!.offset + j]!;
        O[oi + j] = y;
      }
    }
  },
  layerNormBackward(x, mean, rstd, weight, g, dx, dweight, dbias) {
    const X = (x.buf as CpuBuffer).data, G = (g.buf as CpuBuffer).data, DX = (dx.buf as CpuBuffer).data;
    const Mu = mean ? (mean.buf as CpuBuffer).data : null, Rs = (rstd.buf as CpuBuffer).data;
    const W = weight ? (weight.buf as CpuBuffer).data : null;
    const DW = dweight ? (dweight.buf as CpuBuffer).data : null, DB = dbias ? (dbias.buf as CpuBuffer).data : null;
    const [rows, cols] = rowsOf(x);
    if (f32(x, mean, rstd, weight, g, dx, dweight, dbias) && fastLayerNormBackward(X as Float32Array, x.offset, Mu as Float32Array | null, mean?.offset ?? 0,
      Rs as Float32Array, rstd.offset, W as Float32Array | null, weight?.offset ?? 0, G as Float32Array, g.offset, DX as Float32Array, dx.offset,
      DW as Float32Array | null, dweight?.offset ?? 0, DB as Float32Array | null, dbias?.offset ?? 0, rows, cols)) return;
    if (DW) DW.fill(0, dweight!.offset, dweight!.offset + cols);
    if (DB) DB.fill(0, dbias!.offset, dbias!.offset + cols);
    for (let r = 0; r < rows; r++) {
      const xi = x.offset + r * cols, gi = g.offset + r * cols, di = dx.offset + r * cols;
      // without a mean, x holds xhat already (x - 0 and x * 1 are exact)
      const rs = Rs[rstd.offset + r]!, mu = Mu ? Mu[mean!.offset + r]! : 0, xs = Mu ? rs : 1;
      let s1 = 0, s2 = 0;
      for (let j = 0; j < cols; j++) {
        const xh = (X[xi + j]! - mu) * xs, gv = G[gi + j]!, gy = W ? gv * W[weight!.offset + j]! : gv;
        s1 += gy;
        s2 += gy * xh;
        if (DW) DW[dweight!.offset + j] += gv * xh;
        if (DB) DB[dbias!.offset + j] += gv;
      }
      const m1 = s1 / cols, m2 = s2 / cols;
      for (let j = 0; j < cols; j++) {
        const xh = (X[xi + j]! - mu) * xs, gv = G[gi + j]!, gy = W ? gv * W[weight!.offset + j]! : gv;
        DX[di + j] = rs * ((gy - m1) - xh * m2);
      }
    }
  },
  swiglu: fastSwiglu,
  swigluBackward: fastSwigluBackward,
  rotary: fastRotary,
  attention: fastAttention,
  attentionBackward: fastAttentionBackward,
  adamw: fastAdam,
  sgd: fastSgd,
};

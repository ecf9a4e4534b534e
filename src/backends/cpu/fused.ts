// Fused cpu kernels: one pass per row instead of the primitive decomposition's several.
import type { FusedKernels, View } from '../backend.js';
import type { CpuBuffer } from './buffer.js';

function rowsOf(x: View): [number, number] {
  const cols = x.shape[x.shape.length - 1] ?? 1;
  return [cols === 0 ? 0 : x.buf.size === 0 ? 0 : Math.round(x.shape.reduce((a, b) => a * b, 1) / cols), cols];
}

export const cpuFused: FusedKernels = {
  softmax(x, out, log) {
    const X = (x.buf as CpuBuffer).data, O = (out.buf as CpuBuffer).data;
    const [rows, cols] = rowsOf(x);
    for (let r = 0; r < rows; r++) {
      const xi = x.offset + r * cols, oi = out.offset + r * cols;
      let max = -Infinity;
      for (let j = 0; j < cols; j++) max = Math.max(max, X[xi + j]!);
      let sum = 0;
      for (let j = 0; j < cols; j++) sum += Math.exp(X[xi + j]! - max);
      if (log) {
        const lse = max + Math.log(sum);
        for (let j = 0; j < cols; j++) O[oi + j] = X[xi + j]! - lse;
      } else {
        for (let j = 0; j < cols; j++) O[oi + j] = Math.exp(X[xi + j]! - max) / sum;
      }
    }
  },
  layerNorm(x, weight, bias, eps, out, mean, rstd) {
    const X = (x.buf as CpuBuffer).data, O = (out.buf as CpuBuffer).data;
    const W = weight ? (weight.buf as CpuBuffer).data : null, B = bias ? (bias.buf as CpuBuffer).data : null;
    const Mu = (mean.buf as CpuBuffer).data, Rs = (rstd.buf as CpuBuffer).data;
    const [rows, cols] = rowsOf(x);
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
};

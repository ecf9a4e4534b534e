// Building blocks shared by the DiT and the MMDiT: modulate, patchify/unpatchify, timestep embedding,
// rotary embedding, softmax attention, SwiGLU MLP.
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../ops/creation.js';
import { add, cos, mul, sin, sub } from '../ops/elementwise.js';
import { cat, stack } from '../ops/movement.js';
import { scaledDotProductAttention } from '../ops/nn.js';
import { rotary } from '../ops/composite.js';
import { permute, reshape, select, unsqueeze } from '../ops/views.js';
import { silu } from '../ops/elementwise.js';
import { Linear, type InitOptions } from './layers.js';
import { Module, ModuleList } from './module.js';

/** modulate: x * (1 + scale[:, None, :]) + shift[:, None, :]; gatedAdd: x + gate[:, None, :] * y (fused ops: ops/composite.ts) */
export { gatedAdd, modulate } from '../ops/composite.js';

/** [B, C, H, W] -> [B, (H/p)(W/p), C*p*p]; token features ordered (c, i, j). */
export function patchify(x: Tensor, p: number): Tensor {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  if (H % p || W % p) throw new Error(`patchify: image ${H}x${W} is not divisible by patch size ${p}`);
  const v = reshape(x, [B, C, H / p, p, W / p, p]);
  return reshape(permute(v, [0, 2, 4, 1, 3, 5]), [B, (H / p) * (W / p), C * p * p]);
}

/** [B, h*w, p*p*c] -> [B, c, h*p, w*p]; token features read in (i, j, c) order. */
export function unpatchify(x: Tensor, h: number, w: number, p: number, c: number): Tensor {
  const B = x.shape[0]!;
  const v = reshape(x, [B, h, w, p, p, c]);
  return reshape(permute(v, [0, 5, 1, 3, 2, 4]), [B, c, h * p, w * p]);
}

/** Sinusoidal features of t: cat(cos(t*f), sin(t*f)) with f_k = s * exp(-ln(10000) k / 128), float32 like torch. */
export function timestepFeatures(t: Tensor, scale: number, dim = 256): Tensor {
  const half = dim / 2;
  const freqs = Array.from({ length: half }, (_, k) => Math.fround(scale * Math.fround(Math.exp(Math.fround(-Math.log(10000) * k / half)))));
  const args = mul(unsqueeze(t, 1), tensor(freqs, { device: t.device, dtype: t.dtype }));
  return cat([cos(args), sin(args)], -1);
}

export class TimestepEmbedder extends Module {
  readonly mlp: ModuleList<Linear>;
  constructor(hidden: number, readonly scale: number, opts: InitOptions = {}) {
    super();
    this.mlp = this.module('mlp', new ModuleList([new Linear(256, hidden, opts), null, new Linear(hidden, hidden, opts)]));
  }
  forward(t: Tensor): Tensor {
    const [l0, l2] = this.mlp.items as [Linear, Linear];
    return l2.forward(silu(l0.forward(timestepFeatures(t, this.scale))));
  }
}

/** cos/sin tables [T, hd/2] of the rotary angles n * 10000^(-2m/hd), computed in float32 as the release does. */
export function rotaryTables(T: number, hd: number, device?: string): { cos: Tensor; sin: Tensor } {
  const half = hd / 2;
  const c = new Float32Array(T * half), s = new Float32Array(T * half);
  for (let m = 0; m < half; m++) {
    const freq = Math.fround(1 / Math.fround(10000 ** Math.fround((2 * m) / hd)));
    for (let n = 0; n < T; n++) {
      const a = Math.fround(n * freq);
      c[n * half + m] = Math.cos(a);
      s[n * half + m] = Math.sin(a);
    }
  }
  return { cos: tensor(c, { shape: [T, half], device }), sin: tensor(s, { shape: [T, half], device }) };
}

/** Rotate adjacent pairs (2m, 2m+1) of x [B, T, H, hd] by the angles of token n (ops/composite.ts). */
export function applyRotary(x: Tensor, tables: { cos: Tensor; sin: Tensor }): Tensor {
  return rotary(x, tables.cos, tables.sin);
}

/** softmax(q k^T / sqrt(hd)) v for q, k, v [B, H, T, hd]. */
export function attention(q: Tensor, k: Tensor, v: Tensor, scale?: number): Tensor {
  return scaledDotProductAttention(q, k, v, scale);
}

/** [B, T, H*hd] -> [B, H, T, hd] */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, T, D] = x.shape as [number, number, number];
  return permute(reshape(x, [B, T, heads, D / heads]), [0, 2, 1, 3]);
}

/** [B, H, T, hd] -> [B, T, H*hd] */
export function mergeHeads(x: Tensor): Tensor {
  const [B, H, T, hd] = x.shape as [number, number, number, number];
  return reshape(permute(x, [0, 2, 1, 3]), [B, T, H * hd]);
}

export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

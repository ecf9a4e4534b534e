// Sampling latents from an MMDiT with classifier-free guidance from precomputed condition tensors.
// COND.safetensors holds `c_seq` [B, Tc, cond_seq_dim] and optionally `c_seq_null` (the empty/negative
// prompt's embedding, [1 or B, Tc, cond_seq_dim]); without it the null condition is all zeros. Optional
// SD3-style time shift: t' = shift * t / (1 + (shift - 1) * t).
import { MMDiT, type MMDiTConfig } from '../models/mmdit.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { sampleEuler } from '../flow/rectified-flow.js';
import { randn, zeros } from '../ops/creation.js';
import { add, div, mul } from '../ops/elementwise.js';
import { cast, cat } from '../ops/movement.js';
import { expand } from '../ops/views.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { LATENT_SCALE } from '../data/t2i.js';
import { loadWeights } from './forward.js';

export interface SampleMMDiTOptions {
  /** A training checkpoint (config in its metadata) or a state dict with --config. */
  checkpoint: string;
  config?: MMDiTConfig;
  cond: string;
  out: string;
  latentSize: number;
  steps?: number;
  cfg?: number;
  shift?: number;
  seed?: number;
  backend?: string;
}

export function sampleMMDiT(o: SampleMMDiTOptions): Tensor {
  const device = o.backend ?? 'cpu';
  let config = o.config;
  if (!config) {
    const meta = loadSafetensors(o.checkpoint, { device: 'meta' }).metadata;
    try {
      config = JSON.parse(meta.lavender ?? 'null')?.config;
    } catch {
      config = undefined;
    }
    if (!config) throw new Error(`sample: ${o.checkpoint} has no model config in its metadata; pass --config`);
  }
  const model = new MMDiT(config, { device });
  const weights = loadWeights(o.checkpoint, device);
  model.loadStateDict(Object.fromEntries(Object.entries(weights).filter(([k]) => !k.startsWith('optim.') && !k.startsWith('ema'))));
  model.eval();
  const { tensors } = loadSafetensors(o.cond, { device });
  const c = tensors.c_seq;
  if (!c || c.ndim !== 3 || c.shape[2] !== model.config.cond_seq_dim) throw new Error(`sample: ${o.cond} needs 'c_seq' [B, Tc, ${model.config.cond_seq_dim}], got ${c?.describe() ?? 'nothing'}`);
  const cSeq = cast(c, 'float32');
  const B = cSeq.shape[0]!;
  const nullCond = tensors.c_seq_null ? cast(expand(tensors.c_seq_null, [...cSeq.shape]), 'float32') : zeros([...cSeq.shape], { device });
  const shift = o.shift ?? 1;
  const model_ = (x: Tensor, t: Tensor, cond: Tensor) => {
    const ts = shift === 1 ? t : div(mul(t, shift), add(mul(t, shift - 1), 1));
    return model.forward(x, ts, cond);
  };
  const z = randn([B, model.config.in_channels, o.latentSize, o.latentSize], { generator: new Generator(o.seed ?? 0), device });
  const latents = sampleEuler(model_, z, cSeq, { steps: o.steps ?? 50, cfg: o.cfg ?? 5, nullCond, concatConds: (a, b) => cat([a, b], 0) });
  // undo the training scale so the latents go straight into the SDXL VAE decoder
  const unscaled = mul(latents, 1 / LATENT_SCALE);
  saveSafetensors(o.out, { latents: unscaled }, { note: 'SDXL-VAE latents (divided by 0.13025); decode with the SDXL VAE' });
  return unscaled;
}

// Sampling latents from an MMDiT with classifier-free guidance from precomputed condition tensors.
// COND.safetensors holds `c_seq` [B, Tc, cond_seq_dim] and optionally `c_seq_null` (the empty/negative
// prompt's embedding, [1 or B, Tc, cond_seq_dim]); without it the null condition is all zeros. Optional
// SD3-style time shift: t' = shift * t / (1 + (shift - 1) * t).
// The checkpoint may be a training checkpoint or an EMA file of `train t2i` (both carry the model config and
// the latent size in their metadata), or a plain state dict with a config given separately.
import { MMDiT, type MMDiTConfig } from '../models/mmdit.js';
import { assertModelKind, readModelSpec } from '../optim/checkpoint-meta.js';
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
  /** A training checkpoint or EMA file (config in its metadata), or a state dict with `config`. */
  checkpoint: string;
  config?: MMDiTConfig;
  cond: string;
  out: string;
  /** Latent side length; default: the one the checkpoint was trained at (its metadata), else 32. */
  latentSize?: number;
  steps?: number;
  cfg?: number;
  shift?: number;
  seed?: number;
  backend?: string;
}

export function sampleMMDiT(o: SampleMMDiTOptions): Tensor {
  const device = o.backend ?? 'cpu';
  const isSafetensors = !/\.(pt|pth|bin|ckpt)$/i.test(o.checkpoint);
  const { spec, meta } = isSafetensors ? readModelSpec(o.checkpoint) : { spec: undefined, meta: null };
  if (spec) assertModelKind(o.checkpoint, spec, 'mmdit', 'sample --model mmdit draws from');
  const config = o.config ?? (spec?.config as MMDiTConfig | undefined);
  if (!config) throw new Error(`sample: ${o.checkpoint} has no model config in its metadata; pass --config C.json`);
  const trainedAt = typeof meta?.latent_size === 'number' ? meta.latent_size : undefined;
  const latentSize = o.latentSize ?? trainedAt ?? 32;
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
  const tokensNeeded = (latentSize / model.config.patch_size) ** 2;
  if (latentSize % model.config.patch_size || tokensNeeded > model.config.max_seq) {
    throw new Error(`sample: --latent-size ${latentSize} needs ${tokensNeeded} image tokens but the model has ${model.config.max_seq} positions (max_seq)${trainedAt ? `; it was trained at ${trainedAt}` : ''}`);
  }
  const z = randn([B, model.config.in_channels, latentSize, latentSize], { generator: new Generator(o.seed ?? 0), device });
  const latents = sampleEuler(model_, z, cSeq, { steps: o.steps ?? 50, cfg: o.cfg ?? 5, nullCond, concatConds: (a, b) => cat([a, b], 0) });
  // undo the training scale so the latents go straight into the SDXL VAE decoder
  const unscaled = mul(latents, 1 / LATENT_SCALE);
  saveSafetensors(o.out, { latents: unscaled }, { note: 'SDXL-VAE latents (divided by 0.13025); decode with the SDXL VAE' });
  return unscaled;
}

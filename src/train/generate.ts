// Prompt to pixels, the release's recipe: T5 embeddings of the prompt and of the negative prompt (padded
// to max_length, masked), Gaussian latents, Euler from t = 1 to 0 with dt = 1/steps and classifier-free
// guidance v = v_neg + cfg (v_cond - v_neg), then the SDXL VAE decoder on latents / scaling_factor.
// The positional table is resized (extend_pe) when the latent grid differs from the one it was trained on.
import { sampleEuler } from '../flow/rectified-flow.js';
import type { MMDiT } from '../models/mmdit.js';
import type { AutoencoderKL } from '../models/vae.js';
import { randn } from '../ops/creation.js';
import { cast, cat } from '../ops/movement.js';
import { expand } from '../ops/views.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { encodeText, type TextEncoder } from './text-encoder.js';
import { decodeLatents } from './vae-codec.js';

export interface ReleaseDefaults {
  steps: number;
  cfg: number;
  negative: string;
  maxLength: number;
}

/** The release's settings per image size (its inference notebooks); 256 follows 512's but with CFG 5. */
export const RELEASE_DEFAULTS: Record<256 | 512 | 1024, ReleaseDefaults> = {
  256: { steps: 50, cfg: 5, negative: 'watermark, jpeg, sketch, artifects', maxLength: 128 },
  512: { steps: 50, cfg: 9.5, negative: 'watermark, jpeg, sketch, artifects', maxLength: 128 },
  1024: { steps: 100, cfg: 5, negative: 'watermark, jpeg', maxLength: 256 },
};

/** The defaults of the nearest release size. */
export function defaultsFor(size: number): ReleaseDefaults {
  const s = size <= 384 ? 256 : size <= 768 ? 512 : 1024;
  return RELEASE_DEFAULTS[s];
}

export interface GenerateOptions {
  prompt: string;
  size: number;
  steps: number;
  cfg: number;
  negative: string;
  maxLength: number;
  seed: number;
  batch: number;
  /** Initial latents [B, C, h, w] instead of the seeded ones. */
  noise?: Tensor;
  /** Called after every step with the current latents (model space). */
  onStep?: (z: Tensor, step: number) => void;
  /** Called once per prompt cut to max_length. */
  onTruncate?: (which: 'prompt' | 'negative', cut: number) => void;
}

export interface Generated {
  /** Model-space latents after the last step [B, C, h, w]. */
  latents: Tensor;
  /** Decoded images [B, 3, H, W], float32, not clamped. */
  images: Tensor;
}

/** The latent grid side for an image size, checked against the VAE factor and the patch size. */
export function latentSide(size: number, vae: AutoencoderKL, model: MMDiT): number {
  const f = vae.factor, p = model.config.patch_size;
  if (!Number.isInteger(size) || size < f * p || size % (f * p)) throw new Error(`generate: --size ${size} must be a positive multiple of ${f * p} (the VAE's factor ${f} times the patch size ${p})`);
  return size / f;
}

/**
 * Resize the positional table when the image's patch grid differs from the square grid it holds
 * (16x16 -> 32x32 for 512^2 with the 256-trained model, as the release does). Returns what was done.
 */
export function fitPositions(model: MMDiT, latent: number): string | null {
  const side = latent / model.config.patch_size;
  const slots = model.positional_encoding.shape[1]!;
  const s0 = Math.round(Math.sqrt(slots));
  if (s0 === side) return null;
  if (s0 * s0 !== slots) {
    if (side * side <= slots) return null; // not a square table: use its first slots as they are
    throw new Error(`generate: ${side}x${side} latent patches need ${side * side} positions but the table has ${slots}, which is not a square grid to resize`);
  }
  model.extendPe([s0, s0], [side, side]);
  return `positional table resized from ${s0}x${s0} to ${side}x${side} (extend_pe)`;
}

/** Check that the three models fit together. */
export function checkPipeline(model: MMDiT, te: TextEncoder, vae: AutoencoderKL): void {
  const problems: string[] = [];
  if (te.model.config.d_model !== model.config.cond_seq_dim) problems.push(`the T5 encoder's width d_model ${te.model.config.d_model} (${te.dir}) is not the MMDiT's cond_seq_dim ${model.config.cond_seq_dim}`);
  if (vae.config.latent_channels !== model.config.in_channels) problems.push(`the VAE's latent_channels ${vae.config.latent_channels} is not the MMDiT's in_channels ${model.config.in_channels}`);
  if (model.config.out_channels !== model.config.in_channels) problems.push(`the MMDiT's out_channels ${model.config.out_channels} differs from its in_channels ${model.config.in_channels}`);
  if (problems.length) throw new Error(`generate: ${problems.join('; ')}`);
}

export function generate(model: MMDiT, te: TextEncoder, vae: AutoencoderKL, o: GenerateOptions): Generated {
  checkPipeline(model, te, vae);
  const latent = latentSide(o.size, vae, model);
  const device = model.positional_encoding.device;
  const C = model.config.in_channels;
  return scope(() => {
    let z: Tensor;
    if (o.noise) {
      const n = o.noise;
      if (n.ndim !== 4 || n.shape[1] !== C || n.shape[2] !== latent || n.shape[3] !== latent) {
        throw new Error(`generate: the noise must be [B, ${C}, ${latent}, ${latent}] for --size ${o.size}, got ${n.describe()}`);
      }
      z = cast(n, 'float32');
    } else {
      z = randn([o.batch, C, latent, latent], { generator: new Generator(o.seed), device });
    }
    const B = z.shape[0]!;
    const text = encodeText(te, [o.prompt, o.negative], o.maxLength);
    if (text.truncated[0]) o.onTruncate?.('prompt', text.truncated[0]);
    if (text.truncated[1]) o.onTruncate?.('negative', text.truncated[1]);
    const [cond, uncond] = [0, 1].map((i) => expand(text.embeddings.slice(0, i, i + 1), [B, o.maxLength, te.model.config.d_model])) as [Tensor, Tensor];
    const latents = sampleEuler((x, t, c: Tensor) => model.forward(x, t, c), z, cond, {
      steps: o.steps, cfg: o.cfg, nullCond: uncond, concatConds: (a, b) => cat([a, b], 0), onStep: o.onStep,
    });
    return { latents, images: decodeLatents(vae, latents) };
  });
}

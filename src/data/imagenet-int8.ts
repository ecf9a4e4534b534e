// The imagenet.int8 layout (Simo Ryu's ImageNet as SDXL-VAE latents in MDS shards, the data the release swept
// its learning rate on): per sample
//   vae_output      `uint8`, variable-size raw bytes: the 4x32x32 latent, quantised as trunc((clip(z, -14, 14) / 28
//                   + 0.5) * 255); the release's loader decodes it as (b / 255 - 0.5) * 24 (24, not 28: kept as the
//                   release trains on it) and scales by 0.13025 like every latent.
//   label           `str`: the ImageNet class index as decimal text ('402').
//   label_as_text   `str`: the class name ('acoustic guitar'); not used for training.
// The class label conditions the MMDiT the way the release's MMDiT_for_IN1K does: two one-hot text tokens,
// one_hot(y) and one_hot(y + D/2) in the condition width D (2048 in the release), so cond_seq_linear acts as
// two class embeddings.
import { MdsWriter } from './mds/index.js';
import { LATENT_SCALE } from './latent-scale.js';
import { Generator, fillRandom } from '../tensor/random.js';

export const IMAGENET_INT8_COLUMNS = { latents: 'vae_output', label: 'label', text: 'label_as_text' } as const;

/** Decoded latent value of one stored byte (before the 0.13025 latent scale). */
export const int8LatentValue = (b: number) => (b / 255 - 0.5) * 24;

/** The byte imagenet.int8's preprocessing stores for latent value z (unscaled). */
export function int8LatentByte(z: number): number {
  const c = Math.min(14, Math.max(-14, z));
  return Math.trunc((c / 28 + 0.5) * 255);
}

/** The class label of a sample's `label` column (decimal text), checked against the condition width. */
export function parseLabel(v: unknown, condDim: number, source: string): number {
  const col = IMAGENET_INT8_COLUMNS.label;
  const text = typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
  if (text === undefined || !/^\d+$/.test(text.trim())) throw new Error(`${source}: column '${col}' must hold a class index as text (e.g. '402'), got ${JSON.stringify(v)}`);
  const y = Number(text);
  if (y >= condDim / 2) throw new Error(`${source}: class ${y} needs a condition width of at least ${2 * (y + 1)} (two one-hot tokens y and y + D/2), the model's cond_seq_dim is ${condDim}`);
  return y;
}

/** Write the class-token pair of label y into c (length 2 * condDim, zero-filled). */
export function writeClassTokens(c: Float32Array, offset: number, y: number, condDim: number): void {
  c[offset + y] = 1;
  c[offset + condDim + y + condDim / 2] = 1;
}

export interface ImagenetInt8Sample {
  /** 4 x r x r latent values, unscaled (SDXL-VAE output). */
  latents: ArrayLike<number>;
  label: number;
  text?: string;
}

/** Write samples as an imagenet.int8-style MDS dataset (the columns and quantisation of its preprocessing). */
export function writeImagenetInt8(dir: string, samples: Iterable<ImagenetInt8Sample>, o: { sizeLimit?: number } = {}): void {
  const C = IMAGENET_INT8_COLUMNS;
  const w = new MdsWriter(dir, { columns: { [C.latents]: { encoding: 'uint8', variable: true }, [C.label]: 'str', [C.text]: 'str' }, sizeLimit: o.sizeLimit ?? 1 << 26 });
  for (const s of samples) {
    w.write({ [C.latents]: Uint8Array.from(s.latents, int8LatentByte), [C.label]: String(s.label), [C.text]: s.text ?? `class ${s.label}` });
  }
  w.finish();
}

export interface SyntheticClassOptions {
  samples: number;
  latentSize: number;
  classes?: number;
  /** Directions of within-class variation (default 4). */
  rank?: number;
  seed?: number;
  sizeLimit?: number;
}

/**
 * A learnable class-conditional dataset in the imagenet.int8 layout: class k's latents (in model space, i.e.
 * after the 0.13025 scale) are 0.5 mu_k + 0.4 sum_j a_j u_kj / sqrt(rank) + 0.15 eps (std ~0.66: the quantiser's clip
 * at +-14, +-1.82 after scaling, is ~2.8 std away), with a fixed mean mu_k and `rank` fixed directions u_kj per
 * class and fresh standard-normal a, eps per sample: a Gaussian per class whose mean and principal directions the
 * model has to learn from the label.
 */
export function writeSyntheticImagenetInt8(dir: string, o: SyntheticClassOptions): void {
  const classes = o.classes ?? 16, rank = o.rank ?? 4, n = 4 * o.latentSize * o.latentSize, g = new Generator(o.seed ?? 0);
  const draw = (k: number) => {
    const a = new Float64Array(k);
    fillRandom(a, k, 'normal', g.seed, g.take(k));
    return a;
  };
  const means = Array.from({ length: classes }, () => draw(n));
  const dirs = Array.from({ length: classes }, () => Array.from({ length: rank }, () => draw(n)));
  function* samples(): Iterable<ImagenetInt8Sample> {
    for (let i = 0; i < o.samples; i++) {
      const k = i % classes, a = draw(rank), eps = draw(n);
      const z = new Float64Array(n);
      for (let d = 0; d < n; d++) {
        let v = 0.5 * means[k]![d]! + 0.15 * eps[d]!;
        for (let j = 0; j < rank; j++) v += (0.4 * a[j]! * dirs[k]![j]![d]!) / Math.sqrt(rank);
        z[d] = v / LATENT_SCALE;
      }
      yield { latents: z, label: k, text: `synthetic class ${k}` };
    }
  }
  writeImagenetInt8(dir, samples(), { sizeLimit: o.sizeLimit });
}

// Text-to-image batches from MDS shards in the LavenderFlow layout: SDXL-VAE latents as float16 (`np16`)
// and T5 embeddings quantised to uint8 (`uint8`, dequantised as x/255*0.5 - 0.25), right-padded with zeros
// to 256 tokens and cut to the first `tokens` (64 in the release). Latents are scaled by 0.13025.
// The same batches from the imagenet.int8 layout (imagenet-int8.ts): uint8 latents and a class label, which
// becomes two one-hot condition tokens.
import { MdsWriter, float16BitsToFloat32, float32ToFloat16Bits } from './mds/index.js';
import { LATENT_SCALE } from './latent-scale.js';
import { writeT2IShardInfo } from './t2i-info.js';
import { IMAGENET_INT8_COLUMNS, int8LatentValue, parseLabel, writeClassTokens } from './imagenet-int8.js';
import { tensor } from '../ops/creation.js';
import { Generator, fillRandom } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

export { LATENT_SCALE };

export interface T2IColumns {
  vae: string;
  t5: string;
}

export const RELEASE_COLUMNS: T2IColumns = { vae: 'vae_256x256_latents', t5: 't5_xl_embeddings' };

/** 'lavenderflow': latents + T5 embeddings; 'imagenet.int8': uint8 latents + a class label. */
export type T2ILayout = 'lavenderflow' | 'imagenet.int8';

export interface T2IBatchOptions {
  latentSize: number;
  condDim: number;
  /** Text tokens kept (lavenderflow; imagenet.int8 always has 2 class tokens). */
  tokens: number;
  /** Default 'lavenderflow'. */
  layout?: T2ILayout;
  columns?: T2IColumns;
  device?: string;
}

/** The layout of a dataset from its column names; an error names the columns each layout needs. */
export function detectT2ILayout(columns: readonly string[], source = 'shards'): T2ILayout {
  const has = (...c: string[]) => c.every((n) => columns.includes(n));
  if (has(RELEASE_COLUMNS.vae, RELEASE_COLUMNS.t5)) return 'lavenderflow';
  if (has(IMAGENET_INT8_COLUMNS.latents, IMAGENET_INT8_COLUMNS.label)) return 'imagenet.int8';
  throw new Error(`${source}: columns [${columns.join(', ')}] are neither the LavenderFlow layout (${RELEASE_COLUMNS.vae}, ${RELEASE_COLUMNS.t5}) nor imagenet.int8's (${IMAGENET_INT8_COLUMNS.latents}, ${IMAGENET_INT8_COLUMNS.label})`);
}

/**
 * Decode a list of MDS samples into x [B, 4, r, r] (scaled latents) and c_seq [B, tokens, condDim]
 * (imagenet.int8: [B, 2, condDim], the class tokens).
 */
export function t2iBatch(samples: Record<string, unknown>[], o: T2IBatchOptions, source = 'shards'): { x: Tensor; cSeq: Tensor } {
  if (o.layout === 'imagenet.int8') return classBatch(samples, o, source);
  const cols = o.columns ?? RELEASE_COLUMNS;
  const B = samples.length, r = o.latentSize, D = o.condDim, T = o.tokens;
  const x = new Float32Array(B * 4 * r * r);
  const c = new Float32Array(B * T * D); // zero padding stays 0, as the release pads after dequantising
  samples.forEach((s, b) => {
    const lat = s[cols.vae], emb = s[cols.t5];
    if (!(lat instanceof Uint16Array)) throw new Error(`${source}: column '${cols.vae}' must be np16 (float16 array), got ${describe(lat)}`);
    if (!(emb instanceof Uint8Array)) throw new Error(`${source}: column '${cols.t5}' must be uint8 (quantised embeddings), got ${describe(emb)}`);
    if (lat.length !== 4 * r * r) throw new Error(`${source}: column '${cols.vae}' holds ${lat.length} values, expected 4x${r}x${r} = ${4 * r * r}`);
    if (emb.length % D !== 0) throw new Error(`${source}: column '${cols.t5}' holds ${emb.length} bytes, not a multiple of the condition width ${D}`);
    const f = float16BitsToFloat32(lat);
    for (let i = 0; i < f.length; i++) x[b * f.length + i] = f[i]! * LATENT_SCALE;
    const n = Math.min(emb.length / D, T) * D;
    for (let i = 0; i < n; i++) c[b * T * D + i] = (Math.fround(emb[i]! / 255) * 0.5) - 0.25;
  });
  return { x: tensor(x, { shape: [B, 4, r, r], device: o.device }), cSeq: tensor(c, { shape: [B, T, D], device: o.device }) };
}

function classBatch(samples: Record<string, unknown>[], o: T2IBatchOptions, source: string): { x: Tensor; cSeq: Tensor } {
  const B = samples.length, r = o.latentSize, D = o.condDim, col = IMAGENET_INT8_COLUMNS.latents;
  if (D % 2) throw new Error(`${source}: class conditions need an even condition width (tokens y and y + D/2), got cond_seq_dim ${D}`);
  const x = new Float32Array(B * 4 * r * r);
  const c = new Float32Array(B * 2 * D);
  samples.forEach((s, b) => {
    const lat = s[col];
    if (!(lat instanceof Uint8Array)) throw new Error(`${source}: column '${col}' must be uint8 (quantised latents), got ${describe(lat)}`);
    if (lat.length !== 4 * r * r) throw new Error(`${source}: column '${col}' holds ${lat.length} values, expected 4x${r}x${r} = ${4 * r * r}`);
    for (let i = 0; i < lat.length; i++) x[b * lat.length + i] = int8LatentValue(lat[i]!) * LATENT_SCALE;
    writeClassTokens(c, b * 2 * D, parseLabel(s[IMAGENET_INT8_COLUMNS.label], D, source), D);
  });
  return { x: tensor(x, { shape: [B, 4, r, r], device: o.device }), cSeq: tensor(c, { shape: [B, 2, D], device: o.device }) };
}

function describe(v: unknown): string {
  return v === null || v === undefined ? String(v) : (v as object).constructor?.name ?? typeof v;
}

/**
 * A small learnable synthetic dataset: each sample belongs to one of `classes` patterns; its text
 * embedding encodes the class (a fixed random code, quantised) and its latent is the class's pattern plus
 * noise. Written as LavenderFlow-style MDS shards.
 */
export function writeSyntheticT2I(dir: string, o: { samples: number; latentSize: number; condDim: number; tokens: number; classes?: number; seed?: number; sizeLimit?: number }): void {
  const classes = o.classes ?? 4, r = o.latentSize, g = new Generator(o.seed ?? 0);
  const draw = (n: number) => {
    const a = new Float64Array(n);
    fillRandom(a, n, 'normal', g.seed, g.take(n));
    return a;
  };
  const patterns = Array.from({ length: classes }, () => draw(4 * r * r));
  const codes = Array.from({ length: classes }, () => Array.from(draw(o.tokens * o.condDim), (v) => Math.max(0, Math.min(255, Math.round(127.5 + 60 * v)))));
  const w = new MdsWriter(dir, { columns: { [RELEASE_COLUMNS.vae]: 'np16', [RELEASE_COLUMNS.t5]: { encoding: 'uint8', variable: true } }, sizeLimit: o.sizeLimit ?? 1 << 20 });
  for (let i = 0; i < o.samples; i++) {
    const k = i % classes, noise = draw(4 * r * r);
    const lat = Array.from(patterns[k]!, (v, j) => (v * 0.8 + noise[j]! * 0.2) / LATENT_SCALE);
    w.write({ [RELEASE_COLUMNS.vae]: float32ToFloat16Bits(lat), [RELEASE_COLUMNS.t5]: Uint8Array.from(codes[k]!) });
  }
  w.finish();
  writeT2IShardInfo(dir, { condDim: o.condDim, latentSize: r });
}

// The release's data preparation: images center-cropped and resized, encoded by the SDXL VAE
// (latent_dist.sample(), or the mean), captions encoded by T5 (256 tokens), written as MDS shards in the
// release's columns: `vae_256x256_latents` np16 (the VAE's z, unscaled: the loader multiplies by 0.13025)
// and `t5_xl_embeddings` uint8 (the caption's tokens only, quantised as round((x + 0.25) / 0.5 * 255), the
// inverse of the loader's x/255*0.5 - 0.25), plus the `caption`. `lavender train t2i` reads them as they are.
//
// Unreadable images and images without a caption are named and skipped. The shards are written to a
// temporary folder renamed into place at the end: a failure leaves no half-written dataset.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { centerCropResize, readImage } from '../data/images.js';
import { MdsWriter } from '../data/mds/index.js';
import { writeT2IShardInfo } from '../data/t2i-info.js';
import { RELEASE_COLUMNS } from '../data/t2i.js';
import { tensor } from '../ops/creation.js';
import { toHalfBits } from '../tensor/dtype.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import { encodeImages } from './vae-codec.js';
import { encodeText, type TextEncoder } from './text-encoder.js';
import type { AutoencoderKL } from '../models/vae.js';

export interface PrepareOptions {
  images: string;
  captions: string;
  out: string;
  size?: number;
  tokens?: number;
  batch?: number;
  /** 'sample' (the release) or 'mean'. */
  latents?: 'sample' | 'mean';
  seed?: number;
  /** Warnings (skipped files, truncated captions, clipped values). */
  warn?: (msg: string) => void;
  progress?: (done: number, total: number) => void;
}

export interface PrepareReport {
  written: number;
  skipped: string[];
  /** Embedding values outside [-0.25, 0.25] that the uint8 quantisation clipped. */
  clipped: number;
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg']);

/** Captions: a JSON object {file: caption}, or text lines `file<TAB>caption`. */
export function readCaptions(path: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read the captions (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const out = new Map<string, string>();
  if (path.endsWith('.json')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${path}: expected a JSON object {"image file name": "caption", ...}`);
    for (const [k, c] of Object.entries(v as Record<string, unknown>)) {
      if (typeof c !== 'string') throw new Error(`${path}: the caption of '${k}' must be a string, got ${JSON.stringify(c)}`);
      out.set(k, c);
    }
    return out;
  }
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    const tab = line.indexOf('\t');
    if (tab < 0) throw new Error(`${path}: line ${i + 1} has no tab; each line is 'file name<TAB>caption'`);
    out.set(line.slice(0, tab), line.slice(tab + 1));
  });
  return out;
}

/** x -> uint8 as the release quantised T5 embeddings (dequantised by q/255*0.5 - 0.25). */
export function quantizeEmbedding(values: ArrayLike<number>): { bytes: Uint8Array; clipped: number } {
  const bytes = new Uint8Array(values.length);
  let clipped = 0;
  for (let i = 0; i < values.length; i++) {
    const q = Math.round(((values[i]! + 0.25) / 0.5) * 255);
    if (q < 0 || q > 255) clipped++;
    bytes[i] = Math.max(0, Math.min(255, q));
  }
  return { bytes, clipped };
}

export function prepareShards(te: TextEncoder, vae: AutoencoderKL, o: PrepareOptions): PrepareReport {
  const size = o.size ?? 256, tokens = o.tokens ?? 256, batch = o.batch ?? 4;
  const warn = o.warn ?? (() => {});
  if (!Number.isInteger(size) || size < vae.factor || size % vae.factor) throw new Error(`prepare-shards: the size ${size} must be a positive multiple of the VAE's factor ${vae.factor}`);
  if (existsSync(o.out) && readdirSync(o.out).length) throw new Error(`prepare-shards: ${o.out} exists and is not empty; write a dataset into a new or empty folder`);
  let files: string[];
  try {
    files = readdirSync(o.images).filter((f) => IMAGE_EXT.has(extname(f).toLowerCase())).sort();
  } catch (e) {
    throw new Error(`prepare-shards: cannot list the images folder ${o.images} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const captions = readCaptions(o.captions);
  const skipped: string[] = [];
  const work: Array<{ file: string; caption: string }> = [];
  for (const f of files) {
    const c = captions.get(f);
    if (c === undefined) {
      skipped.push(f);
      warn(`${join(o.images, f)}: no caption in ${o.captions}; skipped`);
    } else work.push({ file: f, caption: c });
  }
  const unused = [...captions.keys()].filter((k) => !files.includes(k));
  if (unused.length) warn(`${o.captions}: ${unused.length} caption(s) name no image in ${o.images}: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', ...' : ''}`);
  const tmp = `${o.out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  let written = 0, clipped = 0;
  try {
    const w = new MdsWriter(tmp, { columns: { [RELEASE_COLUMNS.vae]: 'np16', [RELEASE_COLUMNS.t5]: { encoding: 'uint8', variable: true }, caption: 'str' } });
    const gen = new Generator(o.seed ?? 0);
    for (let at = 0; at < work.length; at += batch) {
      const group: Array<{ file: string; caption: string; pixels: Float32Array }> = [];
      for (const item of work.slice(at, at + batch)) {
        try {
          group.push({ ...item, pixels: centerCropResize(readImage(join(o.images, item.file)), size) });
        } catch (e) {
          skipped.push(item.file);
          warn(`${(e as Error).message}; skipped`);
        }
      }
      if (!group.length) continue;
      scope(() => {
        const px = new Float32Array(group.length * 3 * size * size);
        group.forEach((g, i) => px.set(g.pixels, i * 3 * size * size));
        const images = tensor(px, { shape: [group.length, 3, size, size], device: vae.decoder.conv_in.weight.device });
        // the VAE's z: model-space latents / scaling_factor (+ shift), as the release stored them
        const lat = encodeImages(vae, images, { sample: (o.latents ?? 'sample') === 'sample', generator: gen });
        const z = lat.toArray() as Float32Array;
        const per = z.length / group.length, sf = vae.config.scaling_factor, shift = vae.config.shift_factor;
        const text = encodeText(te, group.map((g) => g.caption), tokens);
        const emb = text.embeddings.toArray() as Float32Array, mask = text.attentionMask.toArray();
        const D = te.model.config.d_model;
        group.forEach((g, i) => {
          if (text.truncated[i]) warn(`${g.file}: caption cut to ${tokens} tokens (dropped ${text.truncated[i]})`);
          let real = 0;
          for (let k = 0; k < tokens; k++) real += mask[i * tokens + k]!;
          const q = quantizeEmbedding(emb.subarray(i * tokens * D, (i * tokens + real) * D));
          clipped += q.clipped;
          const zi = Array.from(z.subarray(i * per, (i + 1) * per), (v) => v / sf + shift);
          w.write({ [RELEASE_COLUMNS.vae]: toHalfBits(zi), [RELEASE_COLUMNS.t5]: q.bytes, caption: g.caption });
          written++;
        });
      });
      o.progress?.(Math.min(at + batch, work.length), work.length);
    }
    if (written === 0) throw new Error(`prepare-shards: no usable image in ${o.images} (${files.length} image file(s), ${skipped.length} skipped); nothing written`);
    w.finish();
    writeT2IShardInfo(tmp, { condDim: te.model.config.d_model, latentSize: size / vae.factor });
    if (existsSync(o.out)) rmSync(o.out, { recursive: true, force: true }); // an empty folder
    renameSync(tmp, o.out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (clipped) warn(`${clipped} embedding value(s) outside [-0.25, 0.25] were clipped by the uint8 quantisation`);
  return { written, skipped: skipped.map((f) => basename(f)), clipped };
}

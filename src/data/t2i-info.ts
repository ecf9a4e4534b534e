// What a t2i dataset written by lavender (make-shards --synthetic-t2i, prepare-shards) records beside its
// MDS shards, in lavender.json: the text embeddings' width and the latents' side. The embeddings column
// is a flat byte string, so a model of another width would read the same bytes as another number of
// tokens (8 tokens of 48 = 12 of 32) and train on them silently; with this record it is refused by name.
// Shards from elsewhere (the release's) have none and are read at the model's width, as the release does.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const T2I_INFO_FILE = 'lavender.json';

export interface T2IShardInfo {
  /** Width of each text token's embedding (the MMDiT's cond_seq_dim). */
  condDim: number;
  /** Side of the latents (4 x latentSize x latentSize). */
  latentSize: number;
}

export function writeT2IShardInfo(dir: string, info: T2IShardInfo): void {
  writeFileSync(join(dir, T2I_INFO_FILE), JSON.stringify({ format: 'lavender-t2i-v1', cond_dim: info.condDim, latent_size: info.latentSize }) + '\n');
}

/** The dataset's record, or null when it has none; a malformed one is an error naming the file and field. */
export function readT2IShardInfo(dir: string): T2IShardInfo | null {
  const file = join(dir, T2I_INFO_FILE);
  if (!existsSync(file)) return null;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  for (const k of ['cond_dim', 'latent_size']) {
    if (!(Number.isInteger(raw?.[k]) && (raw[k] as number) > 0)) throw new Error(`${file}: field '${k}' must be a positive integer, got ${JSON.stringify(raw?.[k])}`);
  }
  return { condDim: raw.cond_dim as number, latentSize: raw.latent_size as number };
}

/** Refuse, naming both, a model width or latent size other than the dataset's record says (none: nothing to check). */
export function checkT2IShards(dir: string, want: T2IShardInfo, who: string): void {
  const info = readT2IShardInfo(dir);
  if (!info) return;
  const file = join(dir, T2I_INFO_FILE);
  if (info.condDim !== want.condDim) {
    throw new Error(`${who}: the shards' text embeddings are ${info.condDim} wide (${file}) but the model takes ${want.condDim} (cond_seq_dim); use a preset of width ${info.condDim} or shards made with --cond-dim ${want.condDim}`);
  }
  if (info.latentSize !== want.latentSize) {
    throw new Error(`${who}: the shards hold ${info.latentSize}x${info.latentSize} latents (${file}) but --latent-size is ${want.latentSize}`);
  }
}

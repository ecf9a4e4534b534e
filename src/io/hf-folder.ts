// Model folders as the HF hub lays them out: config.json and the weights, one file (model.safetensors,
// diffusion_pytorch_model.safetensors, or the .bin PyTorch archives) or shards named by an
// `*.safetensors.index.json` weight map. Weights load tensor by tensor; `only` skips tensors unread
// (a T5 encoder ignores the decoder half of the file).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import { loadSafetensors } from './safetensors.js';
import { loadTorchCheckpoint } from './torch-pt.js';

/** The folder's config.json as an object; names the folder when it is missing or malformed. */
export function readHfConfig(dir: string, file = 'config.json'): Record<string, unknown> {
  const path = join(dir, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${dir}: no ${file} in the folder (the model's configuration is needed)` : `${path}: cannot read (${code ?? (e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${path}: expected a JSON object`);
  return v as Record<string, unknown>;
}

export interface HfWeightsOptions {
  device?: string;
  only?: (name: string) => boolean;
  /** Base names to look for, in order (default: the transformers then the diffusers names). */
  names?: readonly string[];
}

export const DEFAULT_WEIGHT_NAMES = ['model', 'diffusion_pytorch_model', 'pytorch_model'];

function loadOne(path: string, device: string | undefined, only?: (n: string) => boolean): Record<string, Tensor> {
  return path.endsWith('.safetensors') ? loadSafetensors(path, { device, only }).tensors : loadTorchCheckpoint(path, { device, only });
}

/** Every (wanted) tensor of the folder's weights, and the files they came from. */
export function loadHfWeights(dir: string, o: HfWeightsOptions = {}): { tensors: Record<string, Tensor>; files: string[] } {
  const names = o.names ?? DEFAULT_WEIGHT_NAMES;
  const looked: string[] = [];
  for (const base of names) {
    for (const ext of ['safetensors', 'bin']) {
      const single = join(dir, `${base}.${ext}`);
      const index = `${single}.index.json`;
      looked.push(`${base}.${ext}`);
      if (existsSync(single)) return { tensors: loadOne(single, o.device, o.only), files: [single] };
      if (!existsSync(index)) continue;
      // sharded: the index maps every tensor to its shard
      const map = readHfConfig(dir, `${base}.${ext}.index.json`).weight_map;
      if (!map || typeof map !== 'object') throw new Error(`${index}: no 'weight_map' object`);
      const shards = new Map<string, string[]>();
      for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
        if (typeof file !== 'string') throw new Error(`${index}: weight_map['${name}'] must be a file name`);
        if (o.only && !o.only(name)) continue;
        if (!shards.has(file)) shards.set(file, []);
        shards.get(file)!.push(name);
      }
      const tensors: Record<string, Tensor> = {};
      const files: string[] = [];
      try {
        for (const [file, wanted] of shards) {
          const want = new Set(wanted);
          const path = join(dir, file);
          Object.assign(tensors, loadOne(path, o.device, (n) => want.has(n)));
          files.push(path);
        }
      } catch (e) {
        for (const t of Object.values(tensors)) t.dispose();
        throw e;
      }
      return { tensors, files };
    }
  }
  throw new Error(`${dir}: no weights in the folder (looked for ${looked.join(', ')} and their .index.json shards)`);
}

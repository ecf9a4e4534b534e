// An MMDiT for inference from any checkpoint the project meets: the release's ema1.pt (a PyTorch state
// dict, fp16), a lavender training checkpoint (`model.*` tensors, the config in its metadata) or a plain
// safetensors state dict. The config comes from --config, else the checkpoint's metadata, else the
// tensors' shapes (read without their data) matched to the release's presets. The model is built on the
// meta device and the file's tensors become its parameters: 16-bit weights stay 16-bit.
import { inspectSafetensors, loadSafetensors } from '../io/safetensors.js';
import { loadTorchCheckpoint } from '../io/torch-pt.js';
import { MMDiT, MMDIT_PRESETS, resolveMMDiTConfig, type MMDiTConfig } from '../models/mmdit.js';
import type { Tensor } from '../tensor/tensor.js';

const isTorch = (path: string) => /\.(pt|pth|bin|ckpt)$/i.test(path);

/** Training-only tensors of a lavender checkpoint (optimizer moments, EMA copies). */
const notWeights = (name: string) => name.startsWith('optim.') || /^ema\d*\./.test(name);

/** name -> shape of the checkpoint's tensors, without reading their data. */
function shapesOf(path: string): { shapes: Map<string, readonly number[]>; metadata: Record<string, string> } {
  if (isTorch(path)) {
    const t = loadTorchCheckpoint(path, { device: 'meta' });
    return { shapes: new Map(Object.entries(t).map(([k, v]) => [k, v.shape])), metadata: {} };
  }
  const h = inspectSafetensors(path);
  return { shapes: new Map(h.entries.map((e) => [e.name, e.shape])), metadata: h.metadata };
}

/** The config the tensors' shapes imply; n_heads (invisible in shapes) from the preset of the same width. */
export function inferMMDiTConfig(shapes: Map<string, readonly number[]>, source: string): MMDiTConfig {
  const get = (name: string): readonly number[] => {
    const s = shapes.get(name) ?? shapes.get(`model.${name}`);
    if (!s) throw new Error(`${source}: no tensor '${name}': not an MMDiT checkpoint (or pass --config C.json)`);
    return s;
  };
  const count = (prefix: string) => {
    const seen = new Set<string>();
    for (const k of shapes.keys()) {
      const m = new RegExp(`^(?:model\\.)?${prefix}\\.(\\d+)\\.`).exec(k);
      if (m) seen.add(m[1]!);
    }
    return seen.size;
  };
  const [, maxSeq, dim] = get('positional_encoding') as [number, number, number];
  const inFeatures = get('init_x_linear.weight')[1]!, outFeatures = get('final_linear.weight')[0]!;
  const patch = 2, inCh = inFeatures / (patch * patch), outCh = outFeatures / (patch * patch);
  const nDouble = count('double_layers'), nLayers = nDouble + count('single_layers');
  const preset = Object.values(MMDIT_PRESETS).find((p) => p.dim === dim);
  if (!preset) throw new Error(`${source}: the tensors give dim ${dim}, which matches no preset, and the head count cannot be read from shapes; pass --config C.json`);
  return {
    in_channels: inCh, out_channels: outCh, patch_size: patch, dim, n_layers: nLayers, n_double_layers: nDouble, n_heads: preset.n_heads,
    global_conddim: get('t_embedder.mlp.0.weight')[0]!, cond_seq_dim: get('cond_seq_linear.weight')[1]!, max_seq: maxSeq,
  };
}

/** The config to build: the given one, the checkpoint's metadata, or the shapes'. */
export function mmditConfigFor(path: string, given?: Partial<MMDiTConfig>): { config: MMDiTConfig; from: string } {
  if (given) return { config: resolveMMDiTConfig(given, 'config'), from: '--config' };
  const { shapes, metadata } = shapesOf(path);
  if (metadata.lavender) {
    try {
      const c = JSON.parse(metadata.lavender)?.config;
      if (c) return { config: resolveMMDiTConfig(c, `${path} metadata`), from: 'the checkpoint metadata' };
    } catch { /* fall through to the shapes */ }
  }
  return { config: resolveMMDiTConfig(inferMMDiTConfig(shapes, path), path), from: 'the tensor shapes' };
}

/** Build the MMDiT on `device` with the checkpoint's weights (assigned; every problem listed at once). */
export function loadMMDiTForInference(path: string, device: string, given?: Partial<MMDiTConfig>): { model: MMDiT; configFrom: string } {
  const { config, from } = mmditConfigFor(path, given);
  const model = new MMDiT(config, { device: 'meta' });
  const tensors: Record<string, Tensor> = isTorch(path)
    ? loadTorchCheckpoint(path, { device, only: (n) => !notWeights(n) })
    : loadSafetensors(path, { device, only: (n) => !notWeights(n) }).tensors;
  try {
    model.loadStateDict(tensors, { assign: true, device });
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  model.eval();
  return { model, configFrom: from };
}

// `lavender info --model P`: exact parameter count (built on the meta device: no memory) and the memory
// each data-parallel rank holds under ZeRO stage 2 with bf16 weights: replicated bf16 weights, bf16
// gradients partitioned across ranks, float32 master weights and Adam moments partitioned across ranks.
import { DiT, DIT_PRESETS } from '../models/dit.js';
import { MMDiT, MMDIT_PRESETS } from '../models/mmdit.js';
import type { Module } from '../nn/module.js';

export function buildPreset(name: string, device: string): Module {
  if (MMDIT_PRESETS[name]) return new MMDiT(MMDIT_PRESETS[name]!, { device });
  const dit = name.startsWith('dit-') ? DIT_PRESETS[name.slice(4)] : undefined;
  if (dit) return new DiT(dit, { device });
  const known = [...Object.keys(MMDIT_PRESETS), ...Object.keys(DIT_PRESETS).map((k) => `dit-${k}`)];
  throw new Error(`unknown model preset '${name}' (available: ${known.join(', ')})`);
}

export interface ModelInfo {
  model: string;
  parameters: number;
  zero2: { ranks: number; bytes_per_rank: { weights_bf16: number; gradients_bf16: number; master_weights_fp32: number; adam_state_fp32: number; total: number } };
}

export function modelInfo(name: string, ranks: number): ModelInfo {
  const model = buildPreset(name, 'meta');
  const P = model.numParameters();
  const shard = (bytes: number) => Math.ceil(bytes / ranks);
  const b = { weights_bf16: 2 * P, gradients_bf16: shard(2 * P), master_weights_fp32: shard(4 * P), adam_state_fp32: shard(8 * P), total: 0 };
  b.total = b.weights_bf16 + b.gradients_bf16 + b.master_weights_fp32 + b.adam_state_fp32;
  for (const p of model.parameters()) p.dispose();
  return { model: name, parameters: P, zero2: { ranks, bytes_per_rank: b } };
}

// The model a training run builds, as checkpoints record it (kind, resolved config, preset name).
import { DIT_PRESETS, resolveDiTConfig, type DiTConfig } from '../models/dit.js';
import { MMDIT_PRESETS, resolveMMDiTConfig, type MMDiTConfig } from '../models/mmdit.js';
import type { ModelSpec } from '../optim/checkpoint-meta.js';

/** A DiT preset name or config, resolved; unknown presets are named with the available ones. */
export function ditSpec(model: string | DiTConfig, what = 'train'): ModelSpec {
  const config = typeof model === 'string' ? DIT_PRESETS[model] : model;
  if (!config) throw new Error(`${what}: unknown model preset '${String(model)}' (available: ${Object.keys(DIT_PRESETS).join(', ')})`);
  return { kind: 'dit', config: { ...resolveDiTConfig(config) }, ...(typeof model === 'string' ? { preset: model } : {}) };
}

/** An MMDiT preset name or config, resolved. */
export function mmditSpec(preset: string | MMDiTConfig, what = 'train t2i'): ModelSpec {
  const config = typeof preset === 'string' ? MMDIT_PRESETS[preset] : preset;
  if (!config) throw new Error(`${what}: unknown preset '${String(preset)}' (available: ${Object.keys(MMDIT_PRESETS).join(', ')})`);
  return { kind: 'mmdit', config: { ...resolveMMDiTConfig(config) }, ...(typeof preset === 'string' ? { preset } : {}) };
}

/** The fields a checkpoint's metadata carries about its model. */
export const modelMeta = (spec: ModelSpec) => ({ kind: spec.kind, config: spec.config, ...(spec.preset ? { preset: spec.preset } : {}) });

// Training checkpoints: one safetensors file holding the weights (`model.<name>`, as the release's keys),
// the optimizer moments (`optim.<i>.m`, `optim.<i>.v`), and in its metadata the step, the optimizer's
// scalars, the RNG and data-loader states and the run's settings, so a run resumes exactly.
// Written atomically (temporary file, then rename): an interrupted save never leaves a truncated file.
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { AdamBase, AdamStateDict } from '../optim/adamw.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';

export interface CheckpointMeta {
  format: 'lavender-train-v1';
  step: number;
  [key: string]: unknown;
}

/** `extra` tensors (e.g. EMA weights) are stored under their own names and handed back by loadCheckpoint. */
export function saveCheckpoint(path: string, model: Module, opt: AdamBase, meta: CheckpointMeta, extra: Record<string, Tensor> = {}): void {
  const tensors: Record<string, Tensor> = { ...extra };
  for (const [name, p] of model.namedParameters()) tensors[`model.${name}`] = p;
  const sd = opt.stateDict();
  sd.state.forEach((s, i) => {
    tensors[`optim.${i}.m`] = s.m;
    tensors[`optim.${i}.v`] = s.v;
  });
  const optimMeta = { step: sd.step, lrScale: sd.lrScale, groups: sd.groups, steps: sd.state.map((s) => s.step) };
  saveSafetensors(path, tensors, { lavender: JSON.stringify(meta), optimizer: JSON.stringify(optimMeta) });
}

/** Which tensors of a checkpoint are its own (weights, moments), the rest being extras. */
const ownTensor = (k: string) => k.startsWith('model.') || k.startsWith('optim.');

/**
 * Restore model and optimizer in place; returns the metadata and the extra tensors, on `extraDevice`
 * (default the model's: e.g. 'cpu' for EMAs kept in host memory, so they never pass through the GPU).
 * Errors name the file and field.
 */
export function loadCheckpoint(path: string, model: Module, opt: AdamBase, o: { extraDevice?: string } = {}): { meta: CheckpointMeta; extra: Record<string, Tensor> } {
  const device = model.parameters()[0]?.device;
  const apart = o.extraDevice !== undefined && o.extraDevice !== device;
  const { tensors, metadata } = loadSafetensors(path, { device, only: apart ? ownTensor : undefined });
  if (apart) {
    try {
      Object.assign(tensors, loadSafetensors(path, { device: o.extraDevice, only: (k) => !ownTensor(k) }).tensors);
    } catch (e) {
      for (const t of Object.values(tensors)) t.dispose();
      throw e;
    }
  }
  let meta: CheckpointMeta, optimMeta: { step: number; lrScale?: number; groups: AdamStateDict['groups']; steps: number[] };
  try {
    meta = JSON.parse(metadata.lavender ?? 'null');
    optimMeta = JSON.parse(metadata.optimizer ?? 'null');
  } catch (e) {
    throw new Error(`checkpoint ${path}: metadata is not valid JSON (${(e as Error).message})`);
  }
  if (!meta || meta.format !== 'lavender-train-v1') throw new Error(`checkpoint ${path}: metadata field 'lavender' is missing or not a lavender-train-v1 checkpoint`);
  if (!optimMeta || !Array.isArray(optimMeta.steps)) throw new Error(`checkpoint ${path}: metadata field 'optimizer' is missing`);
  const weights = Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith('model.')));
  try {
    model.loadStateDict(weights);
  } catch (e) {
    throw new Error(`checkpoint ${path}: ${(e as Error).message}`);
  }
  const state = optimMeta.steps.map((step, i) => {
    const m = tensors[`optim.${i}.m`], v = tensors[`optim.${i}.v`];
    if (!m || !v) throw new Error(`checkpoint ${path}: tensors 'optim.${i}.m' / 'optim.${i}.v' are missing`);
    return { step, m, v };
  });
  opt.loadStateDict({ step: optimMeta.step, lrScale: optimMeta.lrScale, groups: optimMeta.groups, state });
  const extra: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (ownTensor(k)) t.dispose();
    else extra[k] = t;
  }
  return { meta, extra };
}

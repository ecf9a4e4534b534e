// What a checkpoint or weights file says about the model it holds, read from the safetensors header alone.
// Every file lavender writes for a model (training checkpoints, EMA weights) stores the model's kind
// ('dit' or 'mmdit'), its full config and, where it was built from one, the preset name, so a file given to
// the wrong command is named as what it is ("holds an MMDiT 'mmdit-tiny'") instead of failing on key names.
// Files written before the kind was stored are recognised by their config keys.
import { readSafetensorsMetadata } from '../io/safetensors.js';
import type { CheckpointMeta } from './checkpoint.js';

export type ModelKind = 'dit' | 'mmdit';

/** The model a file holds: enough to rebuild it. */
export interface ModelSpec {
  kind: ModelKind;
  config: Record<string, unknown>;
  /** The preset it was built from, when it was ('mnist', 'mmdit-tiny', ...). */
  preset?: string;
}

/** Metadata of an EMA (or other weights-only) file: the model, plus what produced it. */
export interface WeightsMeta extends ModelSpec {
  format: 'lavender-weights-v1';
  step?: number;
  [key: string]: unknown;
}

const NAMES: Record<ModelKind, string> = { dit: 'DiT', mmdit: 'MMDiT' };
// keys only one of the two configs has (src/models/dit.ts and mmdit.ts)
const ONLY_DIT = ['num_classes', 'input_size', 'multiple_of', 'norm_eps', 'class_dropout_prob'];
const ONLY_MMDIT = ['global_conddim', 'max_seq', 'cond_seq_dim', 'out_channels', 'n_double_layers'];

/** The kind a config belongs to, from the keys only one kind has; undefined when it cannot tell. */
export function inferModelKind(config: Record<string, unknown>): ModelKind | undefined {
  const keys = Object.keys(config);
  const dit = keys.some((k) => ONLY_DIT.includes(k)), mmdit = keys.some((k) => ONLY_MMDIT.includes(k));
  return dit === mmdit ? undefined : dit ? 'dit' : 'mmdit';
}

/** 'DiT 'mnist'' or 'MMDiT (dim 64, 3 layers)': how messages name a model. */
export function describeModel(spec: ModelSpec): string {
  const name = NAMES[spec.kind];
  if (spec.preset) return `${name} '${spec.preset}'`;
  const c = spec.config;
  const parts = [`dim ${String(c.dim)}`, `${String(c.n_layers)} layers`];
  if (spec.kind === 'dit' && c.input_size !== undefined) parts.push(`${String(c.in_channels)}x${String(c.input_size)}x${String(c.input_size)} images`);
  return `${name} (${parts.join(', ')})`;
}

/** "a DiT", "an MMDiT 'mmdit-tiny'": a model (or a kind) with its article, for messages. */
export function modelPhrase(spec: ModelSpec | ModelKind): string {
  const kind = typeof spec === 'string' ? spec : spec.kind;
  return `${kind === 'mmdit' ? 'an' : 'a'} ${typeof spec === 'string' ? NAMES[kind] : describeModel(spec)}`;
}

function parseLavender(path: string, md: Record<string, string>): Record<string, unknown> | null {
  if (md.lavender === undefined) return null;
  try {
    const v = JSON.parse(md.lavender);
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  } catch {
    throw new Error(`${path}: metadata field 'lavender' is not valid JSON`);
  }
}

/** The lavender metadata of a training checkpoint (header only); errors name the file. */
export function readCheckpointMeta(path: string): CheckpointMeta {
  let md: Record<string, string>;
  try {
    md = readSafetensorsMetadata(path);
  } catch (e) {
    throw new Error(`checkpoint ${(e as Error).message}`);
  }
  const meta = parseLavender(`checkpoint ${path}`, md);
  if (!meta || meta.format !== 'lavender-train-v1') {
    const what = meta?.format === 'lavender-weights-v1' ? ` (it holds weights only, ${String(meta.format)}: use it with \`sample\`, not --resume)` : '';
    throw new Error(`checkpoint ${path}: metadata field 'lavender' is missing or not a lavender-train-v1 checkpoint${what}`);
  }
  return meta as CheckpointMeta;
}

/** The model described by lavender metadata (a training checkpoint's or a weights file's), if it names one. */
export function modelSpecOf(meta: Record<string, unknown> | null): ModelSpec | undefined {
  const config = meta?.config;
  if (!config || typeof config !== 'object') return undefined;
  const c = config as Record<string, unknown>;
  const kind = meta!.kind === 'dit' || meta!.kind === 'mmdit' ? meta!.kind : inferModelKind(c);
  if (!kind) return undefined;
  return { kind, config: c, preset: typeof meta!.preset === 'string' ? meta!.preset : undefined };
}

/** The model a safetensors file holds according to its metadata (undefined for a plain state dict). */
export function readModelSpec(path: string): { spec?: ModelSpec; meta: Record<string, unknown> | null } {
  const meta = parseLavender(path, readSafetensorsMetadata(path));
  return { spec: modelSpecOf(meta), meta };
}

/**
 * One line when `path` holds another kind of model than `expected`: "checkpoint F holds an MMDiT 'mmdit-tiny',
 * but train mnist trains a DiT 'mnist'". `user` names the command and what it wants.
 */
export function assertModelKind(path: string, found: ModelSpec, expected: ModelSpec | ModelKind, user: string): void {
  const kind = typeof expected === 'string' ? expected : expected.kind;
  if (found.kind !== kind) throw new Error(`${path} holds ${modelPhrase(found)}, but ${user} ${modelPhrase(expected)}`);
}

/** Metadata for a weights file (e.g. an EMA) of `spec`, as saveSafetensors takes it. */
export function weightsMetadata(spec: ModelSpec, extra: Record<string, unknown> = {}): Record<string, string> {
  const meta: WeightsMeta = { format: 'lavender-weights-v1', kind: spec.kind, config: spec.config, ...(spec.preset ? { preset: spec.preset } : {}), ...extra };
  return { lavender: JSON.stringify(meta) };
}

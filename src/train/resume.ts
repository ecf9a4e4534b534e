// Checks before a run resumes from a checkpoint, shared by every training loop; all read the checkpoint's
// header only and run before anything is written, so a refused resume leaves every file as it was.
// - the checkpoint must hold the model this run trains (kind and config; a different one is named);
// - --steps, the total, must go beyond the checkpoint's step (otherwise nothing would be trained);
// - settings that shape the run (batch, learning rate, ...) must match the checkpoint's, unless the caller
//   allows changes (`--allow-changes`): continuing with another batch or lr is a different run.
import { describeModel, modelSpecOf, assertModelKind, readCheckpointMeta, type ModelSpec } from '../optim/checkpoint-meta.js';
import type { CheckpointMeta } from '../optim/checkpoint.js';

export interface ResumeWant {
  /** The model this run trains (resolved config). */
  model: ModelSpec;
  /** The run's total steps. */
  steps: number;
  /** Settings that must equal the checkpoint's (metadata field name -> this run's value). */
  settings: Record<string, number | string | undefined>;
  allowChanges?: boolean;
  /** The command, for messages (e.g. 'train mnist'). */
  command?: string;
}

const flagOf = (key: string) => `--${key.replace(/_/g, '-')}`;
const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Throws one line naming what differs; returns nothing when the run may resume. */
export function checkResume(path: string, meta: CheckpointMeta, want: ResumeWant): void {
  const command = want.command ?? 'this run';
  const found = modelSpecOf(meta);
  if (!found) throw new Error(`checkpoint ${path}: its metadata has no model config (not written by a lavender training run?)`);
  assertModelKind(`checkpoint ${path}`, found, want.model, `${command} trains`);
  const a = found.config, b = want.model.config;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !sameJson(a[k], b[k]));
  if (keys.length) {
    const diff = keys.map((k) => `${k} ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`).join(', ');
    throw new Error(`checkpoint ${path} holds ${describeModel(found)}, but ${command} trains ${describeModel(want.model)} (${diff})`);
  }
  if (!(want.steps > meta.step)) {
    throw new Error(`--steps ${want.steps} does not go beyond the checkpoint's step ${meta.step}, so nothing would be trained; --steps is the total: pass more than ${meta.step}`);
  }
  const changed = Object.entries(want.settings).filter(([k, v]) => v !== undefined && meta[k] !== undefined && !sameJson(meta[k], v));
  if (changed.length && !want.allowChanges) {
    const was = changed.map(([k]) => `${flagOf(k)} ${String(meta[k])}`).join(', ');
    const now = changed.map(([k, v]) => `${flagOf(k)} ${String(v)}`).join(', ');
    throw new Error(`checkpoint ${path} was trained with ${was}, this run asks for ${now}; resume with the same values (or leave the flags out), or pass --allow-changes to continue with the new ones`);
  }
}

/** Read a checkpoint's metadata (header only) and check it against the run: see checkResume. */
export function readResumable(path: string, want: ResumeWant): CheckpointMeta {
  const meta = readCheckpointMeta(path);
  checkResume(path, meta, want);
  return meta;
}

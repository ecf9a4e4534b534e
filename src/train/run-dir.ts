// The run directory (--out) of a training run, shared by every training loop.
//
// A new run refuses a directory that already holds files, so a typo'd --out never overwrites a previous run.
// `resume` continues a run: metrics.jsonl keeps its lines up to the resumed step (lines past it belonged
// to steps the resumed run redoes) and new lines are appended. `overwrite` starts afresh: the files a
// previous run wrote there (checkpoints and their ZeRO shards, metrics, samples, EMAs, conditions) are
// removed first, so nothing stale sits beside the new run's files; files lavender did not write are kept.
//
// checkRunDir() changes nothing but creating a missing directory; it runs before any work. startRun() runs
// right before the first step, when every check has passed.
import { appendFileSync, existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareOutputDir } from '../io/output-path.js';

export interface RunDirOptions {
  /** The checkpoint the run resumes from (the directory may hold files). */
  resume?: string;
  /** Start a new run in a directory that holds a previous one, removing that run's files. */
  overwrite?: boolean;
  /** The flag that named the directory, for messages (default '--out'). */
  flag?: string;
}

/** Files (and temporary files of interrupted atomic writes) that lavender's training runs write. */
const RUN_FILE = /^(checkpoint(\.zero-step\d+-rank\d+-of-\d+)?\.safetensors|metrics\.jsonl|samples\.(png|gif)|ema\d+\.safetensors|cond\.safetensors)(\.tmp-\d+)?$/;

/** The names in `dir` that a lavender training run wrote. */
export function runFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => RUN_FILE.test(f)).sort() : [];
}

/**
 * Validate `out` (creating it if missing) and refuse a non-empty directory unless the run resumes or
 * overwrites. Changes nothing else. Throws one line naming the flag.
 */
export function checkRunDir(out: string, o: RunDirOptions = {}): void {
  const flag = o.flag ?? '--out';
  if (o.resume && o.overwrite) throw new Error(`--resume and --overwrite exclude each other: --resume continues the run in ${out}, --overwrite starts a new one there`);
  prepareOutputDir(out, flag);
  if (o.resume || o.overwrite) return;
  const entries = readdirSync(out).filter((f) => !f.startsWith('.lavender-write-probe-'));
  if (entries.length === 0) return;
  const shown = entries.sort().slice(0, 4).join(', ') + (entries.length > 4 ? `, ... (${entries.length} entries)` : '');
  throw new Error(`${flag} ${out} is not empty (${shown}); a new run would overwrite it. Resume it with --resume ${join(out, 'checkpoint.safetensors')}, pass --overwrite to replace it, or choose another ${flag}`);
}

/** metrics.jsonl of a run: one JSON object per step. */
export class MetricsLog {
  constructor(readonly path: string, private readonly enabled = true) {}
  append(record: Record<string, unknown>): void {
    if (this.enabled) appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }
}

export interface StartRunOptions extends RunDirOptions {
  /** The step the run resumes at (lines of metrics.jsonl past it are dropped). */
  resumeStep?: number;
  /** False on ranks other than 0 of a data-parallel run: they share the directory and write nothing here. */
  lead?: boolean;
}

/**
 * Called right before the first step: with `overwrite`, remove the previous run's files; open metrics.jsonl
 * (new, or on resume its lines up to `resumeStep`). Returns the log to append to.
 */
export function startRun(out: string, o: StartRunOptions = {}): MetricsLog {
  const lead = o.lead ?? true;
  const metrics = join(out, 'metrics.jsonl');
  if (!lead) return new MetricsLog(metrics, false);
  if (o.overwrite) for (const f of runFiles(out)) unlinkSync(join(out, f));
  if (o.resume && existsSync(metrics)) {
    const step = o.resumeStep ?? 0;
    const keep = readFileSync(metrics, 'utf8').split('\n').filter((line) => {
      if (!line.trim()) return false;
      try {
        const s = (JSON.parse(line) as { step?: unknown }).step;
        return typeof s === 'number' && s <= step;
      } catch {
        return false; // a line cut short by an interrupted run
      }
    });
    writeFileSync(metrics, keep.length ? `${keep.join('\n')}\n` : '');
  } else {
    writeFileSync(metrics, '');
  }
  return new MetricsLog(metrics);
}

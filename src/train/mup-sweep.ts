// The muTransfer learning-rate sweep: MMDiTs of growing width trained at every learning rate of a grid, under
// muP and under the standard parametrisation (SP), to see whether the best rate stays put as the width grows.
//
// The sweep directory (--out):
//   sweep.json      the settings every run shares; once a run has finished, a re-run with other settings is
//                   refused (the grid itself may change: points already finished are reused, new ones trained)
//   runs/<key>.json a finished run's result, written atomically at its end: present = finished, never redone
//   runs/<key>/     the run's training directory (metrics.jsonl: its loss curve); an unfinished one is redone
//   sweep.jsonl     one row per finished point of the grid, in grid order, rewritten (atomically) after each run
// Runs are independent; this file plans them and runs them one after another; cli/sweep-pool.ts spreads them
// over processes.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/byte-source.js';
import { prepareOutputDir } from '../io/output-path.js';
import type { TrainParametrization } from './parametrization.js';
import { pointKey, readResult, runSweepPoint, type SweepPoint, type SweepRunResult, type SweepSettings } from './sweep-run.js';

export const SWEEP_FORMAT = 'lavender-mup-sweep-v1';

export interface SweepGrid {
  widths: number[];
  lrs: number[];
  params: TrainParametrization[];
  /** Seeds 0 .. seeds-1. */
  seeds: number;
}

export interface SweepPlan {
  out: string;
  runsDir: string;
  settings: SweepSettings;
  /** Every point of the grid, in grid order (parametrisation, width, lr, seed). */
  points: SweepPoint[];
  /** Results of the points already finished. */
  finished: Map<string, SweepRunResult>;
  /** Points still to run, the widest (slowest) first. */
  todo: SweepPoint[];
}

/** One row of sweep.jsonl. */
export interface SweepRow {
  width: number;
  lr: number;
  log2_lr: number;
  parametrization: TrainParametrization;
  seed: number;
  final_loss: number | null;
  diverged: boolean;
  steps_run: number;
}

export function gridPoints(g: SweepGrid): SweepPoint[] {
  const pts: SweepPoint[] = [];
  for (const parametrization of g.params) for (const width of g.widths) for (const lr of g.lrs) for (let seed = 0; seed < g.seeds; seed++) pts.push({ parametrization, width, lr, seed });
  return pts;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Create or reopen the sweep directory: the settings must equal a previous sweep's there (`extra`: more
 * fields that must match, e.g. how synthetic data was made). Finished points are read back.
 */
export function planSweep(out: string, settings: SweepSettings, grid: SweepGrid, extra: Record<string, unknown> = {}): SweepPlan {
  checkGrid(grid);
  prepareOutputDir(out);
  const runsDir = join(out, 'runs');
  const metaPath = join(out, 'sweep.json');
  const meta = { format: SWEEP_FORMAT, settings, ...extra };
  if (existsSync(metaPath)) {
    let prev: Record<string, unknown>;
    try {
      prev = JSON.parse(readFileSync(metaPath, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`mup-sweep: ${metaPath} is not valid JSON (${(e as Error).message}); choose another --out`);
    }
    if (prev.format !== SWEEP_FORMAT) throw new Error(`mup-sweep: ${metaPath} is not a lavender sweep (format ${JSON.stringify(prev.format)}); choose another --out`);
    const was = { ...(prev.settings as object), ...Object.fromEntries(Object.keys(extra).map((k) => [k, prev[k]])) } as Record<string, unknown>;
    const now = { ...settings, ...extra } as Record<string, unknown>;
    const diff = [...new Set([...Object.keys(was), ...Object.keys(now)])].filter((k) => !sameJson(was[k], now[k]));
    // settings are locked by finished runs only: before the first one they may still change (a typo'd flag)
    const anyFinished = existsSync(runsDir) && readdirSync(runsDir).some((f) => f.endsWith('.json'));
    if (diff.length && !anyFinished) writeMeta(metaPath, meta);
    else if (diff.length) {
      throw new Error(`mup-sweep: ${out} holds a sweep with other settings (${diff.map((k) => `${k} ${JSON.stringify(was[k])} there vs ${JSON.stringify(now[k])} now`).join(', ')}); its finished runs are not comparable: use the same settings to continue it, or choose another --out`);
    }
  } else {
    writeMeta(metaPath, meta);
  }
  mkdirSync(runsDir, { recursive: true });
  const points = gridPoints(grid);
  const finished = new Map<string, SweepRunResult>();
  for (const p of points) {
    const r = readResult(runsDir, p);
    if (r) finished.set(pointKey(p), r);
  }
  const todo = points.filter((p) => !finished.has(pointKey(p))).sort((a, b) => b.width - a.width);
  return { out, runsDir, settings, points, finished, todo };
}

function writeMeta(path: string, meta: object): void {
  writeFileAtomic(path, [new TextEncoder().encode(`${JSON.stringify(meta, null, 1)}\n`)]);
}

function checkGrid(g: SweepGrid): void {
  const bad = (what: string, v: unknown) => new Error(`mup-sweep: ${what}, got ${JSON.stringify(v)}`);
  if (!g.widths.length || g.widths.some((w) => !Number.isInteger(w) || w < 1)) throw bad('--widths must be positive integers', g.widths);
  if (new Set(g.widths).size !== g.widths.length) throw bad('--widths has a width twice', g.widths);
  if (!g.lrs.length || g.lrs.some((lr) => !(lr > 0) || !Number.isFinite(lr))) throw bad('--lrs must be positive numbers', g.lrs);
  if (new Set(g.lrs).size !== g.lrs.length) throw bad('--lrs has a rate twice', g.lrs);
  if (!g.params.length) throw bad('--param names no parametrisation', g.params);
  if (!Number.isInteger(g.seeds) || g.seeds < 1) throw bad('--seeds must be a positive integer', g.seeds);
}

export function toRow(r: SweepRunResult): SweepRow {
  return { width: r.width, lr: r.lr, log2_lr: Math.log2(r.lr), parametrization: r.parametrization, seed: r.seed, final_loss: r.final_loss, diverged: r.diverged, steps_run: r.steps_run };
}

/** Rewrite sweep.jsonl from the finished points (grid order). Returns the rows. */
export function writeSweepTable(plan: SweepPlan): SweepRow[] {
  const rows = plan.points.flatMap((p) => {
    const r = plan.finished.get(pointKey(p));
    return r ? [toRow(r)] : [];
  });
  writeFileAtomic(join(plan.out, 'sweep.jsonl'), [new TextEncoder().encode(rows.map((r) => `${JSON.stringify(r)}\n`).join(''))]);
  return rows;
}

/** What a sweep reports while it runs (one progress line is drawn from these). */
export type SweepEvent =
  | { kind: 'start'; point: SweepPoint; key: string; worker: number }
  | { kind: 'step'; key: string; step: number; loss: number; worker: number }
  | { kind: 'done'; result: SweepRunResult; worker: number };

/** Run the plan's remaining points one after another in this process. */
export function runSweepHere(plan: SweepPlan, onEvent?: (e: SweepEvent) => void): void {
  for (const p of plan.todo) {
    const key = pointKey(p);
    onEvent?.({ kind: 'start', point: p, key, worker: 0 });
    const result = runSweepPoint(plan.settings, p, plan.runsDir, (step, loss) => onEvent?.({ kind: 'step', key, step, loss, worker: 0 }));
    recordFinished(plan, result);
    onEvent?.({ kind: 'done', result, worker: 0 });
  }
}

/** Note a finished run (its result file is already written) and refresh sweep.jsonl. */
export function recordFinished(plan: SweepPlan, r: SweepRunResult): void {
  plan.finished.set(r.key, r);
  writeSweepTable(plan);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the basins

export interface WidthOptimum {
  parametrization: TrainParametrization;
  width: number;
  /** The lr with the lowest mean final loss over seeds among rates where no seed diverged (null: all diverged). */
  best_lr: number | null;
  best_loss: number | null;
}

export interface SweepAnalysis {
  optima: WidthOptimum[];
  /** Per parametrisation: log2(best lr at the widest width) - log2(best lr at the narrowest), in grid steps of x2. */
  shift: Partial<Record<TrainParametrization, number | null>>;
  /** Whether SP at the widest width diverged at muP's best rate for that width (null: not measured). */
  spWidestDivergesAtMuPBest: boolean | null;
  /** The acceptance reading: muP moves by at most one step, SP by at least two or diverges at muP's rate. */
  transfers: boolean | null;
}

/** Mean final loss over seeds per (parametrisation, width, lr); diverged if any seed diverged. */
export function meanByRate(rows: readonly SweepRow[]): Map<string, { loss: number | null; diverged: boolean; row: SweepRow }> {
  const acc = new Map<string, { sum: number; n: number; diverged: boolean; row: SweepRow }>();
  for (const r of rows) {
    const k = `${r.parametrization}|${r.width}|${r.lr}`;
    const a = acc.get(k) ?? { sum: 0, n: 0, diverged: false, row: r };
    a.diverged ||= r.diverged || r.final_loss === null;
    if (r.final_loss !== null) {
      a.sum += r.final_loss;
      a.n++;
    }
    acc.set(k, a);
  }
  return new Map([...acc].map(([k, a]) => [k, { loss: a.n ? a.sum / a.n : null, diverged: a.diverged, row: a.row }]));
}

export function analyzeSweep(rows: readonly SweepRow[]): SweepAnalysis {
  const means = meanByRate(rows);
  const params = [...new Set(rows.map((r) => r.parametrization))];
  const optima: WidthOptimum[] = [];
  for (const parametrization of params) {
    const widths = [...new Set(rows.filter((r) => r.parametrization === parametrization).map((r) => r.width))].sort((a, b) => a - b);
    for (const width of widths) {
      let best: WidthOptimum = { parametrization, width, best_lr: null, best_loss: null };
      for (const m of means.values()) {
        if (m.row.parametrization !== parametrization || m.row.width !== width || m.diverged || m.loss === null) continue;
        if (best.best_loss === null || m.loss < best.best_loss) best = { parametrization, width, best_lr: m.row.lr, best_loss: m.loss };
      }
      optima.push(best);
    }
  }
  const shift: SweepAnalysis['shift'] = {};
  for (const p of params) {
    const o = optima.filter((x) => x.parametrization === p);
    const lo = o[0]?.best_lr, hi = o[o.length - 1]?.best_lr;
    shift[p] = o.length > 1 && lo && hi ? Math.log2(hi) - Math.log2(lo) : null;
  }
  const widest = Math.max(...rows.map((r) => r.width));
  const mupBest = optima.find((o) => o.parametrization === 'mup' && o.width === widest)?.best_lr ?? null;
  const spThere = mupBest === null ? undefined : means.get(`sp|${widest}|${mupBest}`);
  const spWidestDivergesAtMuPBest = spThere ? spThere.diverged : null;
  const m = shift.mup, s = shift.sp;
  const transfers = m === undefined || m === null || s === undefined ? null : Math.abs(m) <= 1 && ((s !== null && Math.abs(s) >= 2) || spWidestDivergesAtMuPBest === true);
  return { optima, shift, spWidestDivergesAtMuPBest, transfers };
}

// One run of the learning-rate sweep: an MMDiT of one width trained at one learning rate under one
// parametrisation, through the public t2i training entry (trainT2I), reduced to the numbers the sweep needs.
// Its result file is written atomically and only once the run has finished: a result file on disk means a
// finished run, whatever happened to the process afterwards.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/byte-source.js';
import type { MMDiTConfig } from '../models/mmdit.js';
import type { TrainParametrization } from './parametrization.js';
import { trainT2I } from './train-t2i.js';

/** What every run of a sweep shares (a resumed sweep must have the same). */
export interface SweepSettings {
  /** The MDS shards (absolute path). */
  data: string;
  steps: number;
  batch: number;
  /** Blocks of the MMDiT (n_layers) and how many of them are double-stream. */
  layers: number;
  doubleLayers: number;
  /** Width of one attention head: a model of width W has W / headDim heads. */
  headDim: number;
  latentSize: number;
  /** cond_seq_dim of the model (class conditions need 2 x classes). */
  condDim: number;
  /** Text tokens kept (LavenderFlow layout only). */
  tokens: number;
  warmup: number;
  weightDecay: number;
  /** muP's base width: the width whose learning rate the others inherit. */
  baseWidth: number;
}

/** One point of the grid. */
export interface SweepPoint {
  parametrization: TrainParametrization;
  width: number;
  lr: number;
  seed: number;
}

export interface SweepRunResult extends SweepPoint {
  key: string;
  /** Mean training loss over the last 10% of the steps (null when it is not finite). */
  final_loss: number | null;
  diverged: boolean;
  /** Loss of the first step (the untrained model), the divergence reference. */
  first_loss: number;
  /** Steps trained (fewer than the sweep's steps when the run was stopped as diverged). */
  steps_run: number;
  seconds: number;
  finished_at: string;
}

/** A run stops as diverged when its loss is not finite or exceeds this multiple of its first loss. */
export const BLOWUP_FACTOR = 3;

/** The file-name-safe key of a point: mup-w64-lr2^-10-s0 (the exponent for powers of two, else the number). */
export function pointKey(p: SweepPoint): string {
  return `${p.parametrization}-w${p.width}-lr${lrLabel(p.lr)}-s${p.seed}`;
}

/** 2^-10 for powers of two, else the shortest decimal form. */
export function lrLabel(lr: number): string {
  const e = Math.log2(lr);
  return Number.isInteger(e) ? `2^${e}` : String(lr);
}

export function modelConfig(s: SweepSettings, width: number): MMDiTConfig {
  if (width % s.headDim) throw new Error(`mup-sweep: width ${width} is not a multiple of the head width ${s.headDim}`);
  const tokensPerSide = s.latentSize / 2;
  return { dim: width, n_layers: s.layers, n_double_layers: s.doubleLayers, n_heads: width / s.headDim, global_conddim: width, cond_seq_dim: s.condDim, max_seq: tokensPerSide * tokensPerSide };
}

export const resultPath = (runsDir: string, key: string) => join(runsDir, `${key}.json`);

/** The recorded result of a finished run, or null (no file, or one that does not hold this point's result). */
export function readResult(runsDir: string, p: SweepPoint): SweepRunResult | null {
  const key = pointKey(p), path = resultPath(runsDir, key);
  if (!existsSync(path)) return null;
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as SweepRunResult;
    return r.key === key && typeof r.diverged === 'boolean' ? r : null;
  } catch {
    return null; // not ours or damaged: the run is redone
  }
}

/** Mean of the last 10% of the losses (at least one). */
export function tailMean(losses: readonly number[]): number {
  const n = Math.max(1, Math.ceil(losses.length / 10));
  const tail = losses.slice(-n);
  return tail.reduce((a, b) => a + b, 0) / tail.length;
}

/**
 * Train point `p` in runsDir/<key>/ (an unfinished earlier attempt there is replaced) and record its result
 * in runsDir/<key>.json. `onStep` sees every step's loss (for the sweep's progress line).
 */
export function runSweepPoint(s: SweepSettings, p: SweepPoint, runsDir: string, onStep?: (step: number, loss: number) => void): SweepRunResult {
  const key = pointKey(p);
  const t0 = performance.now();
  let first = NaN, blewUp = false;
  const { losses } = trainT2I({
    data: s.data, preset: modelConfig(s, p.width), steps: s.steps, batch: s.batch, lr: p.lr, seed: p.seed,
    out: join(runsDir, key), overwrite: true, latentSize: s.latentSize, tokens: s.tokens, warmup: s.warmup,
    weightDecay: s.weightDecay, emaEvery: s.steps, parametrization: p.parametrization, mupBaseWidth: s.baseWidth,
    save: false, progress: false, log: () => {},
    onStep: ({ step, loss }) => {
      if (step === 1) first = loss;
      onStep?.(step, loss);
      if (!Number.isFinite(loss) || loss > BLOWUP_FACTOR * first) {
        blewUp = true;
        return 'stop';
      }
    },
  });
  const mean = tailMean(losses);
  const finite = Number.isFinite(mean);
  const result: SweepRunResult = {
    key, ...p, final_loss: finite ? mean : null, diverged: blewUp || !finite || mean > first, first_loss: first,
    steps_run: losses.length, seconds: (performance.now() - t0) / 1000, finished_at: new Date().toISOString(),
  };
  writeFileAtomic(resultPath(runsDir, key), [new TextEncoder().encode(`${JSON.stringify(result)}\n`)]);
  return result;
}

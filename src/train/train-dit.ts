// The DiT sanity runs (train mnist|cifar): the DiT recipe for the one training loop (loop.ts): Adam on
// the class-conditional DiT, the DataLoader's batches, label dropout drawn from the training generator,
// and the sample grid at the end. Every source of randomness (init, shuffle, time/noise, label dropout)
// is a seeded Philox stream whose state goes into the checkpoint, so a resumed run continues exactly.
import { join } from 'node:path';
import { DiT, type DiTConfig } from '../models/dit.js';
import { batchOf, DataLoader, type ImageDataset } from '../data/loader.js';
import type { TimeSampling } from '../flow/rectified-flow.js';
import { linearDecay } from '../optim/schedule.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadSafetensors } from '../io/safetensors.js';
import { assertModelKind, readModelSpec } from '../optim/checkpoint-meta.js';
import { ditSpec } from './model-spec.js';
import { estimateSamplingSeconds, planSampling, type SamplingPlan } from './sampling-plan.js';
import { sampleGrid } from './sample-dit.js';
import { train, trainDistributed, type DistTrainOptions, type TrainLoopOptions, type TrainRecipe, type TrainResult } from './loop.js';

export { formatMemoryReport, type DistTrainOptions, type TrainResult } from './loop.js';

export interface TrainDiTOptions {
  /** 'bfloat16': the forward under autocast (ops/autocast.ts); float32 master weights and moments either way. */
  precision?: 'float32' | 'bfloat16';
  /** 'linear': the lr decays linearly to 0 over the run (optim/schedule.ts linearDecay; logged as lr_scale);
   *  default 'constant'. */
  lrSchedule?: 'constant' | 'linear';
  dataset: ImageDataset;
  /** Preset name ('mnist', 'cifar') or a full config. */
  model: string | DiTConfig;
  steps: number;
  /** The global batch of one forward/backward (all ranks together). */
  batch: number;
  /** Micro-batches of `batch` per optimizer step (default 1). */
  gradAccum?: number;
  lr: number;
  seed: number;
  backend?: string;
  out: string;
  resume?: string;
  /** Start a new run in an --out that holds a previous one (its files are removed first). */
  overwrite?: boolean;
  /** Resume with another batch or learning rate than the checkpoint's (otherwise refused). */
  allowChanges?: boolean;
  timeSampling?: TimeSampling;
  /** Save a checkpoint every N steps (and always at the end). */
  checkpointEvery?: number;
  /** false: no checkpoint at the end (benchmark runs; default true); the sample grid is drawn all the same. */
  save?: boolean;
  /** Recompute each block in the backward instead of keeping its activations. */
  checkpointActivations?: boolean;
  /** Images per class in the final sample grid; 0 skips sampling; default 4, or none for a run under 100 steps. */
  sampleRows?: number;
  sampleSteps?: number;
  cfg?: number;
  progress?: boolean;
  log?: (line: string) => void;
  /** Called on every rank after each step (TrainLoopOptions.onStep). */
  onStep?: TrainLoopOptions['onStep'];
}

function checkImages(d: ImageDataset, config: DiTConfig): void {
  if (d.channels !== config.in_channels || d.height !== config.input_size || d.width !== config.input_size) {
    throw new Error(`train: images are ${d.channels}x${d.height}x${d.width} but the model expects ${config.in_channels}x${config.input_size}x${config.input_size}`);
  }
}

/** The end-of-run grid and GIF (rank 0 only when distributed), timed and logged. */
function drawSamples(model: DiT, plan: SamplingPlan, o: TrainDiTOptions, secondsPerStep: number, log: (l: string) => void): void {
  if (plan.rows === 0) {
    if (plan.skipped && o.sampleRows === undefined) log(`no sample grid: ${plan.skipped} (\`lavender sample --checkpoint ${join(o.out, 'checkpoint.safetensors')}\` draws one)`);
    return;
  }
  const classes = model.config.num_classes, est = estimateSamplingSeconds(plan, classes, secondsPerStep, o.batch);
  log(`sampling ${plan.rows * classes} images, ${plan.steps} Euler steps with CFG (about ${Math.max(1, Math.round(est))} s)`);
  const t0 = performance.now();
  const png = join(o.out, 'samples.png');
  sampleGrid(model, { rows: plan.rows, steps: plan.steps, cfg: o.cfg ?? 2, seed: o.seed, png, gif: join(o.out, 'samples.gif') });
  log(`wrote ${png} and samples.gif in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** The DiT recipe: what train mnist|cifar trains, for the loop. */
export function ditRecipe(o: TrainDiTOptions): TrainRecipe<Tensor> {
  const spec = ditSpec(o.model);
  const config = spec.config as unknown as DiTConfig;
  return {
    command: 'train',
    spec,
    settings: { batch: o.batch, lr: o.lr },
    check: () => checkImages(o.dataset, config),
    build: (rng) => {
      const plan = planSampling(o);
      const model = new DiT(config, { generator: new Generator(o.seed), device: o.backend });
      model.generator = rng; // label dropout draws are part of the training stream
      const K = o.gradAccum ?? 1;
      const loader = new DataLoader(o.dataset, { batchSize: K * o.batch, seed: o.seed, device: o.backend });
      const classes = model.config.num_classes;
      return {
        model,
        optimizer: { kind: 'adam', groups: model.parameters(), lr: o.lr },
        lrScaleAt: o.lrSchedule === 'linear' ? (step) => linearDecay(step, o.steps) : undefined,
        data: loader,
        rows: (idx) => {
          const { x, y } = batchOf(o.dataset, idx, o.backend);
          return { x, cond: y };
        },
        describe: ({ ranks, zero, perRank }) => {
          const what = `training DiT (${model.numParameters().toLocaleString('en')} parameters) for ${o.steps} steps`;
          const accum = K > 1 ? ` x ${K} accumulated` : '';
          if (zero === null) return `${what}, batch ${o.batch}${accum}, lr ${o.lr}, on ${o.backend ?? 'cpu'}`;
          return `${what}, global batch ${o.batch}${accum} over ${ranks} rank(s) (${perRank} each), ZeRO stage ${zero}, lr ${o.lr}, on ${o.backend ?? 'cpu'}`;
        },
        after: plan.rows ? (per) => ({ seconds: estimateSamplingSeconds(plan, classes, per, o.batch), what: 'sampling' }) : undefined,
        finished: ({ secondsPerStep, log }) => drawSamples(model, plan, o, secondsPerStep, log),
        tokensPerSample: (model.config.input_size / model.config.patch_size) ** 2,
      };
    },
  };
}

/** Train the DiT in this process (synchronous). */
export function trainDiT(o: TrainDiTOptions): TrainResult {
  return train(ditRecipe(o), o);
}

/**
 * Data-parallel trainDiT: every rank runs this with the same options (checked at rendezvous); see loop.ts
 * for how the global batch and its random draws are split so the run follows the single-process one.
 */
export function trainDiTDistributed(o: TrainDiTOptions & { dist: DistTrainOptions }): Promise<TrainResult> {
  return trainDistributed(ditRecipe(o), o);
}

/** Rebuild a model from a training checkpoint (for sampling). */
export function modelFromCheckpoint(path: string, backend?: string): DiT {
  const { spec } = readModelSpec(path);
  if (!spec) throw new Error(`checkpoint ${path}: metadata field 'lavender' has no model config (not written by lavender?)`);
  assertModelKind(`checkpoint ${path}`, spec, 'dit', '`sample` (--model dit) draws from');
  const { tensors } = loadSafetensors(path, { device: backend });
  const model = new DiT(spec.config as unknown as DiTConfig, { device: backend });
  model.loadStateDict(Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith('model.'))));
  for (const t of Object.values(tensors)) t.dispose();
  return model;
}

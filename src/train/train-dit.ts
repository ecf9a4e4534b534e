// The DiT sanity training loop: data -> DiT -> rectified-flow loss -> backward -> Adam -> metrics,
// checkpoint, sample grid. Every source of randomness (init, shuffle, time/noise, label dropout) is a
// seeded Philox stream whose state goes into the checkpoint, so a resumed run continues exactly.
import { join } from 'node:path';
import { DiT, type DiTConfig } from '../models/dit.js';
import { batchOf, DataLoader, type ImageDataset } from '../data/loader.js';
import { binLosses, flowLoss, type TimeSampling } from '../flow/rectified-flow.js';
import { Adam } from '../optim/adamw.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import { loadSafetensors } from '../io/safetensors.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from '../optim/checkpoint.js';
import { assertModelKind, readModelSpec } from '../optim/checkpoint-meta.js';
import { Progress } from './progress.js';
import { checkRunDir, startRun } from './run-dir.js';
import { readResumable } from './resume.js';
import { ditSpec, modelMeta } from './model-spec.js';
import { estimateSamplingSeconds, planSampling, type SamplingPlan } from './sampling-plan.js';
import { sampleGrid } from './sample-dit.js';
import { allGatherNumbers, type ProcessGroup } from '../distributed/process-group.js';
import { ZeroOptimizer, type MemoryReport, type ZeroStage } from '../distributed/zero.js';
import { ShardedGenerator } from '../distributed/random.js';
import { assertNotSharded, loadDistCheckpoint, saveDistCheckpoint } from '../distributed/checkpoint.js';

export interface TrainDiTOptions {
  dataset: ImageDataset;
  /** Preset name ('mnist', 'cifar') or a full config. */
  model: string | DiTConfig;
  steps: number;
  batch: number;
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
  /** Images per class in the final sample grid; 0 skips sampling; default 4, or none for a run under 100 steps. */
  sampleRows?: number;
  sampleSteps?: number;
  cfg?: number;
  progress?: boolean;
  log?: (line: string) => void;
}

export interface TrainResult {
  losses: number[];
  checkpoint: string;
  secondsPerStep: number;
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

/** The progress line's addition: the sample grid's estimated time after the last step. */
const samplingEta = (plan: SamplingPlan, classes: number, batch: number) => (plan.rows ? (per: number) => ({ seconds: estimateSamplingSeconds(plan, classes, per, batch), what: 'sampling' }) : undefined);

export function trainDiT(o: TrainDiTOptions): TrainResult {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const spec = ditSpec(o.model);
  const config = spec.config as unknown as DiTConfig;
  const d = o.dataset;
  checkImages(d, config);
  checkRunDir(o.out, o);
  if (o.resume) {
    assertNotSharded(o.resume);
    readResumable(o.resume, { model: spec, steps: o.steps, settings: { batch: o.batch, lr: o.lr }, allowChanges: o.allowChanges });
  }
  const plan = planSampling(o);
  const model = new DiT(config, { generator: new Generator(o.seed), device: o.backend });
  const opt = new Adam(model.parameters(), { lr: o.lr });
  const loader = new DataLoader(d, { batchSize: o.batch, seed: o.seed, device: o.backend });
  const rng = new Generator(o.seed + 1); // time, noise and label dropout
  model.generator = rng;
  model.train();
  const checkpoint = join(o.out, 'checkpoint.safetensors');
  let step = 0;
  if (o.resume) {
    const { meta } = loadCheckpoint(o.resume, model, opt);
    step = meta.step;
    rng.setState(meta.rng as { seed: number; offset: number });
    loader.setState(meta.loader as ReturnType<DataLoader['getState']>);
    log(`resumed from ${o.resume} at step ${step}`);
  }
  const metrics = startRun(o.out, { ...o, resumeStep: step });
  log(`training DiT (${model.numParameters().toLocaleString('en')} parameters) for ${o.steps} steps, batch ${o.batch}, lr ${o.lr}, on ${o.backend ?? 'cpu'}`);
  const save = () => {
    const meta: CheckpointMeta = { format: 'lavender-train-v1', step, ...modelMeta(spec), rng: rng.getState(), loader: loader.getState(), lr: o.lr, batch: o.batch, seed: o.seed };
    saveCheckpoint(checkpoint, model, opt, meta);
  };
  const progress = o.progress === false ? null : new Progress(o.steps, step, undefined, samplingEta(plan, config.num_classes!, o.batch));
  const losses: number[] = [];
  const times: number[] = [];
  while (step < o.steps) {
    const t0 = performance.now();
    const { loss, bins } = scope(() => {
      const { x, y } = loader.next();
      const r = flowLoss((xt, t, cond: typeof y) => model.forward(xt, t, cond), x, y, { generator: rng, timeSampling: o.timeSampling });
      opt.zeroGrad();
      r.loss.backward();
      opt.step();
      return { loss: r.loss.item(), bins: binLosses(r.t, r.perSample) };
    });
    step++;
    const seconds = (performance.now() - t0) / 1000;
    times.push(seconds);
    losses.push(loss);
    metrics.append({ step, loss, t_bins: bins.map((b) => (Number.isNaN(b) ? null : b)), seconds });
    progress?.update(step, `loss ${loss.toFixed(4)}`);
    if (o.checkpointEvery && step % o.checkpointEvery === 0 && step < o.steps) save();
  }
  save();
  const sorted = [...times].sort((a, b) => a - b);
  const secondsPerStep = sorted.length ? sorted[Math.floor(sorted.length / 2)]! : 0;
  drawSamples(model, plan, o, secondsPerStep, log);
  log(`done: ${step} steps, last loss ${losses.at(-1)?.toFixed(4) ?? 'n/a'}, median ${secondsPerStep.toFixed(2)} s/step; checkpoint ${checkpoint}`);
  return { losses, checkpoint, secondsPerStep };
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

export interface DistTrainOptions {
  pg: ProcessGroup;
  /** ZeRO stage (0: all-reduce DDP, 1: sharded optimizer state, 2: sharded gradients too). */
  zero: ZeroStage;
  bucketElements?: number;
  /** Called with this rank's memory report before the first step (also logged on every rank). */
  onMemoryReport?: (r: MemoryReport) => void;
}

const MiB = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;

export function formatMemoryReport(r: MemoryReport): string {
  const m = r.measured, f = r.formula_bf16;
  return [
    `memory rank ${r.rank}/${r.worldSize}, ZeRO stage ${r.stage}, Ψ = ${r.parameters.toLocaleString('en')} parameters`,
    `  measured (${r.precision}): parameters ${MiB(m.parameters)}, gradients ${MiB(m.gradients)}, master weights ${MiB(m.master_weights)}, optimizer state ${MiB(m.optimizer_state)}; total ${MiB(m.total)}`,
    `  ZeRO formula with bf16 weights, K = 12 (${f.expression}, N = ${r.worldSize}): weights ${MiB(f.weights)}, gradients ${MiB(f.gradients)}, master weights ${MiB(f.master_weights)}, Adam state ${MiB(f.optimizer_state)}; total ${MiB(f.total)}`,
    `memory-json ${JSON.stringify(r)}`,
  ].join('\n');
}

/**
 * Data-parallel trainDiT: every rank runs this with the same options (checked at rendezvous). The global
 * batch `o.batch` and its order come from the DataLoader exactly as in the single-process run; rank r takes
 * rows r*B/N .. (r+1)*B/N, draws its rows of the global time/noise/dropout tensors (ShardedGenerator), and
 * the ZeRO optimizer averages the gradients, so the loss is the mean over the global batch and per-step
 * losses match the single-process run up to float rounding. Rank 0 writes metrics.jsonl and the samples;
 * every rank takes part in checkpoints (collective) and computes the same logged loss.
 */
export async function trainDiTDistributed(o: TrainDiTOptions & { dist: DistTrainOptions }): Promise<TrainResult> {
  const { pg } = o.dist;
  const R = pg.rank, N = pg.worldSize, lead = R === 0;
  const logAll = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const log = lead ? logAll : () => {};
  const spec = ditSpec(o.model);
  const config = spec.config as unknown as DiTConfig;
  const d = o.dataset;
  checkImages(d, config);
  if (o.batch % N !== 0) throw new Error(`train: the global batch ${o.batch} is not divisible by the number of ranks ${N} (each rank takes batch/ranks rows); choose a batch that is a multiple of ${N}`);
  if (o.timeSampling === 'stratified' && N > 1) throw new Error("train: stratified time sampling depends on the batch size seen by each rank; use 'logit-normal' or 'uniform' when distributed");
  const b = o.batch / N;
  checkRunDir(o.out, o);
  if (o.resume) readResumable(o.resume, { model: spec, steps: o.steps, settings: { batch: o.batch, lr: o.lr }, allowChanges: o.allowChanges });
  await pg.barrier(); // every rank has checked the directory before rank 0 writes to it
  const plan = planSampling(o);
  const model = new DiT(config, { generator: new Generator(o.seed), device: o.backend });
  const zero = new ZeroOptimizer(pg, model.parameters(), { stage: o.dist.zero, optimizer: 'adam', lr: o.lr, bucketElements: o.dist.bucketElements });
  const loader = new DataLoader(d, { batchSize: o.batch, seed: o.seed, device: o.backend });
  const rng = new ShardedGenerator(o.seed + 1, R, N); // time, noise and label dropout: rows of the global draws
  model.generator = rng;
  model.train();
  const checkpoint = join(o.out, 'checkpoint.safetensors');
  let step = 0;
  try {
    if (o.resume) {
      const meta = loadDistCheckpoint(o.resume, model, zero, pg);
      step = meta.step;
      rng.setState(meta.rng as { seed: number; offset: number });
      loader.setState(meta.loader as ReturnType<DataLoader['getState']>);
      log(`resumed from ${o.resume} at step ${step}`);
    }
    const metrics = startRun(o.out, { ...o, resumeStep: step, lead });
    const report = zero.memoryReport();
    o.dist.onMemoryReport?.(report);
    logAll(formatMemoryReport(report));
    log(`training DiT (${model.numParameters().toLocaleString('en')} parameters) for ${o.steps} steps, global batch ${o.batch} over ${N} rank(s) (${b} each), ZeRO stage ${zero.stage}, lr ${o.lr}, on ${o.backend ?? 'cpu'}`);
    const save = () => {
      const meta: CheckpointMeta = { format: 'lavender-train-v1', step, ...modelMeta(spec), rng: rng.getState(), loader: loader.getState(), lr: o.lr, batch: o.batch, seed: o.seed };
      return saveDistCheckpoint(checkpoint, model, zero, meta, pg);
    };
    const progress = o.progress === false || !lead ? null : new Progress(o.steps, step, undefined, samplingEta(plan, config.num_classes!, o.batch));
    const losses: number[] = [];
    const times: number[] = [];
    while (step < o.steps) {
      const t0 = performance.now();
      const local = scope(() => {
        const idx = loader.nextIndices();
        const { x, y } = batchOf(d, idx.subarray(R * b, (R + 1) * b), o.backend);
        const r = flowLoss((xt, t, cond: typeof y) => model.forward(xt, t, cond), x, y, { generator: rng, timeSampling: o.timeSampling });
        zero.zeroGrad();
        r.loss.backward();
        return { loss: r.loss.item(), perSample: r.perSample, t: r.t };
      });
      await zero.step();
      // the global loss: the mean of the per-rank means (equal sizes), summed in rank order on every rank
      const all = await allGatherNumbers(pg, [local.loss, ...local.perSample, ...local.t]);
      const stride = 1 + 2 * b;
      let loss = 0;
      const perSample: number[] = [], ts: number[] = [];
      for (let r = 0; r < N; r++) {
        loss += all[r * stride]!;
        perSample.push(...all.slice(r * stride + 1, r * stride + 1 + b));
        ts.push(...all.slice(r * stride + 1 + b, (r + 1) * stride));
      }
      loss /= N;
      const bins = binLosses(ts, perSample);
      step++;
      const seconds = (performance.now() - t0) / 1000;
      times.push(seconds);
      losses.push(loss);
      metrics.append({ step, loss, t_bins: bins.map((v) => (Number.isNaN(v) ? null : v)), seconds });
      progress?.update(step, `loss ${loss.toFixed(4)}`);
      if (o.checkpointEvery && step % o.checkpointEvery === 0 && step < o.steps) await save();
    }
    await save();
    const sorted = [...times].sort((a, c) => a - c);
    const secondsPerStep = sorted.length ? sorted[Math.floor(sorted.length / 2)]! : 0;
    if (lead) drawSamples(model, plan, o, secondsPerStep, log);
    log(`done: ${step} steps, last loss ${losses.at(-1)?.toFixed(4) ?? 'n/a'}, median ${secondsPerStep.toFixed(2)} s/step; checkpoint ${checkpoint}`);
    return { losses, checkpoint, secondsPerStep };
  } finally {
    zero.dispose();
  }
}

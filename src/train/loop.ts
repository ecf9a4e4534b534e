// The training loop of every `lavender train` command: a recipe (model, data, optimizer groups, the
// extras of its recipe: clipping, warm-up, EMAs) trained by rectified flow, with an optimizer that is plain
// or a ZeRO stage, with or without a process group, gradient accumulation and activation checkpointing.
//
// A step takes the next K*B samples of the loader (the single-process order, whatever the world size)
// as K micro-batches of B (--grad-accum K, --batch B); rank r of N computes rows r*B/N .. (r+1)*B/N of each
// micro-batch and draws exactly those rows of the step's global random tensors (ShardedGenerator). Each
// micro-batch's loss is scaled by 1/K and its gradients accumulate; the optimizer averages over ranks. So
// the update is the one of a single process on the K*B batch (up to float rounding), the logged loss is
// the mean over the K*B samples (gathered in the same order on every rank), and checkpoints do not depend
// on the world size. Rank 0 writes metrics.jsonl, the EMA files and what the recipe writes; checkpoints
// are collective.
//
// The loop is a coroutine (coroutine.ts): without a process group it never waits and runs synchronously
// (train()), with one it is driven by trainDistributed().
import { join } from 'node:path';
import { getBackend } from '../backends/registry.js';
import { formatThroughput, throughput, type Throughput } from './throughput.js';
import { flowInputs, flowObjective, binLosses, type TimeSampling } from '../flow/rectified-flow.js';
import { autocast } from '../ops/autocast.js';
import { cast } from '../ops/movement.js';
import { mul } from '../ops/elementwise.js';
import { weightsMetadata, type ModelSpec } from '../optim/checkpoint-meta.js';
import type { CheckpointMeta } from '../optim/checkpoint.js';
import { PowerEma } from '../optim/ema.js';
import { WarmupScheduler } from '../optim/schedule.js';
import { saveSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';
import type { Blockwise, ForwardPlan } from '../nn/plan.js';
import type { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { allGatherNumbers, type ProcessGroup } from '../distributed/process-group.js';
import { ShardedGenerator } from '../distributed/random.js';
import { assertNotSharded } from '../distributed/checkpoint.js';
import type { MemoryReport, ZeroStage } from '../distributed/zero.js';
import { blockwiseForwardBackward } from './blockwise.js';
import { runAsync, runSync, wait, type Co } from './coroutine.js';
import { modelMeta } from './model-spec.js';
import { makeTrainOptimizer, type OptimizerSpec, type TrainOptimizer } from './optimizer.js';
import { Progress } from './progress.js';
import { readResumable } from './resume.js';
import { checkRunDir, startRun } from './run-dir.js';

/** Where the samples of each step come from, in the single-process order. */
export interface StepData {
  /** Dataset indices of the step's K*B samples (advances the state). */
  nextIndices(): ArrayLike<number>;
  getState(): unknown;
  setState(s: never): void;
}

/** A model the loop can train: forward for the plain path, a plan for checkpointing and ZeRO-3. */
export type TrainableModel<C> = Module & Blockwise<C> & { forward(x: Tensor, t: Tensor, cond: C): Tensor };

/** An EMA of the weights kept by the loop and written beside the checkpoint as ema<k>.safetensors. */
export interface EmaSpec {
  gamma: number;
  every: number;
  at: number;
}

/** What a recipe builds once the run's checks have passed. */
export interface TrainParts<C> {
  model: TrainableModel<C>;
  optimizer: OptimizerSpec;
  /** Gradient clipping by global norm (logged as grad_norm). */
  clip?: number;
  /** Linear warm-up steps (logged as lr_scale). */
  warmup?: number;
  /** The lr multiplier of the optimizer step with 0-based index `step` (a function of the step alone, so a
   *  resumed run continues the same schedule; logged as lr_scale); applied after the warm-up's. */
  lrScaleAt?: (step: number) => number;
  emas?: EmaSpec[];
  /** Added to the EMA files' metadata. */
  emaMeta?: Record<string, unknown>;
  data: StepData;
  /** Decode rows of the step's samples into the model's inputs. */
  rows(indices: ArrayLike<number>): { x: Tensor; cond: C };
  /** The line logged before the first step (`training DiT (...) ...`). */
  describe(info: { ranks: number; zero: ZeroStage | null; perRank: number }): string;
  /** Added to the progress line's eta: what comes after the last step (e.g. the sample grid). */
  after?: (secondsPerStep: number) => { seconds: number; what: string } | null;
  /** Right before the first step, on rank 0 (writes files of the run, e.g. cond.safetensors). */
  started?(): void;
  /** After the last checkpoint, on rank 0 (e.g. the sample grid); every parameter holds data. */
  finished?(r: { secondsPerStep: number; steps: number; log: (l: string) => void }): void;
  /** The last log line's extra words (`, EMAs ema1/ema2.safetensors`). */
  doneNote?: string;
  /** Token positions per sample (text + image), for the tokens/s and MFU of the last log line. */
  tokensPerSample?: number;
}

export interface TrainRecipe<C> {
  /** The command, for messages ('train t2i'). */
  command: string;
  /** How resume refusals name the run ('train t2i'; default 'this run'). */
  resumeCommand?: string;
  spec: ModelSpec;
  /** Settings a resume must share with its checkpoint (metadata field -> value); stored in checkpoints. */
  settings: Record<string, number | string | undefined>;
  /** Checks of the inputs that need no model (run first). */
  check?(): void;
  /** The model and data; `rng` is the training generator (time, noise, and anything the model draws). */
  build(rng: Generator): TrainParts<C>;
}

export interface DistTrainOptions {
  pg: ProcessGroup;
  /** ZeRO stage (0: all-reduce DDP, 1: sharded optimizer state, 2: sharded gradients too, 3: sharded parameters too). */
  zero: ZeroStage;
  bucketElements?: number;
  /** Reduce gradient buckets during the backward (default true; stage 3 always). */
  overlap?: boolean;
  /** Called with this rank's memory report before the first step (also logged on every rank). */
  onMemoryReport?: (r: MemoryReport) => void;
}

export interface TrainLoopOptions {
  steps: number;
  /** The global micro-batch: samples per forward/backward over all ranks. */
  batch: number;
  /** Micro-batches per optimizer step (default 1): a step sees gradAccum * batch samples. */
  gradAccum?: number;
  seed: number;
  out: string;
  resume?: string;
  overwrite?: boolean;
  allowChanges?: boolean;
  /** Save a checkpoint every N steps (and always at the end). */
  checkpointEvery?: number;
  timeSampling?: TimeSampling;
  /** 'bfloat16': the model's forward under autocast (ops/autocast.ts); the loss, the backward's dtypes as the
   *  forward made them, float32 master weights and moments either way. */
  precision?: 'float32' | 'bfloat16';
  /** Recompute each block in the backward instead of keeping its activations. */
  checkpointActivations?: boolean;
  /** Where the recipe's EMAs live (default: the training device); 'cpu' keeps them in host memory (optim/ema.ts).
   *  Not a setting of the run: a resume may change it (the EMA files and checkpoints are the same either way). */
  emaDevice?: string;
  progress?: boolean;
  log?: (line: string) => void;
  dist?: DistTrainOptions;
  /**
   * Called on every rank after each step, with what it logged (e.g. to watch a run from code). 'stop' ends
   * the run after this step (a diverged sweep run); the loss is the same on every rank, so a rule on it
   * stops them all at the same step.
   */
  onStep?: (r: { step: number; loss: number; gradNorm: number | null }) => void | 'stop';
  /** false: no checkpoint or EMA files at the end (throwaway runs, e.g. a learning-rate sweep's; default true). */
  save?: boolean;
}

export interface TrainResult {
  losses: number[];
  checkpoint: string;
  secondsPerStep: number;
  /** Global gradient norms before clipping (recipes that clip). */
  gradNorms: number[];
  /** Tokens/s, MFU and peak memory (recipes that give tokensPerSample). */
  throughput?: Throughput;
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

/** A single-process run (no process group): synchronous. */
export function train<C>(recipe: TrainRecipe<C>, o: TrainLoopOptions): TrainResult {
  if (o.dist) throw new Error(`${recipe.command}: a data-parallel run is asynchronous; call trainDistributed`);
  return runSync(loop(recipe, o), recipe.command);
}

/** A run over o.dist.pg (every rank calls it with the same options): asynchronous. */
export function trainDistributed<C>(recipe: TrainRecipe<C>, o: TrainLoopOptions & { dist: DistTrainOptions }): Promise<TrainResult> {
  return runAsync(loop(recipe, o));
}

function* loop<C>(recipe: TrainRecipe<C>, o: TrainLoopOptions): Co<TrainResult> {
  const pg = o.dist?.pg;
  const R = pg?.rank ?? 0, N = pg?.worldSize ?? 1, lead = R === 0;
  const K = o.gradAccum ?? 1;
  const precision = o.precision ?? 'float32';
  const cmd = recipe.command;
  const logAll = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const log = lead ? logAll : () => {};
  recipe.check?.();
  if (!(Number.isInteger(K) && K >= 1)) throw new Error(`${cmd}: --grad-accum must be a positive integer, got ${K}`);
  if (o.emaDevice !== undefined) {
    if (o.emaDevice === 'meta') throw new Error(`${cmd}: --ema-device meta holds no data; the EMAs are written to files (use cpu or the training device)`);
    try {
      getBackend(o.emaDevice);
    } catch (e) {
      throw new Error(`${cmd}: --ema-device ${o.emaDevice}: ${(e as Error).message}`);
    }
  }
  if (o.batch % N !== 0) throw new Error(`${cmd}: the global batch ${o.batch} is not divisible by the number of ranks ${N} (each rank takes batch/ranks rows); choose a batch that is a multiple of ${N}`);
  if (o.timeSampling === 'stratified' && (N > 1 || K > 1)) throw new Error(`${cmd}: stratified time sampling depends on the batch each forward sees; use 'logit-normal' or 'uniform' with several ranks or --grad-accum`);
  const b = o.batch / N;
  checkRunDir(o.out, o);
  const settings = { ...recipe.settings, grad_accum: K };
  if (o.resume) {
    if (!pg) assertNotSharded(o.resume);
    readResumable(o.resume, { model: recipe.spec, steps: o.steps, settings, allowChanges: o.allowChanges, command: recipe.resumeCommand });
  }
  if (pg) yield* wait(pg.barrier()); // every rank has checked the directory before rank 0 writes to it
  const rng = new ShardedGenerator(o.seed + 1, R, N); // time, noise, label dropout: this rank's rows of the global draws
  const parts = recipe.build(rng);
  const { model } = parts;
  model.train();
  const opt = makeTrainOptimizer(model, parts.optimizer, o.dist ? { pg: o.dist.pg, zero: o.dist.zero, bucketElements: o.dist.bucketElements, overlap: o.dist.overlap } : undefined);
  const emaSpecs = parts.emas ?? [];
  const emas: PowerEma[] = [];
  const checkpoint = join(o.out, 'checkpoint.safetensors');
  try {
    const sched = parts.warmup !== undefined ? new WarmupScheduler(opt, parts.warmup) : null;
    for (const e of emaSpecs) emas.push(new PowerEma(opt.weightTensors, { ...e, device: o.emaDevice }));
    let step = 0;
    if (o.resume) {
      const names = emas.map((_, k) => `ema${k + 1}`);
      const { meta, extras } = opt.load(o.resume, model, names, emas[0]?.ema[0]?.device);
      try {
        step = meta.step;
        rng.setState(meta.rng as { seed: number; offset: number });
        parts.data.setState(meta.loader as never);
        if (sched) sched.loadStateDict(meta.scheduler as ReturnType<WarmupScheduler['stateDict']>);
        emas.forEach((e, k) => e.loadStateDict({ gamma: e.gamma, every: e.every, lastStep: (meta.emaLastStep as number) ?? 0, ema: extras[`ema${k + 1}`]! }));
      } finally {
        for (const ts of Object.values(extras)) for (const t of ts) t.dispose();
      }
      log(`resumed from ${o.resume} at step ${step}`);
    }
    opt.releaseAll(); // ZeRO-3: from here on a unit holds data only around its use
    const metrics = startRun(o.out, { ...o, resumeStep: step, lead });
    if (lead) parts.started?.();
    const report = opt.memoryReport();
    if (report) {
      o.dist?.onMemoryReport?.(report);
      logAll(formatMemoryReport(report));
    }
    log(parts.describe({ ranks: N, zero: opt.stage, perRank: b }));
    const save = function* (): Co<void> {
      const meta: CheckpointMeta = {
        format: 'lavender-train-v1', step, ...modelMeta(recipe.spec), rng: rng.getState(), loader: parts.data.getState(),
        ...(sched ? { scheduler: sched.stateDict() } : {}), ...(emas.length ? { emaLastStep: emas[0]!.lastStep } : {}),
        ...settings, seed: o.seed,
      };
      const extras = Object.fromEntries(emas.map((e, k) => [`ema${k + 1}`, e.ema]));
      yield* wait(opt.save(checkpoint, model, meta, extras));
      yield* writeEmaFiles(step);
    };
    // the EMAs beside the weights, as loadable state dicts (keys prefixed model., like the release's ema1.pt),
    // with the model, step and the recipe's extras in their metadata so `lavender sample` takes them as they are
    const writeEmaFiles = function* (at: number): Co<void> {
      const names = [...model.namedParameters()].map(([n]) => n);
      for (const [k, e] of emas.entries()) {
        const whole = yield* wait(opt.wholeWeights(e.ema));
        try {
          if (lead) {
            saveSafetensors(join(o.out, `ema${k + 1}.safetensors`), Object.fromEntries(whole.tensors.map((t, i) => [`model.${names[i]}`, t])),
              { ...weightsMetadata(recipe.spec, { step: at, gamma: e.gamma, ...parts.emaMeta }), step: String(at), gamma: String(e.gamma) });
          }
        } finally {
          whole.dispose();
        }
      }
    };
    const progress = o.progress === false || !lead ? null : new Progress(o.steps, step, undefined, parts.after);
    const losses: number[] = [], gradNorms: number[] = [], times: number[] = [];
    const staged = o.checkpointActivations || opt.stage === 3;
    while (step < o.steps) {
      const t0 = performance.now();
      const idx = parts.data.nextIndices();
      const base = rng.offset;
      const local: { losses: number[]; perSample: number[]; t: number[] } = { losses: [], perSample: [], t: [] };
      opt.zeroGrad();
      for (let k = 0; k < K; k++) {
        rng.microBatch(k, K, base);
        const start = k * o.batch + R * b;
        const rows = Array.prototype.slice.call(idx, start, start + b) as number[];
        if (k === K - 1) opt.armFinalBackward();
        // the loss of this rank's rows, scaled so the K micro-batches sum to the step's mean
        const head = (v: Tensor, x: Tensor, z1: Tensor, t: Tensor): Tensor => {
          // the loss in float32 whatever dtype the forward ended in
          const f = flowObjective(v.dtype === 'float32' ? v : cast(v, 'float32'), x, z1, t);
          local.losses.push(f.loss.item());
          local.perSample.push(...f.perSample);
          local.t.push(...f.t);
          return K > 1 ? mul(f.loss, 1 / K) : f.loss;
        };
        if (!staged) {
          scope(() => {
            const { x, cond } = parts.rows(rows);
            const { t, z1, xt } = flowInputs(x, { generator: rng, timeSampling: o.timeSampling });
            head(autocast(precision, () => model.forward(xt, t, cond)), x, z1, t).backward();
          });
        } else {
          const inp = scope(() => {
            const { x, cond } = parts.rows(rows);
            return { x, cond, ...flowInputs(x, { generator: rng, timeSampling: o.timeSampling }) };
          });
          try {
            const plan = autocastPlan(model.plan(inp.xt, inp.t, inp.cond), precision);
            yield* blockwiseForwardBackward(plan, (v) => head(v, inp.x, inp.z1, inp.t), { checkpoint: !!o.checkpointActivations, units: opt });
          } finally {
            for (const v of Object.values(inp)) (v as { dispose?: () => void }).dispose?.();
          }
        }
      }
      if (parts.lrScaleAt) opt.setLrScale((sched?.scale ?? 1) * parts.lrScaleAt(step));
      const lrScale = opt.lrScale; // the multiplier this update uses (the warm-up moves on after it)
      const gradNorm = yield* wait(opt.step(parts.clip));
      sched?.step();
      step++;
      for (const e of emas) e.update(step);
      const g = yield* globalLosses(pg, local, K, b);
      const seconds = (performance.now() - t0) / 1000;
      times.push(seconds);
      losses.push(g.loss);
      if (gradNorm !== null) gradNorms.push(gradNorm);
      metrics.append({
        step, loss: g.loss, ...(gradNorm !== null ? { grad_norm: gradNorm } : {}), ...(sched || parts.lrScaleAt ? { lr_scale: lrScale } : {}),
        t_bins: binLosses(g.t, g.perSample).map((v) => (Number.isNaN(v) ? null : v)), seconds,
      });
      progress?.update(step, `loss ${g.loss.toFixed(4)}${gradNorm !== null ? ` |g| ${gradNorm.toFixed(2)}` : ''}`);
      if (o.onStep?.({ step, loss: g.loss, gradNorm }) === 'stop') {
        progress?.stopped();
        log(`stopped after step ${step} of ${o.steps} (onStep)`);
        break;
      }
      if (o.checkpointEvery && step % o.checkpointEvery === 0 && step < o.steps) yield* save();
    }
    if (o.save !== false) yield* save();
    const sorted = [...times].sort((a, c) => a - c);
    const secondsPerStep = sorted.length ? sorted[Math.floor(sorted.length / 2)]! : 0;
    if (parts.finished) {
      yield* wait(opt.gatherAll());
      if (lead) parts.finished({ secondsPerStep, steps: step, log });
    }
    const be = model.parameters()[0]!.backend;
    const rate = parts.tokensPerSample ? throughput({ parameters: model.numParameters(), tokensPerStep: K * o.batch * parts.tokensPerSample, secondsPerStep, devices: N, backend: be }) : null;
    const speed = rate ? `, ${formatThroughput(rate, be.deviceName)}` : '';
    log(`done: ${step} steps, last loss ${losses.at(-1)?.toFixed(4) ?? 'n/a'}, median ${secondsPerStep.toFixed(2)} s/step${speed}; ${o.save !== false ? `checkpoint ${checkpoint}${parts.doneNote ?? ''}` : 'not saved'}`);
    return { losses, checkpoint, secondsPerStep, gradNorms, ...(rate ? { throughput: rate } : {}) };
  } finally {
    opt.dispose();
    for (const e of emas) e.dispose();
    // the loop built the model and hands back none of it: its weights and gradients go with the run
    // (a sweep runs many in one process)
    for (const p of model.parameters()) p.dispose();
  }
}

/**
 * The step's loss over all K*B samples: every rank's per-micro-batch means (equal sizes) gathered in rank
 * order, summed in (micro-batch, rank) order, so every rank logs the same number; per-sample values in
 * the global sample order for the t-bins.
 */
function* globalLosses(pg: ProcessGroup | undefined, local: { losses: number[]; perSample: number[]; t: number[] }, K: number, b: number): Co<{ loss: number; perSample: number[]; t: number[] }> {
  const N = pg?.worldSize ?? 1;
  const mine = [...local.losses, ...local.perSample, ...local.t];
  const all = pg ? yield* wait(allGatherNumbers(pg, mine)) : mine;
  const stride = mine.length;
  let loss = 0;
  const perSample: number[] = [], t: number[] = [];
  for (let k = 0; k < K; k++) {
    for (let r = 0; r < N; r++) {
      const at = r * stride;
      loss += all[at + k]!;
      perSample.push(...all.slice(at + K + k * b, at + K + (k + 1) * b));
      t.push(...all.slice(at + K + K * b + k * b, at + K + K * b + (k + 1) * b));
    }
  }
  return { loss: loss / (N * K), perSample, t };
}

/** The plan with each piece run under autocast (the backward runs with autocast off, autograd/backward.ts). */
export function autocastPlan(p: ForwardPlan, precision: 'float32' | 'bfloat16'): ForwardPlan {
  if (precision === 'float32') return p;
  return {
    prologue: () => autocast(precision, () => p.prologue()),
    blocks: p.blocks.map((b) => ({ module: b.module, run: (state: Tensor[]) => autocast(precision, () => b.run(state)) })),
    epilogue: (state) => autocast(precision, () => p.epilogue(state)),
  };
}

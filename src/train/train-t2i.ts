// The LavenderFlow recipe on MDS shards: MMDiT + rectified flow, AdamW (0.9, 0.95) with the release's
// per-parameter learning rates and weight decay 0.1 (none for biases, norms, positional table, register
// tokens), linear warm-up, gradient clipping at 1.0, two power EMAs (gamma 16 and 9) updated every s
// steps and saved beside the weights. Resumable exactly (weights, optimizer, EMAs, RNG, loader position).
// The run directory also gets cond.safetensors: the text conditions of the dataset's first samples, ready
// for `lavender sample --model mmdit --cond`.
import { join } from 'node:path';
import { MMDiT, type MMDiTConfig } from '../models/mmdit.js';
import { MdsLoader, openMds } from '../data/mds/index.js';
import { t2iBatch } from '../data/t2i.js';
import { binLosses, flowLoss, type TimeSampling } from '../flow/rectified-flow.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { PowerEma } from '../optim/ema.js';
import { lavenderflowGroups } from '../optim/mup.js';
import { WarmupScheduler } from '../optim/schedule.js';
import { saveSafetensors } from '../io/safetensors.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from '../optim/checkpoint.js';
import { weightsMetadata } from '../optim/checkpoint-meta.js';
import { zeros } from '../ops/creation.js';
import { Progress } from './progress.js';
import { checkRunDir, startRun } from './run-dir.js';
import { readResumable } from './resume.js';
import { mmditSpec, modelMeta } from './model-spec.js';

export interface TrainT2IOptions {
  data: string;
  preset: string | MMDiTConfig;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  out: string;
  backend?: string;
  resume?: string;
  /** Start a new run in an --out that holds a previous one (its files are removed first). */
  overwrite?: boolean;
  /** Resume with other batch, lr, latent size, tokens, warm-up or EMA interval than the checkpoint's. */
  allowChanges?: boolean;
  /** Latent side length in the shards (32 for 256 px SDXL-VAE latents). */
  latentSize?: number;
  /** Text tokens kept (64 in the release). */
  tokens?: number;
  warmup?: number;
  clip?: number;
  weightDecay?: number;
  emaEvery?: number;
  checkpointEvery?: number;
  timeSampling?: TimeSampling;
  rank?: number;
  worldSize?: number;
  progress?: boolean;
  log?: (line: string) => void;
}

/** Conditions for `lavender sample --model mmdit --cond`: the text embeddings of up to 4 first samples. */
export const COND_SAMPLES = 4;

export function trainT2I(o: TrainT2IOptions): { losses: number[]; checkpoint: string } {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const spec = mmditSpec(o.preset);
  const latentSize = o.latentSize ?? 32, tokens = o.tokens ?? 64, warmup = o.warmup ?? 100, every = o.emaEvery ?? 16;
  // what a resumed run must share with its checkpoint (names as in the checkpoint's metadata)
  const settings = { batch: o.batch, lr: o.lr, latent_size: latentSize, tokens, warmup, ema_every: every };
  checkRunDir(o.out, o);
  if (o.resume) readResumable(o.resume, { model: spec, steps: o.steps, settings, allowChanges: o.allowChanges, command: 'train t2i' });
  const model = new MMDiT(spec.config as unknown as MMDiTConfig, { generator: new Generator(o.seed), device: o.backend });
  const c = model.config;
  const opt = new AdamW(lavenderflowGroups(model.namedParameters(), { lr: o.lr, width: c.dim, weightDecay: o.weightDecay ?? 0.1 }), { lr: o.lr, betas: [0.9, 0.95] });
  const sched = new WarmupScheduler(opt, warmup);
  const params = model.parameters();
  const emas = [new PowerEma(params, { gamma: 16, every, at: 1 }), new PowerEma(params, { gamma: 9, every, at: 1 })];
  const dataset = openMds(o.data);
  const loader = new MdsLoader(dataset, { batchSize: o.batch, seed: o.seed, rank: o.rank, worldSize: o.worldSize });
  const rng = new Generator(o.seed + 1);
  const batchOpts = { latentSize, condDim: c.cond_seq_dim, tokens, device: o.backend };
  const checkpoint = join(o.out, 'checkpoint.safetensors');
  let step = 0;
  if (o.resume) {
    const { meta, extra } = loadCheckpoint(o.resume, model, opt);
    step = meta.step;
    rng.setState(meta.rng as { seed: number; offset: number });
    loader.setState(meta.loader as ReturnType<MdsLoader['getState']>);
    sched.loadStateDict(meta.scheduler as ReturnType<WarmupScheduler['stateDict']>);
    emas.forEach((e, k) => {
      const ema = params.map((_, i) => extra[`ema${k + 1}.${i}`]);
      if (ema.some((t) => !t)) throw new Error(`checkpoint ${o.resume}: EMA tensors 'ema${k + 1}.*' are missing`);
      e.loadStateDict({ gamma: e.gamma, every: e.every, lastStep: (meta.emaLastStep as number) ?? 0, ema: ema as Tensor[] });
    });
    for (const t of Object.values(extra)) t.dispose();
    log(`resumed from ${o.resume} at step ${step}`);
  }
  const metrics = startRun(o.out, { ...o, resumeStep: step });
  writeConditions(join(o.out, 'cond.safetensors'), dataset, batchOpts, o.data);
  log(`training MMDiT (${model.numParameters().toLocaleString('en')} parameters) on ${dataset.length} samples for ${o.steps} steps, batch ${o.batch}`);
  const save = () => {
    const meta: CheckpointMeta = {
      format: 'lavender-train-v1', step, ...modelMeta(spec), rng: rng.getState(), loader: loader.getState(), scheduler: sched.stateDict(),
      emaLastStep: emas[0]!.lastStep, ...settings, seed: o.seed,
    };
    const extra: Record<string, Tensor> = {};
    emas.forEach((e, k) => e.ema.forEach((t, i) => (extra[`ema${k + 1}.${i}`] = t)));
    saveCheckpoint(checkpoint, model, opt, meta, extra);
    // the EMAs beside the weights, as loadable state dicts (keys prefixed model., like the release's ema1.pt),
    // with the model, step and latent size in their metadata so `lavender sample` takes them as they are
    const names = [...model.namedParameters()].map(([n]) => n);
    emas.forEach((e, k) => saveSafetensors(join(o.out, `ema${k + 1}.safetensors`), Object.fromEntries(e.ema.map((t, i) => [`model.${names[i]}`, t])),
      { ...weightsMetadata(spec, { step, gamma: e.gamma, latent_size: latentSize, tokens }), step: String(step), gamma: String(e.gamma) }));
  };
  const progress = o.progress === false ? null : new Progress(o.steps, step);
  const losses: number[] = [];
  while (step < o.steps) {
    const t0 = performance.now();
    const r = scope(() => {
      const { x, cSeq } = t2iBatch(loader.next(), batchOpts, o.data);
      const f = flowLoss((xt, t, cond: Tensor) => model.forward(xt, t, cond), x, cSeq, { generator: rng, timeSampling: o.timeSampling });
      opt.zeroGrad();
      f.loss.backward();
      const gradNorm = clipGradNorm(params, o.clip ?? 1.0);
      opt.step();
      return { loss: f.loss.item(), gradNorm, bins: binLosses(f.t, f.perSample) };
    });
    sched.step();
    step++;
    for (const e of emas) e.update(step);
    losses.push(r.loss);
    metrics.append({ step, loss: r.loss, grad_norm: r.gradNorm, lr_scale: opt.lrScale, t_bins: r.bins.map((b) => (Number.isNaN(b) ? null : b)), seconds: (performance.now() - t0) / 1000 });
    progress?.update(step, `loss ${r.loss.toFixed(4)} |g| ${r.gradNorm.toFixed(2)}`);
    if (o.checkpointEvery && step % o.checkpointEvery === 0 && step < o.steps) save();
  }
  save();
  log(`done: ${step} steps, last loss ${losses.at(-1)?.toFixed(4) ?? 'n/a'}; checkpoint ${checkpoint}, EMAs ema1/ema2.safetensors, conditions cond.safetensors`);
  return { losses, checkpoint };
}

/** c_seq of the dataset's first samples and an all-zero c_seq_null, as `sample --model mmdit --cond` reads them. */
function writeConditions(path: string, dataset: { length: number; get(i: number): Record<string, unknown> }, batchOpts: Parameters<typeof t2iBatch>[1], source: string): void {
  const n = Math.min(COND_SAMPLES, dataset.length);
  scope(() => {
    const { cSeq } = t2iBatch(Array.from({ length: n }, (_, i) => dataset.get(i)), batchOpts, source);
    const nullCond = zeros([1, ...cSeq.shape.slice(1)], { device: batchOpts.device });
    saveSafetensors(path, { c_seq: cSeq, c_seq_null: nullCond }, { note: `text conditions of samples 0..${n - 1} of ${source}; c_seq_null: all zeros` });
  });
}

// The DiT sanity training loop: data -> DiT -> rectified-flow loss -> backward -> Adam -> metrics,
// checkpoint, sample grid. Every source of randomness (init, shuffle, time/noise, label dropout) is a
// seeded Philox stream whose state goes into the checkpoint, so a resumed run continues exactly.
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiT, DIT_PRESETS, type DiTConfig } from '../models/dit.js';
import { DataLoader, type ImageDataset } from '../data/loader.js';
import { binLosses, flowLoss, type TimeSampling } from '../flow/rectified-flow.js';
import { Adam } from '../optim/adamw.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import { loadSafetensors } from '../io/safetensors.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from './checkpoint.js';
import { Progress } from './progress.js';
import { sampleGrid } from './sample-dit.js';

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
  timeSampling?: TimeSampling;
  /** Save a checkpoint every N steps (and always at the end). */
  checkpointEvery?: number;
  /** Images per class in the final sample grid; 0 skips sampling. */
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

export function trainDiT(o: TrainDiTOptions): TrainResult {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const config = typeof o.model === 'string' ? DIT_PRESETS[o.model] : o.model;
  if (!config) throw new Error(`train: unknown model preset '${String(o.model)}' (available: ${Object.keys(DIT_PRESETS).join(', ')})`);
  const d = o.dataset;
  if (d.channels !== config.in_channels || d.height !== config.input_size || d.width !== config.input_size) {
    throw new Error(`train: images are ${d.channels}x${d.height}x${d.width} but the model expects ${config.in_channels}x${config.input_size}x${config.input_size}`);
  }
  mkdirSync(o.out, { recursive: true });
  const model = new DiT(config, { generator: new Generator(o.seed), device: o.backend });
  const opt = new Adam(model.parameters(), { lr: o.lr });
  const loader = new DataLoader(d, { batchSize: o.batch, seed: o.seed, device: o.backend });
  const rng = new Generator(o.seed + 1); // time, noise and label dropout
  model.generator = rng;
  model.train();
  const checkpoint = join(o.out, 'checkpoint.safetensors');
  const metricsPath = join(o.out, 'metrics.jsonl');
  let step = 0;
  if (o.resume) {
    const { meta } = loadCheckpoint(o.resume, model, opt);
    step = meta.step;
    rng.setState(meta.rng as { seed: number; offset: number });
    loader.setState(meta.loader as ReturnType<DataLoader['getState']>);
    log(`resumed from ${o.resume} at step ${step}`);
  } else if (existsSync(metricsPath)) {
    writeFileSync(metricsPath, '');
  }
  log(`training DiT (${model.numParameters().toLocaleString('en')} parameters) for ${o.steps} steps, batch ${o.batch}, lr ${o.lr}, on ${o.backend ?? 'cpu'}`);
  const save = () => {
    const meta: CheckpointMeta = { format: 'lavender-train-v1', step, config: model.config, rng: rng.getState(), loader: loader.getState(), lr: o.lr, batch: o.batch, seed: o.seed };
    saveCheckpoint(checkpoint, model, opt, meta);
  };
  const progress = o.progress === false ? null : new Progress(o.steps, step);
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
    appendFileSync(metricsPath, `${JSON.stringify({ step, loss, t_bins: bins.map((b) => (Number.isNaN(b) ? null : b)), seconds })}\n`);
    progress?.update(step, `loss ${loss.toFixed(4)}`);
    if (o.checkpointEvery && step % o.checkpointEvery === 0 && step < o.steps) save();
  }
  save();
  const sorted = [...times].sort((a, b) => a - b);
  const secondsPerStep = sorted.length ? sorted[Math.floor(sorted.length / 2)]! : 0;
  if ((o.sampleRows ?? 4) > 0) {
    const png = join(o.out, 'samples.png');
    sampleGrid(model, { rows: o.sampleRows ?? 4, steps: o.sampleSteps ?? 50, cfg: o.cfg ?? 2, seed: o.seed, png, gif: join(o.out, 'samples.gif') });
    log(`wrote ${png} and samples.gif`);
  }
  log(`done: ${step} steps, last loss ${losses.at(-1)?.toFixed(4) ?? 'n/a'}, median ${secondsPerStep.toFixed(2)} s/step; checkpoint ${checkpoint}`);
  return { losses, checkpoint, secondsPerStep };
}

/** Rebuild a model from a training checkpoint (for sampling). */
export function modelFromCheckpoint(path: string, backend?: string): DiT {
  const { tensors, metadata } = loadSafetensors(path, { device: backend });
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(metadata.lavender ?? 'null');
  } catch {
    throw new Error(`checkpoint ${path}: metadata field 'lavender' is not valid JSON`);
  }
  if (!meta?.config) throw new Error(`checkpoint ${path}: metadata field 'lavender' has no model config`);
  const model = new DiT(meta.config as DiTConfig, { device: backend });
  model.loadStateDict(Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith('model.'))));
  for (const t of Object.values(tensors)) t.dispose();
  return model;
}

// `lavender train mnist|cifar`, `lavender sample`, `lavender forward`, `lavender bench train-step`.
import { join } from 'node:path';
import { loadCifar10 } from '../data/cifar.js';
import { loadMnist } from '../data/mnist.js';
import type { ImageDataset } from '../data/loader.js';
import { readJson, runForward } from '../train/forward.js';
import { trainT2I, trainT2IDistributed } from '../train/train-t2i.js';
import { sampleMMDiT } from '../train/sample-mmdit.js';
import { writeSyntheticT2I } from '../data/t2i.js';
import { writeSyntheticImagenetInt8 } from '../data/imagenet-int8.js';
import type { MMDiTConfig } from '../models/mmdit.js';
import { sampleGrid } from '../train/sample-dit.js';
import { modelFromCheckpoint, trainDiT, trainDiTDistributed, type TrainDiTOptions } from '../train/train-dit.js';
import { initProcessGroup, readDistEnv, type DistEnv } from '../distributed/process-group.js';
import type { DistTrainOptions } from '../train/loop.js';
import type { ZeroStage } from '../distributed/zero.js';
import { launch } from './launch.js';
import { freeLoopbackPort } from '../distributed/free-port.js';
import { resolve } from 'node:path';
import { benchTrainStep } from '../train/bench-step.js';
import { intFlag, numberFlag, stringFlag, type Parsed } from './args.js';
import { prepareOutputDir, prepareOutputFile } from '../io/output-path.js';
import { modelSpecOf, readCheckpointMeta } from '../optim/checkpoint-meta.js';
import type { CheckpointMeta } from '../optim/checkpoint.js';
import { checkRunDir } from '../train/run-dir.js';
import { readResumable } from '../train/resume.js';
import { ditSpec, mmditSpec } from '../train/model-spec.js';

// mnist: a step takes ~1.5 CPU-seconds (~0.8 s of wall time on both vCPUs of the VM in bench/RESULTS.md), so
// 1000 steps with the lr decayed to 0 and the grid fit in 15 minutes there; the grid is drawn at CFG 4, where
// this short run's digits are recognisable (at CFG 2 most are not). See bench/RESULTS.md.
export const TRAIN_DEFAULTS = {
  mnist: { steps: 1000, batch: 32, lr: 2e-3, cfg: 4 },
  cifar: { steps: 2000, batch: 64, lr: 5e-4, cfg: 2 },
} as const;

/** The run directory and resume flags of every train command, checked before any work (see run-dir.ts). */
function runFlags(p: Parsed, which: string): { out: string; resume?: string; overwrite: boolean; allowChanges: boolean; resumed?: CheckpointMeta } {
  const out = stringFlag(p, 'out', join('runs', which));
  const resume = p.flags.has('resume') ? stringFlag(p, 'resume', '') : undefined;
  const overwrite = p.flags.has('overwrite'), allowChanges = p.flags.has('allow-changes');
  checkRunDir(out, { resume, overwrite });
  return { out, resume, overwrite, allowChanges, resumed: resume ? readCheckpointMeta(resume) : undefined };
}

/** A flag's value; on resume a flag left out takes the checkpoint's value (its metadata field `key`). */
function resumedNumber(p: Parsed, flag: string, key: string, resumed: CheckpointMeta | undefined, read: () => number): number {
  const v = resumed?.[key];
  return !p.flags.has(flag) && typeof v === 'number' ? v : read();
}

/** How a train command runs: data parallelism, accumulation, checkpointing (the flags every train command has). */
interface ScaleOut {
  env: DistEnv;
  /** --nproc: ranks to start on this machine (re-launch), or the check under a launcher. */
  nproc?: number;
  zero?: ZeroStage;
  distBackend: 'cpu' | 'nccl';
  gradAccum: number;
  checkpointActivations: boolean;
}

function scaleOut(p: Parsed, command: string, resumed: CheckpointMeta | undefined): ScaleOut {
  const env = readDistEnv();
  const nproc = p.flags.has('nproc') ? intFlag(p, 'nproc', 1) : undefined;
  let zero: ZeroStage | undefined;
  if (p.flags.has('zero')) {
    const z = intFlag(p, 'zero', 0, true);
    if (z > 3) throw new Error(`--zero expects 0, 1, 2 or 3, got ${z}`);
    zero = z as ZeroStage;
  }
  const distBackend = stringFlag(p, 'dist-backend', 'cpu');
  if (distBackend !== 'cpu' && distBackend !== 'nccl') throw new Error(`--dist-backend expects cpu or nccl, got '${distBackend}'`);
  if (nproc !== undefined && env.worldSize > 1 && nproc !== env.worldSize) {
    throw new Error(`${command}: --nproc ${nproc} but this process was launched as one of ${env.worldSize} ranks (WORLD_SIZE); drop --nproc under a launcher`);
  }
  return { env, nproc, zero, distBackend, gradAccum: resumedNumber(p, 'grad-accum', 'grad_accum', resumed, () => intFlag(p, 'grad-accum', 1)), checkpointActivations: p.flags.has('checkpoint-activations') };
}

/** Whether this process re-launches itself as N ranks (--nproc N outside a launcher). */
const relaunches = (s: ScaleOut) => s.nproc !== undefined && s.nproc > 1 && s.env.worldSize === 1;
/** Whether this process is one rank of a data-parallel run (under a launcher, or asked for ZeRO / --nproc 1). */
const distributed = (s: ScaleOut) => s.env.worldSize > 1 || s.zero !== undefined || s.nproc === 1;

/**
 * Join the process group (rendezvous: every rank must pass the same `config`, differences are named) and
 * run `fn` as this rank; ranks other than 0 prefix their log lines.
 */
async function asRank(s: ScaleOut, config: Record<string, unknown>, fn: (dist: DistTrainOptions, log: ((l: string) => void) | undefined) => Promise<unknown>): Promise<number> {
  const zero = s.zero ?? 0;
  const pg = await initProcessGroup({ backend: s.distBackend, env: s.env, config: { ...config, zero, grad_accum: s.gradAccum, checkpoint_activations: s.checkpointActivations } });
  try {
    await fn({ pg, zero }, s.env.rank === 0 ? undefined : (l) => process.stderr.write(`[rank ${s.env.rank}] ${l}\n`));
  } finally {
    pg.destroy();
  }
  return 0;
}

export function train(p: Parsed): number | Promise<number> {
  const which = p.positionals[1];
  if (which === 't2i') return trainT2iCommand(p);
  if (which !== 'mnist' && which !== 'cifar') throw new Error(`train: expected 'mnist', 'cifar' or 't2i', got '${which ?? ''}'`);
  const defaults = TRAIN_DEFAULTS[which];
  const run = runFlags(p, which);
  const steps = intFlag(p, 'steps', defaults.steps);
  const batch = resumedNumber(p, 'batch', 'batch', run.resumed, () => intFlag(p, 'batch', defaults.batch));
  const lr = resumedNumber(p, 'lr', 'lr', run.resumed, () => numberFlag(p, 'lr', defaults.lr));
  const scale = scaleOut(p, `train ${which}`, run.resumed);
  const precision = precisionFlag(p);
  // mnist's short default run decays the lr to 0 (sharper samples from the final weights)
  const lrSchedule = lrScheduleFlag(p, which === 'mnist' ? 'linear' : 'constant');
  // the whole resume check before MNIST/CIFAR are read and before --nproc starts ranks
  if (run.resume) readResumable(run.resume, { model: ditSpec(which), steps, settings: { batch, lr, grad_accum: scale.gradAccum }, allowChanges: run.allowChanges, command: `train ${which}` });
  // data parallelism: --nproc N re-launches this command through `lavender launch`; under a launcher
  // (WORLD_SIZE, or srun's SLURM_PROCID) every rank runs the distributed loop
  if (relaunches(scale)) return relaunch(p, scale.nproc!);
  let dataset: ImageDataset;
  if (which === 'mnist') dataset = loadMnist('train', p.flags.has('data') ? stringFlag(p, 'data', '') : undefined);
  else {
    if (!p.flags.has('data')) throw new Error('train cifar: pass --data DIR, the folder cifar-10-batches-bin of the CIFAR-10 binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)');
    dataset = loadCifar10(stringFlag(p, 'data', ''), 'train');
  }
  const opts: TrainDiTOptions = {
    dataset,
    model: which,
    steps,
    batch,
    gradAccum: scale.gradAccum,
    lr,
    seed: intFlag(p, 'seed', 0, true),
    backend: stringFlag(p, 'backend', 'cpu'),
    out: run.out,
    resume: run.resume,
    overwrite: run.overwrite,
    allowChanges: run.allowChanges,
    // --no-save: a benchmark run writes no checkpoint (a 4.78B one is 57 GB), periodic or final
    checkpointEvery: p.flags.has('no-save') ? 0 : intFlag(p, 'checkpoint-every', 100),
    save: !p.flags.has('no-save'),
    checkpointActivations: scale.checkpointActivations,
    sampleRows: p.flags.has('sample-rows') ? intFlag(p, 'sample-rows', 4, true) : undefined,
    sampleSteps: intFlag(p, 'sample-steps', 50),
    cfg: numberFlag(p, 'cfg', defaults.cfg),
    precision,
    lrSchedule,
  };
  if (!distributed(scale)) {
    trainDiT(opts);
    return 0;
  }
  // every rank must agree on these (checked at rendezvous; the differing fields are named)
  const config = {
    command: `train ${which}`, steps: opts.steps, batch: opts.batch, lr: opts.lr, seed: opts.seed, device: opts.backend ?? 'cpu',
    out: resolve(opts.out), resume: opts.resume ? resolve(opts.resume) : null, checkpoint_every: opts.checkpointEvery ?? null, dataset_size: opts.dataset.n,
    precision: opts.precision ?? 'float32', lr_schedule: opts.lrSchedule ?? 'constant',
  };
  return asRank(scale, config, (dist, log) => trainDiTDistributed({ ...opts, log, dist }));
}

/** `train ... --nproc N`: the same command, minus --nproc, once per rank through the launcher. */
async function relaunch(p: Parsed, nproc: number): Promise<number> {
  const args = [...p.positionals];
  for (const [k, v] of p.flags) {
    if (k === 'nproc' || k === 'master-port' || k === 'master-addr') continue;
    args.push(v === true ? `--${k}` : `--${k}=${v}`);
  }
  const script = process.argv[1];
  if (!script) throw new Error('train --nproc: cannot tell which script to re-launch (process.argv[1] is empty)');
  const masterAddr = p.flags.has('master-addr') ? stringFlag(p, 'master-addr', '') : process.env.MASTER_ADDR ?? '127.0.0.1';
  const masterPort = p.flags.has('master-port') ? intFlag(p, 'master-port', 29500) : process.env.MASTER_PORT ? Number(process.env.MASTER_PORT) : await freeLoopbackPort();
  return launch({ nproc, masterAddr, masterPort, command: [process.execPath, ...process.execArgv, script, ...args] });
}

/** --precision fp32|bf16: bf16 runs the forward under autocast (float32 master weights and moments). */
function lrScheduleFlag(p: Parsed, fallback: 'constant' | 'linear'): 'constant' | 'linear' {
  const v = stringFlag(p, 'lr-schedule', fallback);
  if (v !== 'constant' && v !== 'linear') throw new Error(`train: --lr-schedule expects constant or linear, got '${v}'`);
  return v;
}

/** --precision fp32|bf16 (train commands, info --model) as the loop's precision. */
export function precisionFlag(p: Parsed, command = 'train'): 'float32' | 'bfloat16' {
  const v = stringFlag(p, 'precision', 'fp32');
  if (v !== 'fp32' && v !== 'bf16') throw new Error(`${command}: --precision expects fp32 or bf16, got '${v}'`);
  return v === 'bf16' ? 'bfloat16' : 'float32';
}

function trainT2iCommand(p: Parsed): number | Promise<number> {
  if (p.flags.has('rank') || p.flags.has('world-size')) {
    throw new Error('train t2i: --rank/--world-size are gone: they split the data without averaging the gradients (W independent models). Data parallelism goes through the process group: --nproc N on this machine, or `lavender launch` / torchrun / srun (RANK, WORLD_SIZE, ... or SLURM_PROCID, ...), with --zero 0|1|2|3');
  }
  const data = stringFlag(p, 'data', '');
  if (!data) throw new Error('train t2i: --data DIR (an MDS dataset with LavenderFlow columns) is required; `lavender make-shards --synthetic-t2i --out DIR` writes a small one');
  const run = runFlags(p, 't2i');
  const r = run.resumed;
  // on resume, the preset and the settings left out come from the checkpoint
  const fromCheckpoint = r && modelSpecOf(r)?.kind === 'mmdit' && typeof r.preset === 'string' ? r.preset : undefined;
  const preset = !p.flags.has('preset') && fromCheckpoint ? fromCheckpoint : stringFlag(p, 'preset', 'mmdit-small');
  const o = {
    steps: intFlag(p, 'steps', 1000),
    batch: resumedNumber(p, 'batch', 'batch', r, () => intFlag(p, 'batch', 16)),
    lr: resumedNumber(p, 'lr', 'lr', r, () => numberFlag(p, 'lr', 1e-2)),
    latentSize: resumedNumber(p, 'latent-size', 'latent_size', r, () => intFlag(p, 'latent-size', 32)),
    tokens: resumedNumber(p, 'tokens', 'tokens', r, () => intFlag(p, 'tokens', 64)),
    warmup: resumedNumber(p, 'warmup', 'warmup', r, () => intFlag(p, 'warmup', 100, true)),
    emaEvery: resumedNumber(p, 'ema-every', 'ema_every', r, () => intFlag(p, 'ema-every', 16)),
  };
  const scale = scaleOut(p, 'train t2i', r);
  if (run.resume) {
    readResumable(run.resume, {
      model: mmditSpec(preset), steps: o.steps, allowChanges: run.allowChanges, command: 'train t2i',
      settings: { batch: o.batch, lr: o.lr, latent_size: o.latentSize, tokens: o.tokens, warmup: o.warmup, ema_every: o.emaEvery, grad_accum: scale.gradAccum },
    });
  }
  if (relaunches(scale)) return relaunch(p, scale.nproc!);
  const opts = {
    data,
    preset,
    ...o,
    gradAccum: scale.gradAccum,
    checkpointActivations: scale.checkpointActivations,
    seed: intFlag(p, 'seed', 0, true),
    out: run.out,
    backend: stringFlag(p, 'backend', 'cpu'),
    resume: run.resume,
    overwrite: run.overwrite,
    allowChanges: run.allowChanges,
    precision: precisionFlag(p),
    checkpointEvery: p.flags.has('no-save') ? 0 : intFlag(p, 'checkpoint-every', 500),
    save: !p.flags.has('no-save'),
    // where the EMAs live is not a setting of the run: a resume may move them (not checked against the checkpoint)
    emaDevice: p.flags.has('ema-device') ? stringFlag(p, 'ema-device', '') : undefined,
  };
  if (!distributed(scale)) {
    trainT2I(opts);
    return 0;
  }
  const config = {
    command: 'train t2i', preset, steps: opts.steps, batch: opts.batch, lr: opts.lr, seed: opts.seed, device: opts.backend,
    latent_size: opts.latentSize, tokens: opts.tokens, warmup: opts.warmup, ema_every: opts.emaEvery,
    data: resolve(data), out: resolve(opts.out), resume: opts.resume ? resolve(opts.resume) : null, checkpoint_every: opts.checkpointEvery,
  };
  return asRank(scale, config, (dist, log) => trainT2IDistributed({ ...opts, log, dist }));
}

export function makeShards(p: Parsed): number {
  const imagenet = p.flags.has('synthetic-imagenet');
  if (imagenet === p.flags.has('synthetic-t2i')) throw new Error('make-shards: pass one of --synthetic-t2i (LavenderFlow layout) and --synthetic-imagenet (imagenet.int8 layout); write your own shards with MdsWriter from the library');
  const out = stringFlag(p, 'out', '');
  if (!out) throw new Error('make-shards: --out DIR is required');
  const only = imagenet ? ['cond-dim', 'tokens'] : ['classes'];
  const misplaced = only.filter((f) => p.flags.has(f));
  if (misplaced.length) throw new Error(`make-shards: ${misplaced.map((f) => `--${f}`).join(', ')} does not apply to ${imagenet ? '--synthetic-imagenet' : '--synthetic-t2i'}`);
  prepareOutputDir(out);
  if (imagenet) {
    const classes = intFlag(p, 'classes', 16);
    writeSyntheticImagenetInt8(out, { samples: intFlag(p, 'samples', 256), latentSize: intFlag(p, 'latent-size', 8), classes, seed: intFlag(p, 'seed', 0, true) });
    process.stderr.write(`wrote synthetic imagenet.int8-style shards (${classes} classes) to ${out}; train t2i needs a model with cond_seq_dim >= ${2 * classes}\n`);
    return 0;
  }
  writeSyntheticT2I(out, { samples: intFlag(p, 'samples', 256), latentSize: intFlag(p, 'latent-size', 8), condDim: intFlag(p, 'cond-dim', 256), tokens: intFlag(p, 'tokens', 8), seed: intFlag(p, 'seed', 0, true) });
  process.stderr.write(`wrote synthetic LavenderFlow-style shards to ${out}\n`);
  return 0;
}

const SAMPLE_ONLY: Record<string, readonly string[]> = { dit: ['rows', 'gif'], mmdit: ['cond', 'config', 'latent-size', 'shift'] };

export function sample(p: Parsed): number {
  const kind = stringFlag(p, 'model', 'dit');
  if (kind !== 'dit' && kind !== 'mmdit') throw new Error(`--model expects dit or mmdit, got '${kind}'`);
  const other = kind === 'dit' ? 'mmdit' : 'dit';
  const misplaced = SAMPLE_ONLY[other]!.filter((f) => p.flags.has(f));
  if (misplaced.length) throw new Error(`${misplaced.map((f) => `--${f}`).join(', ')} ${misplaced.length > 1 ? 'apply' : 'applies'} to --model ${other} only (this is --model ${kind})`);
  if (kind === 'mmdit') {
    const need = (k: string) => {
      const v = stringFlag(p, k, '');
      if (!v) throw new Error(`sample --model mmdit: --${k} is required`);
      return v;
    };
    const config = p.flags.has('config') ? (readJson(stringFlag(p, 'config', ''), 'config') as unknown as MMDiTConfig) : undefined;
    prepareOutputFile(need('out'));
    sampleMMDiT({ checkpoint: need('checkpoint'), config, cond: need('cond'), out: need('out'), latentSize: p.flags.has('latent-size') ? intFlag(p, 'latent-size', 32) : undefined, steps: intFlag(p, 'steps', 50), cfg: numberFlag(p, 'cfg', 5), shift: numberFlag(p, 'shift', 1), seed: intFlag(p, 'seed', 0, true), backend: stringFlag(p, 'backend', 'cpu') });
    process.stderr.write(`wrote latents to ${stringFlag(p, 'out', '')} (SDXL-VAE space, divided by 0.13025: multiply them by it for 'lavender decode-latents', or use 'lavender generate')\n`);
    return 0;
  }
  const ckpt = stringFlag(p, 'checkpoint', '');
  if (!ckpt) throw new Error('sample: --checkpoint FILE is required');
  const png = stringFlag(p, 'out', 'grid.png');
  prepareOutputFile(png);
  if (p.flags.has('gif')) prepareOutputFile(stringFlag(p, 'gif', ''), '--gif');
  const model = modelFromCheckpoint(ckpt, stringFlag(p, 'backend', 'cpu'));
  sampleGrid(model, {
    rows: intFlag(p, 'rows', 4), steps: intFlag(p, 'steps', 50), cfg: numberFlag(p, 'cfg', 2), seed: intFlag(p, 'seed', 0, true),
    png, gif: p.flags.has('gif') ? stringFlag(p, 'gif', '') : undefined,
  });
  process.stderr.write(`wrote ${png}\n`);
  return 0;
}

export function forward(p: Parsed): number {
  const need = (k: string) => {
    const v = stringFlag(p, k, '');
    if (!v) throw new Error(`forward: --${k} is required`);
    return v;
  };
  prepareOutputFile(need('out'));
  const out = runForward({ model: need('model'), config: need('config'), weights: need('weights'), inputs: need('inputs'), out: need('out'), grad: p.flags.has('grad'), backend: stringFlag(p, 'backend', 'cpu') });
  process.stderr.write(`wrote ${Object.keys(out).length} tensors to ${stringFlag(p, 'out', '')}\n`);
  return 0;
}

export function benchStep(p: Parsed): number {
  const model = stringFlag(p, 'model', 'dit-mnist');
  const r = benchTrainStep({ model, batch: intFlag(p, 'batch', 64), backend: stringFlag(p, 'backend', 'cpu'), steps: intFlag(p, 'steps', 5), warmup: intFlag(p, 'warmup', 2, true) });
  if (p.flags.has('json')) console.log(JSON.stringify(r));
  else console.log(`train step ${model} batch ${r.batch} on ${r.backend}: ${r.seconds_per_step.toFixed(3)} s/step (median of ${r.steps})`);
  return 0;
}

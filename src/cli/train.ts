// `lavender train mnist|cifar`, `lavender sample`, `lavender forward`, `lavender bench train-step`.
import { join } from 'node:path';
import { loadCifar10 } from '../data/cifar.js';
import { loadMnist } from '../data/mnist.js';
import type { ImageDataset } from '../data/loader.js';
import { runForward } from '../train/forward.js';
import { sampleGrid } from '../train/sample-dit.js';
import { modelFromCheckpoint, trainDiT } from '../train/train-dit.js';
import { benchTrainStep } from '../train/bench-step.js';
import { intFlag, numberFlag, stringFlag, type Parsed } from './args.js';

export const TRAIN_DEFAULTS = { mnist: { steps: 1000, batch: 64, lr: 1e-3 }, cifar: { steps: 2000, batch: 64, lr: 5e-4 } } as const;

export function train(p: Parsed): number {
  const which = p.positionals[1];
  if (which !== 'mnist' && which !== 'cifar') throw new Error(`train: expected 'mnist' or 'cifar', got '${which ?? ''}'`);
  const defaults = TRAIN_DEFAULTS[which];
  let dataset: ImageDataset;
  if (which === 'mnist') dataset = loadMnist('train', p.flags.has('data') ? stringFlag(p, 'data', '') : undefined);
  else {
    if (!p.flags.has('data')) throw new Error('train cifar: pass --data DIR, the folder cifar-10-batches-bin of the CIFAR-10 binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)');
    dataset = loadCifar10(stringFlag(p, 'data', ''), 'train');
  }
  trainDiT({
    dataset,
    model: which,
    steps: intFlag(p, 'steps', defaults.steps),
    batch: intFlag(p, 'batch', defaults.batch),
    lr: numberFlag(p, 'lr', defaults.lr),
    seed: intFlag(p, 'seed', 0, true),
    backend: stringFlag(p, 'backend', 'cpu'),
    out: stringFlag(p, 'out', join('runs', which)),
    resume: p.flags.has('resume') ? stringFlag(p, 'resume', '') : undefined,
    checkpointEvery: intFlag(p, 'checkpoint-every', 100),
    sampleRows: intFlag(p, 'sample-rows', 4, true),
    sampleSteps: intFlag(p, 'sample-steps', 50),
    cfg: numberFlag(p, 'cfg', 2),
  });
  return 0;
}

export function sample(p: Parsed): number {
  const ckpt = stringFlag(p, 'checkpoint', '');
  if (!ckpt) throw new Error('sample: --checkpoint FILE is required');
  const model = modelFromCheckpoint(ckpt, stringFlag(p, 'backend', 'cpu'));
  const png = stringFlag(p, 'out', 'grid.png');
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

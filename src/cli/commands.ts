// The flags each lavender command accepts (parsed strictly by args.ts: anything else is an error).
import type { CommandSpec, FlagKind } from './args.js';

const v: FlagKind = 'value', s: FlagKind = 'switch', t: FlagKind = 'text';

// every train command: data parallelism (--nproc, --zero, the launcher's address), accumulation, checkpointing
const SCALE_OUT = {
  nproc: v, zero: v, 'master-port': v, 'master-addr': v, 'dist-backend': v, 'grad-accum': v, 'checkpoint-activations': s,
} as const;

const DIT_TRAIN = {
  steps: v, batch: v, lr: v, seed: v, backend: v, out: v, resume: v, overwrite: s, 'allow-changes': s, data: v, 'checkpoint-every': v, 'no-save': s,
  'sample-rows': v, 'sample-steps': v, cfg: v, precision: v, 'lr-schedule': v, ...SCALE_OUT,
} as const;

export const COMMANDS: readonly CommandSpec[] = [
  { name: 'info', flags: { json: s, model: v, ranks: v, zero: v, batch: v, tokens: v, 'latent-size': v, 'checkpoint-activations': s, 'grad-accum': v, precision: v, 'ema-device': v } },
  { name: 'train mnist', flags: DIT_TRAIN },
  { name: 'train cifar', flags: DIT_TRAIN },
  {
    name: 'train t2i',
    flags: {
      data: v, preset: v, steps: v, batch: v, lr: v, seed: v, out: v, backend: v, resume: v, overwrite: s, 'allow-changes': s, 'latent-size': v, tokens: v,
      warmup: v, 'ema-every': v, 'ema-device': v, 'checkpoint-every': v, 'no-save': s, precision: v, ...SCALE_OUT,
      rank: v, 'world-size': v, // removed: refused with a pointer to --nproc / lavender launch
    },
  },
  { name: 'consolidate', flags: { out: v }, positionals: 1, positionalsHelp: 'one CHECKPOINT' },
  {
    name: 'prepare-shards',
    flags: { images: v, captions: v, t5: v, vae: v, out: v, size: v, tokens: v, batch: v, latents: v, seed: v, backend: v },
  },
  { name: 'make-shards', flags: { 'synthetic-t2i': s, 'synthetic-imagenet': s, out: v, samples: v, 'latent-size': v, 'cond-dim': v, tokens: v, classes: v, seed: v } },
  {
    name: 'sample',
    flags: {
      model: v, checkpoint: v, out: v, backend: v, seed: v, cfg: v, steps: v,
      rows: v, gif: v, // dit
      cond: v, config: v, 'latent-size': v, shift: v, // mmdit
    },
  },
  { name: 'forward', flags: { model: v, config: v, weights: v, inputs: v, out: v, grad: s, backend: v } },
  { name: 'coord-check', flags: { widths: v, steps: v, lr: v, param: v, out: v, seed: v } },
  {
    name: 'mup-sweep',
    flags: {
      data: v, synthetic: s, widths: v, lrs: v, param: v, steps: v, seeds: v, nproc: v, out: v, batch: v, layers: v, 'head-dim': v,
      'base-width': v, 'latent-size': v, 'cond-dim': v, tokens: v, warmup: v, samples: v, classes: v,
    },
  },
  { name: 'encode-text', flags: { t5: v, prompt: t, 'max-length': v, 'pad-id': v, out: v, backend: v } },
  {
    name: 'generate',
    flags: {
      prompt: t, negative: t, checkpoint: v, t5: v, vae: v, size: v, steps: v, cfg: v, seed: v, batch: v, config: v,
      'max-length': v, out: v, gif: v, noise: v, raw: v, backend: v,
    },
  },
  { name: 'decode-latents', flags: { vae: v, latents: v, out: v, raw: v, backend: v } },
  { name: 'encode-images', flags: { vae: v, images: v, out: v, sample: s, seed: v, backend: v } },
  { name: 'bench matmul', flags: { size: v, backend: v, runs: v, json: s } },
  { name: 'bench train-step', flags: { model: v, batch: v, backend: v, steps: v, warmup: v, json: s } },
];

/** The spec whose words start argv (the longest match), or undefined. */
export function findCommand(argv: readonly string[]): CommandSpec | undefined {
  let found: CommandSpec | undefined;
  for (const c of COMMANDS) {
    const words = c.name.split(' ');
    if (words.every((w, i) => argv[i] === w) && (!found || words.length > found.name.split(' ').length)) found = c;
  }
  return found;
}

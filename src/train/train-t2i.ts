// The LavenderFlow recipe on MDS shards: MMDiT + rectified flow, AdamW (0.9, 0.95) with the release's
// per-parameter learning rates and weight decay 0.1 (none for biases, norms, positional table, register
// tokens), linear warm-up, gradient clipping at 1.0, two power EMAs (gamma 16 and 9) updated every s
// steps and saved beside the weights. Resumable exactly (weights, optimizer, EMAs, RNG, loader position).
// The run directory also gets cond.safetensors: the text conditions of the dataset's first samples, ready
// for `lavender sample --model mmdit --cond`.
// Shards in the imagenet.int8 layout (uint8 latents + class label) train class-conditionally: the label
// becomes two one-hot condition tokens, as in the release's ImageNet model. `parametrization` swaps the
// release's learning-rate rule for muP or SP (the lr sweep, mup-sweep.ts).
import { join } from 'node:path';
import { MMDiT, resolveMMDiTConfig, type MMDiTConfig } from '../models/mmdit.js';
import { MdsLoader, openMds } from '../data/mds/index.js';
import { detectT2ILayout, t2iBatch } from '../data/t2i.js';
import { checkT2IShards } from '../data/t2i-info.js';
import type { TimeSampling } from '../flow/rectified-flow.js';
import { saveSafetensors } from '../io/safetensors.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from '../ops/creation.js';
import { mmditSpec } from './model-spec.js';
import { parametrizationGroups, parametrizationModelOptions, type TrainParametrization } from './parametrization.js';
import { train, trainDistributed, type DistTrainOptions, type TrainLoopOptions, type TrainRecipe, type TrainResult } from './loop.js';

export interface TrainT2IOptions {
  data: string;
  preset: string | MMDiTConfig;
  steps: number;
  /** The global batch of one forward/backward (all ranks together). */
  batch: number;
  /** Micro-batches of `batch` per optimizer step (default 1). */
  gradAccum?: number;
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
  /** Where the two EMAs live (default the training device; 'cpu': host memory, see optim/ema.ts). May change on resume. */
  emaDevice?: string;
  checkpointEvery?: number;
  /** Recompute each block in the backward instead of keeping its activations. */
  checkpointActivations?: boolean;
  timeSampling?: TimeSampling;
  /** Learning-rate rule: 'release' (default), 'mup' (against mupBaseWidth) or 'sp'. See parametrization.ts. */
  parametrization?: TrainParametrization;
  /** The width muP's learning rate refers to (default the model's width). */
  mupBaseWidth?: number;
  /** false: write no checkpoint or EMA files at the end (throwaway runs such as a sweep's; default true). */
  save?: boolean;
  progress?: boolean;
  log?: (line: string) => void;
  /** Called on every rank after each step; 'stop' ends the run there (TrainLoopOptions.onStep). */
  onStep?: TrainLoopOptions['onStep'];
  /** 'bfloat16': the forward under autocast (ops/autocast.ts); float32 master weights and moments either way. */
  precision?: 'float32' | 'bfloat16';
}

/** Conditions for `lavender sample --model mmdit --cond`: the text embeddings of up to 4 first samples. */
export const COND_SAMPLES = 4;

/** The LavenderFlow recipe on MDS shards, for the loop. */
export function t2iRecipe(o: TrainT2IOptions): TrainRecipe<Tensor> {
  const spec = mmditSpec(o.preset);
  const latentSize = o.latentSize ?? 32, tokens = o.tokens ?? 64, warmup = o.warmup ?? 100, every = o.emaEvery ?? 16;
  const param = o.parametrization ?? 'release';
  // the lr rule is recorded, so a resume under another one is refused
  const rule = { parametrization: param, ...(param === 'mup' ? { mup_base_width: o.mupBaseWidth ?? (spec.config.dim as number) } : {}) };
  return {
    command: 'train t2i',
    resumeCommand: 'train t2i',
    spec,
    // what a resumed run must share with its checkpoint (names as in the checkpoint's metadata)
    settings: { batch: o.batch, lr: o.lr, latent_size: latentSize, tokens, warmup, ema_every: every, ...rule },
    // shards lavender wrote say their embeddings' width and latent side: another model width is refused by name
    check: () => checkT2IShards(o.data, { condDim: resolveMMDiTConfig(spec.config as Partial<MMDiTConfig>).cond_seq_dim, latentSize }, 'train t2i'),
    build: () => {
      const config = spec.config as unknown as MMDiTConfig;
      const model = new MMDiT(config, { generator: new Generator(o.seed), device: o.backend, ...parametrizationModelOptions(param, config, { baseWidth: o.mupBaseWidth }) });
      const c = model.config;
      const dataset = openMds(o.data);
      const K = o.gradAccum ?? 1;
      // the step's K*B samples in the single-process order; each rank takes its rows (loop.ts)
      const loader = new MdsLoader(dataset, { batchSize: K * o.batch, seed: o.seed });
      const batchOpts = { latentSize, condDim: c.cond_seq_dim, tokens, device: o.backend, layout: detectT2ILayout(Object.keys(dataset.columns), o.data) };
      return {
        model,
        optimizer: { kind: 'adamw', groups: parametrizationGroups(param, model, { lr: o.lr, weightDecay: o.weightDecay ?? 0.1, baseWidth: o.mupBaseWidth }), lr: o.lr, betas: [0.9, 0.95] },
        clip: o.clip ?? 1.0,
        warmup,
        emas: [{ gamma: 16, every, at: 1 }, { gamma: 9, every, at: 1 }],
        emaMeta: { latent_size: latentSize, tokens },
        data: loader,
        rows: (idx) => {
          const { x, cSeq } = t2iBatch(Array.from(idx, (i) => dataset.get(i)), batchOpts, o.data);
          return { x, cond: cSeq };
        },
        describe: ({ ranks, zero, perRank }) => {
          const accum = K > 1 ? ` x ${K} accumulated` : '';
          const where = zero === null ? `batch ${o.batch}${accum}` : `global batch ${o.batch}${accum} over ${ranks} rank(s) (${perRank} each), ZeRO stage ${zero}`;
          return `training MMDiT (${model.numParameters().toLocaleString('en')} parameters) on ${dataset.length} samples for ${o.steps} steps, ${where}`;
        },
        started: () => writeConditions(join(o.out, 'cond.safetensors'), dataset, batchOpts, o.data),
        doneNote: ', EMAs ema1/ema2.safetensors, conditions cond.safetensors',
        // the preset's register tokens and the text, then the image patches
        tokensPerSample: model.register_tokens.shape[1]! + tokens + (latentSize / c.patch_size) ** 2,
      };
    },
  };
}

/** Train in this process (synchronous). */
export function trainT2I(o: TrainT2IOptions): TrainResult {
  return train(t2iRecipe(o), o);
}

/** Data-parallel trainT2I over o.dist.pg (every rank calls it with the same options). */
export function trainT2IDistributed(o: TrainT2IOptions & { dist: DistTrainOptions }): Promise<TrainResult> {
  return trainDistributed(t2iRecipe(o), o);
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

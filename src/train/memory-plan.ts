// Plan before you rent (`lavender info --model P --ranks N --zero S --batch B --tokens T ...`): what one
// rank of a data-parallel run holds and sends per training step, found by running that rank's step on the
// meta device (shapes, no memory) through the same code as training: the model, the ZeRO optimizer of the
// stage with the world size's bucket layout, the K micro-batches' forward and backward (block by block with
// ZeRO-3 or --checkpoint-activations), the update, the logged-loss gather. The other ranks are stood in for
// by a process group that answers at once and counts the bytes this rank's collectives would send over
// the CPU transport (reduce-scatter then all-gather: the (N-1)/N volumes of ring algorithms, as NCCL's).
//
// The numbers are lavender's own training: float32 parameters, gradients, master slices and Adam moments
// whatever the precision; with `precision: 'bfloat16'` the forward runs under autocast as the loop runs it
// (bf16 matmuls and attention: what the forward keeps for the backward changes, bf16 copies of the weights
// included). The update (clipping, AdamW) and the EMAs of `train t2i` (two float32 copies of what an EMA
// follows: the parameters, or this rank's master slices at ZeRO 1-3) are traced too; with `emaDevice: 'cpu'`
// the EMAs are host memory, reported apart and not in the device's peak. The bf16 formula of the ZeRO
// paper is printed beside these numbers by `lavender info`. Kernel paths are the cpu's (or `as`'s): a GPU's
// fused kernels may keep less. Run on 'cpu' instead of 'meta' (a small model), the same trace allocates for
// real: test/memory-plan.test.ts checks the meta prediction against those live bytes and against a real
// 2-rank run's transport counters.
import { getBackend } from '../backends/registry.js';
import { mirrorFusedKernels } from '../backends/meta/index.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { allGatherNumbers, allReduceNumbers } from '../distributed/process-group.js';
import type { ZeroStage } from '../distributed/zero.js';
import { flowInputs } from '../flow/rectified-flow.js';
import { DiT } from '../models/dit.js';
import { MMDiT } from '../models/mmdit.js';
import { randn, tensor } from '../ops/creation.js';
import { square, sub } from '../ops/elementwise.js';
import { autocast } from '../ops/autocast.js';
import { cast } from '../ops/movement.js';
import { PowerEma } from '../optim/ema.js';
import { mean } from '../ops/reduce.js';
import { lavenderflowGroups } from '../optim/mup.js';
import { bytesPerElement, type DType } from '../tensor/dtype.js';
import { cudaEntry } from '../backends/cuda/index.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { blockwiseForwardBackward } from './blockwise.js';
import { runAsync } from './coroutine.js';
import { autocastPlan, type TrainableModel } from './loop.js';
import { buildPreset } from './model-info.js';
import { makeTrainOptimizer, type OptimizerSpec } from './optimizer.js';

export interface PlanOptions {
  /** A preset name as `lavender info --model` takes it (MMDiT presets, dit-<preset>). */
  model: string;
  ranks: number;
  zero: ZeroStage;
  /** The global micro-batch (all ranks together), as train's --batch. */
  batch: number;
  /** MMDiT: text tokens (train t2i's --tokens). */
  tokens?: number;
  /** MMDiT: latent side (train t2i's --latent-size; 32 = 256 px, 256 image tokens). */
  latentSize?: number;
  gradAccum?: number;
  checkpointActivations?: boolean;
  /** The forward's precision, as train's --precision (default 'float32'; 'bfloat16': autocast). */
  precision?: 'float32' | 'bfloat16';
  /** MMDiT: where train t2i's two EMAs live: on the training device (default) or 'cpu' (host memory). */
  emaDevice?: string;
  /** 'meta' to predict (default), 'cpu' to measure a small model for real. */
  device?: string;
  /**
   * The device whose kernel paths a meta trace takes: its fused kernels, and under bf16 autocast whether it
   * keeps bf16 tensors or emulates (float32 tensors rounded, the cpu). Default 'cpu'; 'gpu': as a GPU
   * computes (`lavender info`): the cuda backend's fused kernels where its addon loads, else the cpu's, and
   * bf16 native.
   */
  as?: string;
}

export interface MemoryPlan {
  model: string;
  parameters: number;
  ranks: number;
  zero: ZeroStage;
  batch_per_rank: number;
  micro_batches: number;
  checkpoint_activations: boolean;
  /** Tokens one sample's forward sees (MMDiT: 8 register + text, and image; DiT: image patches). */
  sequence: { text: number; image: number };
  /** What is stored in which dtype (a sentence). */
  precision: string;
  /** The forward's compute dtype: 'float32', or 'bfloat16' under autocast. */
  autocast: 'float32' | 'bfloat16';
  /** The EMAs of the weights the run keeps (train t2i: 2; DiT runs none), where, and their bytes on this rank. */
  emas: { count: number; device: string; bytes: number };
  /** This rank's host memory the plan counts (the EMAs with --ema-device cpu; not in bytes_per_rank). */
  host_bytes_per_rank: { ema: number };
  bytes_per_rank: {
    /** Persistent parameter storage: whole parameters (stage 3: the rank's float32 slices) plus master slices (stages 1-2). */
    weights: number;
    /** Gradients held between the backward and the update (stages 2-3: the reduced slices). */
    gradients: number;
    /** Adam's m and v (stages 1-3: slices). */
    optimizer_state: number;
    /** The EMAs on the device (0 when they are kept on the host). */
    ema: number;
    /**
     * The most working memory of a micro-batch's forward and backward beyond the parameter gradients: what
     * the forward keeps for the backward and the backward's temporaries (at ZeRO-3 also the gathered
     * parameters of the units in use).
     */
    activations: number;
    /** The most this rank holds at once on the device during the step (micro-batches, update, EMA update). */
    peak: number;
  };
  /** Payload bytes this rank sends in one optimizer step, by collective. */
  bytes_sent_per_step: { total: number; allReduce: number; reduceScatter: number; allGather: number; broadcast: number };
}

/** Rank 0 of `ranks`, the other ranks answered at once; counts the bytes the CPU transport would send. */
export class CountingGroup implements ProcessGroup {
  readonly rank = 0;
  readonly backend = 'cpu' as const;
  readonly sent = { allReduce: 0, reduceScatter: 0, allGather: 0, broadcast: 0 };
  constructor(readonly worldSize: number) {}
  private bytes(t: Tensor, n: number): number {
    // float16/bfloat16 travel as float32 (process-group.ts hostArray)
    return n * Math.max(4, bytesPerElement(t.dtype));
  }
  reset(): void {
    for (const k of Object.keys(this.sent) as (keyof CountingGroup['sent'])[]) this.sent[k] = 0;
  }
  async allReduce(t: Tensor): Promise<void> {
    const N = this.worldSize, c = Math.ceil(t.size / N);
    this.sent.allReduce += this.bytes(t, 2 * (N - 1) * c); // reduce-scatter of the padded array, then all-gather
  }
  async reduceScatter(output: Tensor): Promise<void> {
    this.sent.reduceScatter += this.bytes(output, (this.worldSize - 1) * output.size);
  }
  async allGather(_output: Tensor, input: Tensor): Promise<void> {
    this.sent.allGather += this.bytes(input, (this.worldSize - 1) * input.size);
  }
  async broadcast(t: Tensor, root = 0): Promise<void> {
    if (root === this.rank) this.sent.broadcast += this.bytes(t, (this.worldSize - 1) * t.size);
  }
  async barrier(): Promise<void> {}
  destroy(): void {}
}

/** The fused kernels and native low-precision dtypes of `as` (see PlanOptions.as). */
function kernelPaths(as: string): { fused: string[]; lowPrecision: readonly DType[] } {
  if (as !== 'gpu') {
    const be = getBackend(as);
    return { fused: Object.keys(be.fused), lowPrecision: be.lowPrecision ?? [] };
  }
  const cuda = cudaEntry.probe().available ? getBackend('cuda') : null;
  return { fused: Object.keys((cuda ?? getBackend('cpu')).fused), lowPrecision: cuda?.lowPrecision ?? ['bfloat16', 'float16'] };
}

/** Trace one optimizer step of one rank (see the file comment). */
export async function planMemory(o: PlanOptions): Promise<MemoryPlan> {
  const N = o.ranks, K = o.gradAccum ?? 1, device = o.device ?? 'meta';
  if (!(Number.isInteger(N) && N >= 1)) throw new Error(`info: --ranks must be a positive integer, got ${N}`);
  if (![0, 1, 2, 3].includes(o.zero)) throw new Error(`info: --zero expects 0, 1, 2 or 3, got ${o.zero}`);
  if (!(Number.isInteger(K) && K >= 1)) throw new Error(`info: --grad-accum must be a positive integer, got ${K}`);
  if (!(Number.isInteger(o.batch) && o.batch >= 1) || o.batch % N !== 0) throw new Error(`info: --batch ${o.batch} must be a positive multiple of --ranks ${N} (the global batch is split over the ranks)`);
  const b = o.batch / N;
  const precision = o.precision ?? 'float32';
  if (precision !== 'float32' && precision !== 'bfloat16') throw new Error(`info: --precision expects fp32 or bf16, got '${precision}'`);
  const be = getBackend(device);
  if (!be.liveBytes || !be.peakBytes || !be.resetPeakBytes) throw new Error(`info: the ${device} backend does not count live bytes`);
  if (be.dataless) {
    const as = kernelPaths(o.as ?? 'cpu');
    mirrorFusedKernels(as.fused, as.lowPrecision);
  }
  const live = () => be.liveBytes!();
  const start = live();
  const model = buildPreset(o.model, device) as TrainableModel<Tensor>;
  const isMMDiT = model instanceof MMDiT;
  if (o.emaDevice !== undefined && !isMMDiT) {
    for (const p of model.parameters()) p.dispose();
    throw new Error(`info: --ema-device applies to MMDiT presets (train t2i keeps two EMAs); ${o.model} trains with train mnist|cifar, which keep none`);
  }
  // the EMA spec of train t2i's recipe (train-t2i.ts), on the device unless they are kept elsewhere
  const emaCount = isMMDiT ? 2 : 0, emaOnDevice = o.emaDevice === undefined || o.emaDevice === device;
  const spec: OptimizerSpec = isMMDiT
    ? { kind: 'adamw', groups: lavenderflowGroups(model.namedParameters(), { lr: 1e-4, width: model.config.dim }), lr: 1e-4, betas: [0.9, 0.95] }
    : { kind: 'adam', groups: model.parameters(), lr: 1e-3 };
  const pg = new CountingGroup(N);
  // one rank without ZeRO is a train command without --nproc: the plain optimizer (no all-reduce, so no
  // gradient flattening in the update)
  const opt = makeTrainOptimizer(model, spec, N === 1 && o.zero === 0 ? undefined : { pg, zero: o.zero });
  const made: Tensor[] = [];
  const emas: PowerEma[] = [];
  try {
    opt.releaseAll();
    const weights = live() - start;
    const m0 = live();
    opt.memoryReport(); // the moments, allocated as the first update would
    const optimizer_state = live() - m0;
    // the EMAs follow opt.weightTensors (whole parameters, or at ZeRO 1-3 this rank's master slices)
    const emaBytes = emaCount * opt.weightTensors.reduce((s, t) => s + t.size * 4, 0);
    const e0 = live();
    if (emaOnDevice) for (const gamma of [16, 9].slice(0, emaCount)) emas.push(new PowerEma(opt.weightTensors, { gamma }));
    const ema = live() - e0;
    // one micro-batch of this rank's rows
    const g = new Generator(0);
    let x: Tensor, cond: Tensor, sequence: { text: number; image: number };
    if (isMMDiT) {
      const r = o.latentSize ?? 32, T = o.tokens ?? 64, c = model.config;
      if (r % c.patch_size) throw new Error(`info: --latent-size ${r} is not divisible by the patch size ${c.patch_size}`);
      x = randn([b, c.in_channels, r, r], { generator: g, device });
      cond = randn([b, T, c.cond_seq_dim], { generator: g, device });
      sequence = { text: 8 + T, image: (r / c.patch_size) ** 2 };
    } else {
      const c = (model as unknown as DiT).config;
      x = randn([b, c.in_channels, c.input_size, c.input_size], { generator: g, device });
      cond = tensor(new Array(b).fill(0), { dtype: 'int64', device });
      sequence = { text: 0, image: (c.input_size / c.patch_size) ** 2 };
    }
    made.push(x, cond);
    const blockwise = o.zero === 3 || !!o.checkpointActivations;
    // the loss in float32 whatever dtype the forward ended in, as loop.ts computes it
    const head = (v: Tensor, z1: Tensor) => mean(mean(square(sub(sub(z1, x), v.dtype === 'float32' ? v : cast(v, 'float32'))), [...Array(x.ndim - 1).keys()].map((i) => i + 1)));
    const microBatch = async () => {
      if (!blockwise) {
        scope(() => {
          const { t, z1, xt } = flowInputs(x, { generator: g });
          head(autocast(precision, () => model.forward(xt, t, cond)), z1).backward();
        });
        return;
      }
      const inp = scope(() => flowInputs(x, { generator: g }));
      try {
        const plan = autocastPlan(model.plan(inp.xt, inp.t, cond), precision);
        await runAsync(blockwiseForwardBackward(plan, (v) => head(v, inp.z1), { checkpoint: !!o.checkpointActivations, units: opt }));
      } finally {
        for (const t of Object.values(inp)) t.dispose();
      }
    };
    // activations: a micro-batch whose gradients stay whole (as before the last one of a step); its peak
    // beyond those gradients is what the forward keeps and the backward's temporaries
    const fullGradients = model.parameters().reduce((s, p) => s + p.size * 4, 0);
    let before = live();
    be.resetPeakBytes!();
    await microBatch();
    const activations = be.peakBytes!() - before - fullGradients;
    opt.zeroGrad();
    // the step: K micro-batches, the last one's buckets reduced from the hooks
    pg.reset();
    before = live();
    be.resetPeakBytes!();
    for (let k = 0; k < K; k++) {
      if (k === K - 1) opt.armFinalBackward();
      await microBatch();
    }
    await new Promise((r) => setImmediate(r)); // reductions the hooks started
    const peakStep = be.peakBytes!() - before;
    const gradients = live() - before; // after the last backward and its reductions
    // the update's collectives: the remaining reductions, gathers (stages 1-2), the clip norm (t2i), the logged
    // loss; its working memory on top of the gradients (the clipping reads its norm, which meta cannot: it is left
    // out, one gradient's square at a time), then the EMAs' (updated after the optimizer, every `every` steps)
    be.resetPeakBytes!();
    await opt.step();
    if (isMMDiT && o.zero >= 1) await allReduceNumbers(pg, [0]); // stage 0 clips the whole averaged gradients locally
    await allGatherNumbers(pg, new Array(K + 2 * K * b).fill(0));
    for (const e of emas) e.update(1);
    const peakUpdate = be.peakBytes!() - before;
    const sent = { ...pg.sent, total: Object.values(pg.sent).reduce((a, c) => a + c, 0) };
    return {
      model: o.model, parameters: model.numParameters(), ranks: N, zero: o.zero, batch_per_rank: b, micro_batches: K,
      checkpoint_activations: !!o.checkpointActivations, sequence,
      precision: precision === 'bfloat16'
        ? 'bf16 autocast (bf16 matmuls and attention); float32 parameters, gradients, master slices and Adam moments'
        : 'float32 parameters, gradients, master slices, Adam moments and compute',
      autocast: precision,
      emas: { count: emaCount, device: emaOnDevice ? device : o.emaDevice!, bytes: emaBytes },
      host_bytes_per_rank: { ema: emaOnDevice ? 0 : emaBytes },
      bytes_per_rank: { weights, gradients, optimizer_state, ema, activations, peak: weights + optimizer_state + ema + Math.max(peakStep, peakUpdate) },
      bytes_sent_per_step: sent,
    };
  } finally {
    for (const t of made) t.dispose();
    for (const e of emas) e.dispose();
    opt.dispose();
    for (const p of model.parameters()) p.dispose();
  }
}

// ZeRO data parallelism (DeepSpeed's stages), over any ProcessGroup:
//
//   stage 0  plain DDP: gradients all-reduced (avg); every rank holds the full Adam state and updates the
//            full parameters (the same update on every rank, so they stay equal).
//   stage 1  optimizer state sharded: gradients all-reduced (avg); each rank keeps float32 master weights and
//            Adam moments only for its slice, updates them, and the slices are all-gathered into the params.
//   stage 2  gradients sharded too: gradients are packed into flat buckets, reduce-scattered (avg) so each
//            rank receives only its slice, and the full local gradients are freed right away.
//
// Buckets: the parameters of each group, in order, are packed into flat buckets of at most bucketElements
// elements (a larger parameter gets a bucket of its own), each zero-padded to a multiple of the world size
// so rank r owns the contiguous slice [r * shard, (r + 1) * shard) of every bucket. Padding stays exactly
// zero under Adam (zero gradient, zero moments, zero update), so it never leaks into parameters.
//
// The update reuses AdamW/Adam (src/optim/adamw.ts) on the slice tensors: the same operations element by
// element, so with one rank ZeRO reproduces the plain optimizer bit for bit. (Difference from torch: a
// parameter whose gradient is null takes part with a zero gradient, since its slice is shared.)
//
// Gradient clipping is global: each rank sums the squares of its slices, the sums are all-reduced, and every
// slice is scaled by the same coefficient as clipGradNorm would use (torch's formula).
//
// Lifetimes: the step awaits collectives, so it cannot sit inside scope(); the synchronous pieces run in
// scope() and the buffers the optimizer owns (masters, moments) are keep()'d and freed by dispose().
import { noGrad } from '../autograd/grad-mode.js';
import { zeros } from '../ops/creation.js';
import { mul, square } from '../ops/elementwise.js';
import { cast, cat } from '../ops/movement.js';
import { sum } from '../ops/reduce.js';
import { reshape, slice } from '../ops/views.js';
import { clipGradNorm } from '../optim/clip.js';
import { Adam, AdamW, type AdamBase, type AdamStateDict, type ParamGroup } from '../optim/adamw.js';
import { bytesPerElement } from '../tensor/dtype.js';
import { keep, scope } from '../tensor/scope.js';
import { shapeStr } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { allReduceNumbers, type ProcessGroup } from './process-group.js';

export type ZeroStage = 0 | 1 | 2;

export interface ZeroOptions {
  stage: ZeroStage;
  /** 'adam' (L2 weight decay, default 0) or 'adamw' (decoupled, default 0.01), as src/optim/adamw.ts. */
  optimizer: 'adam' | 'adamw';
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Largest bucket in elements (default 2^24 = 64 MiB of float32). */
  bucketElements?: number;
}

export interface Bucket {
  group: number;
  /** Indices of the bucket's parameters in the optimizer's parameter list (group order). */
  params: number[];
  shapes: number[][];
  numel: number;
  /** numel rounded up to a multiple of the world size. */
  padded: number;
  /** padded / worldSize: the slice each rank owns. */
  shard: number;
}

/** The layout of the flat buckets; stored with sharded checkpoints, whose slices only fit the same layout. */
export interface ZeroLayout {
  worldSize: number;
  bucketElements: number;
  buckets: { group: number; params: number[]; shapes: number[][]; numel: number }[];
}

export interface MemoryReport {
  rank: number;
  worldSize: number;
  stage: ZeroStage;
  /** Number of parameters (Psi). */
  parameters: number;
  /** Bytes this rank holds in this run, measured from its tensors (dtype and device named in `precision`). */
  measured: { parameters: number; gradients: number; master_weights: number; optimizer_state: number; total: number };
  precision: string;
  /** The ZeRO paper's bytes per rank for this stage with bf16 weights/gradients and fp32 master + Adam (K = 12). */
  formula_bf16: { weights: number; gradients: number; master_weights: number; optimizer_state: number; total: number; expression: string };
}

/** The ZeRO bytes-per-rank formula (K = 12: fp32 master 4 + Adam m 4 + v 4), as src/train/model-info.ts for stage 2. */
export function zeroFormulaBytes(psi: number, ranks: number, stage: ZeroStage): MemoryReport['formula_bf16'] {
  const shard = (b: number) => Math.ceil(b / ranks);
  const weights = 2 * psi;
  const gradients = stage >= 2 ? shard(2 * psi) : 2 * psi;
  const master_weights = stage >= 1 ? shard(4 * psi) : 4 * psi;
  const optimizer_state = stage >= 1 ? shard(8 * psi) : 8 * psi;
  const expression = stage === 2 ? '2Ψ + (2+K)Ψ/N' : stage === 1 ? '2Ψ + 2Ψ + KΨ/N' : '2Ψ + 2Ψ + KΨ';
  return { weights, gradients, master_weights, optimizer_state, total: weights + gradients + master_weights + optimizer_state, expression };
}

const isTensor = (x: unknown): x is Tensor => x instanceof Tensor;

export class ZeroOptimizer {
  readonly stage: ZeroStage;
  readonly params: Tensor[];
  readonly buckets: Bucket[];
  readonly bucketElements: number;
  /** Stage 0: the optimizer over the parameters. Stages 1/2: the optimizer over this rank's master slices. */
  readonly inner: AdamBase;
  /** Stages 1/2: this rank's float32 master slice of every bucket (index = bucket). */
  readonly masters: Tensor[] = [];
  private readonly groups: ParamGroup[];

  constructor(readonly pg: ProcessGroup, groups: readonly ParamGroup[] | readonly Tensor[], readonly opts: ZeroOptions) {
    if (![0, 1, 2].includes(opts.stage)) throw new Error(`ZeRO: stage must be 0, 1 or 2, got ${String(opts.stage)}`);
    this.stage = opts.stage;
    this.groups = groups.length > 0 && isTensor(groups[0]) ? [{ params: [...(groups as readonly Tensor[])] }] : (groups as readonly ParamGroup[]).map((g) => ({ ...g, params: [...g.params] }));
    this.params = this.groups.flatMap((g) => g.params);
    if (this.params.length === 0) throw new Error('ZeRO: got an empty parameter list');
    this.bucketElements = opts.bucketElements ?? 2 ** 24;
    if (!(Number.isInteger(this.bucketElements) && this.bucketElements > 0)) throw new Error(`ZeRO: bucketElements must be a positive integer, got ${this.bucketElements}`);
    const N = pg.worldSize;
    this.buckets = [];
    let index = 0;
    for (const [gi, g] of this.groups.entries()) {
      let cur: Bucket | null = null;
      for (const p of g.params) {
        if (!cur || (cur.numel > 0 && cur.numel + p.size > this.bucketElements)) {
          cur = { group: gi, params: [], shapes: [], numel: 0, padded: 0, shard: 0 };
          this.buckets.push(cur);
        }
        cur.params.push(index++);
        cur.shapes.push([...p.shape]);
        cur.numel += p.size;
      }
    }
    for (const b of this.buckets) {
      b.padded = Math.ceil(b.numel / N) * N;
      b.shard = b.padded / N;
    }
    const hyper = { lr: opts.lr, betas: opts.betas, eps: opts.eps, weightDecay: opts.weightDecay };
    const make = (gs: ParamGroup[]) => (opts.optimizer === 'adamw' ? new AdamW(gs, hyper) : new Adam(gs, hyper));
    if (this.stage === 0) {
      this.inner = make(this.groups);
    } else {
      for (const b of this.buckets) this.masters.push(keep(scope(() => noGrad(() => this.flatSlice(b, (p) => p)))));
      this.masters.forEach((m, i) => (m.name = `zero bucket ${i} master slice`));
      this.inner = make(this.groups.map((g, gi) => ({ ...g, params: this.buckets.flatMap((b, bi) => (b.group === gi ? [this.masters[bi]!] : [])) })).filter((g) => g.params.length > 0));
    }
  }

  get layout(): ZeroLayout {
    return { worldSize: this.pg.worldSize, bucketElements: this.bucketElements, buckets: this.buckets.map((b) => ({ group: b.group, params: b.params, shapes: b.shapes, numel: b.numel })) };
  }

  get stepCount(): number {
    return this.inner.stepCount;
  }
  get lrScale(): number {
    return this.inner.lrScale;
  }
  setLrScale(s: number): void {
    this.inner.setLrScale(s);
  }

  /** Flat float32 copy of one bucket (from each param via `pick`, zeros for null), padded; [padded] (or this rank's [shard]). */
  private flat(b: Bucket, pick: (p: Tensor) => Tensor | null): Tensor {
    const parts = b.params.map((i) => {
      const p = this.params[i]!;
      const t = pick(p);
      return t ? reshape(t.dtype === 'float32' ? t : cast(t, 'float32'), [p.size]) : zeros([p.size], { device: p.device });
    });
    if (b.padded > b.numel) parts.push(zeros([b.padded - b.numel], { device: this.params[b.params[0]!]!.device }));
    return cat(parts, 0);
  }

  private flatSlice(b: Bucket, pick: (p: Tensor) => Tensor | null): Tensor {
    const f = this.flat(b, pick);
    const r = this.pg.rank;
    return cat([slice(f, 0, r * b.shard, (r + 1) * b.shard)], 0);
  }

  /** Write a flat [>= numel] tensor back into the bucket's parameters (or their grads). */
  private unflatten(b: Bucket, flat: Tensor, into: (p: Tensor, v: Tensor) => void): void {
    let off = 0;
    for (const i of b.params) {
      const p = this.params[i]!;
      const v = reshape(slice(flat, 0, off, off + p.size), p.shape);
      into(p, v.dtype === p.dtype ? v : cast(v, p.dtype));
      off += p.size;
    }
  }

  /** Clear every parameter's gradient (and the slices'). */
  zeroGrad(): void {
    for (const p of this.params) p.setGrad(null);
    for (const m of this.masters) m.setGrad(null);
  }

  /**
   * One data-parallel optimizer step after every rank ran backward on its own part of the global batch.
   * Returns the global gradient norm when maxGradNorm is given (torch's clip_grad_norm_ total).
   */
  async step(opts: { maxGradNorm?: number } = {}): Promise<{ gradNorm: number | null }> {
    let gradNorm: number | null = null;
    if (this.stage === 0) {
      for (const b of this.buckets) {
        const flat = keep(scope(() => noGrad(() => this.flat(b, (p) => p.grad))));
        try {
          await this.pg.allReduce(flat, 'avg');
          scope(() => noGrad(() => this.unflatten(b, flat, (p, v) => {
            if (p.grad) p.grad.assign(v);
            else p.setGrad(keep(cat([v], 0).alias()));
          })));
        } finally {
          flat.dispose();
        }
      }
      if (opts.maxGradNorm !== undefined) gradNorm = clipGradNorm(this.params, opts.maxGradNorm);
      this.inner.step();
      return { gradNorm };
    }
    // stages 1 and 2: this rank's averaged gradient slice of every bucket
    for (const [bi, b] of this.buckets.entries()) {
      const flat = keep(scope(() => noGrad(() => this.flat(b, (p) => p.grad))));
      const g = keep(zeros([b.shard], { device: flat.device }));
      try {
        if (this.stage === 2) {
          // the full local gradients are no longer needed: only the reduced slice stays
          for (const i of b.params) this.params[i]!.setGrad(null);
          await this.pg.reduceScatter(g, flat, 'avg');
        } else {
          await this.pg.allReduce(flat, 'avg');
          scope(() => noGrad(() => g.assign(slice(flat, 0, this.pg.rank * b.shard, (this.pg.rank + 1) * b.shard))));
          for (const i of b.params) this.params[i]!.setGrad(null);
        }
      } catch (e) {
        g.dispose();
        throw e;
      } finally {
        flat.dispose();
      }
      this.masters[bi]!.setGrad(g);
    }
    if (opts.maxGradNorm !== undefined) {
      const maxNorm = opts.maxGradNorm;
      if (!(maxNorm > 0)) throw new Error(`ZeRO: maxGradNorm must be positive, got ${maxNorm}`);
      const local = scope(() => noGrad(() => this.masters.reduce((s, m) => s + sum(square(m.grad!)).item(), 0)));
      const [sq] = await allReduceNumbers(this.pg, [local], 'sum');
      gradNorm = Math.sqrt(sq!);
      const coef = maxNorm / (gradNorm + 1e-6);
      if (!(coef >= 1)) scope(() => noGrad(() => { for (const m of this.masters) m.grad!.assign(mul(m.grad!, coef)); }));
    }
    this.inner.step();
    // all-gather the updated slices into the (replicated) parameters
    for (const [bi, b] of this.buckets.entries()) {
      const full = keep(zeros([b.padded], { device: this.masters[bi]!.device }));
      try {
        await this.pg.allGather(full, this.masters[bi]!);
        scope(() => noGrad(() => this.unflatten(b, full, (p, v) => p.assign(v))));
      } finally {
        full.dispose();
      }
      this.masters[bi]!.setGrad(null);
    }
    return { gradNorm };
  }

  /** Bytes this rank holds (measured) next to the ZeRO formula for bf16 weights. */
  memoryReport(): MemoryReport {
    const psi = this.params.reduce((s, p) => s + p.size, 0);
    const bytes = (t: Tensor) => t.size * bytesPerElement(t.dtype);
    const parameters = this.params.reduce((s, p) => s + bytes(p), 0);
    const gradDtype = 4; // gradients and the buffers they are reduced in are float32
    const gradients = this.stage === 2 ? this.buckets.reduce((s, b) => s + b.shard * gradDtype, 0) : psi * gradDtype;
    const master_weights = this.masters.reduce((s, m) => s + bytes(m), 0);
    const sd = this.inner.stateDict(); // materialises the moments (as the first step would)
    const optimizer_state = sd.state.reduce((s, st) => s + bytes(st.m) + bytes(st.v), 0);
    const dtypes = [...new Set(this.params.map((p) => p.dtype))].join('/');
    return {
      rank: this.pg.rank,
      worldSize: this.pg.worldSize,
      stage: this.stage,
      parameters: psi,
      measured: { parameters, gradients, master_weights, optimizer_state, total: parameters + gradients + master_weights + optimizer_state },
      precision: `${dtypes} parameters on ${this.params[0]!.device}, float32 gradients/master weights/Adam moments${this.stage === 0 ? ' (stage 0: the float32 parameters are the master weights)' : ''}`,
      formula_bf16: zeroFormulaBytes(psi, this.pg.worldSize, this.stage),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // state

  /** This rank's shard (stages 1/2): master slices and moments as tensors, scalars as JSON. */
  shardState(): { tensors: Record<string, Tensor>; meta: { step: number; lrScale: number; groups: AdamStateDict['groups']; steps: number[] } } {
    if (this.stage === 0) throw new Error('ZeRO: stage 0 keeps the full optimizer state; save it with the standard checkpoint');
    const sd = this.inner.stateDict();
    const tensors: Record<string, Tensor> = {};
    this.masters.forEach((m, i) => {
      tensors[`zero.${i}.master`] = m;
      tensors[`zero.${i}.m`] = sd.state[this.innerIndex(i)]!.m;
      tensors[`zero.${i}.v`] = sd.state[this.innerIndex(i)]!.v;
    });
    return { tensors, meta: { step: sd.step, lrScale: sd.lrScale ?? 1, groups: this.groupsMeta(sd), steps: this.masters.map((_, i) => sd.state[this.innerIndex(i)]!.step) } };
  }

  /** Hyperparameters per original group (the inner optimizer's groups follow the buckets' groups). */
  private groupsMeta(sd: AdamStateDict): AdamStateDict['groups'] {
    if (this.stage === 0) return sd.groups;
    const innerOf = this.innerGroupIndex();
    return this.groups.map((g, gi) => ({ ...sd.groups[innerOf[gi]!]!, numParams: g.params.length }));
  }

  /** original group index -> inner group index (groups without parameters are dropped by the inner optimizer). */
  private innerGroupIndex(): number[] {
    const out: number[] = [];
    let k = 0;
    for (let gi = 0; gi < this.groups.length; gi++) out.push(this.buckets.some((b) => b.group === gi) ? k++ : -1);
    return out;
  }

  /** Position of bucket i's master in the inner optimizer's parameter order (group order). */
  private innerIndex(bucket: number): number {
    const order = this.inner.params;
    return order.indexOf(this.masters[bucket]!);
  }

  /** Restore this rank's shard saved by shardState() at the same layout. */
  loadShard(tensors: Record<string, Tensor>, meta: { step: number; lrScale: number; groups: AdamStateDict['groups']; steps: number[] }, where: string): void {
    if (this.stage === 0) throw new Error(`${where}: a sharded optimizer state cannot be loaded at ZeRO stage 0; consolidate it first (lavender consolidate)`);
    const inner = this.inner.params;
    const state = inner.map((m) => {
      const bi = this.masters.indexOf(m);
      const get = (k: string) => {
        const t = tensors[`zero.${bi}.${k}`];
        if (!t) throw new Error(`${where}: tensor 'zero.${bi}.${k}' is missing`);
        if (t.size !== this.buckets[bi]!.shard) throw new Error(`${where}: tensor 'zero.${bi}.${k}' has ${shapeStr(t.shape)}, this rank's slice of bucket ${bi} has ${this.buckets[bi]!.shard} elements (different layout)`);
        return t;
      };
      scope(() => noGrad(() => m.assign(get('master'))));
      return { step: meta.steps[bi] ?? meta.step, m: get('m'), v: get('v') };
    });
    const innerOf = this.innerGroupIndex();
    const groups = innerOf.flatMap((k, gi) => (k < 0 ? [] : [{ ...meta.groups[gi]!, numParams: undefined }]));
    this.inner.loadStateDict({ step: meta.step, lrScale: meta.lrScale, groups, state });
  }

  /**
   * Restore from a full (unsharded, per-parameter) optimizer state: a standard or consolidated checkpoint,
   * whatever world size wrote it. The parameters must already hold the checkpoint's weights.
   */
  loadFullState(sd: AdamStateDict): void {
    if (this.stage === 0) {
      this.inner.loadStateDict(sd);
      return;
    }
    if (sd.state.length !== this.params.length) throw new Error(`ZeRO.loadFullState: the state has ${sd.state.length} parameter(s), the model has ${this.params.length}`);
    for (const [i, st] of sd.state.entries()) {
      const p = this.params[i]!;
      for (const k of ['m', 'v'] as const) {
        if (st[k].size !== p.size) throw new Error(`ZeRO.loadFullState: parameter ${i}: saved ${k} has shape ${shapeStr(st[k].shape)}, the parameter ${shapeStr(p.shape)}`);
      }
    }
    const byParam = new Map(this.params.map((p, i) => [p, sd.state[i]!]));
    const slices: { step: number; m: Tensor; v: Tensor }[] = [];
    try {
      const inner = this.inner.params;
      for (const m of inner) {
        const bi = this.masters.indexOf(m);
        const b = this.buckets[bi]!;
        const steps = b.params.map((i) => sd.state[i]!.step);
        slices.push({
          step: Math.max(...steps),
          m: keep(scope(() => noGrad(() => this.flatSlice(b, (p) => byParam.get(p)!.m)))),
          v: keep(scope(() => noGrad(() => this.flatSlice(b, (p) => byParam.get(p)!.v)))),
        });
        scope(() => noGrad(() => m.assign(this.flatSlice(b, (p) => p))));
      }
      const innerOf = this.innerGroupIndex();
      const groups = innerOf.flatMap((k, gi) => (k < 0 ? [] : [{ ...sd.groups[gi]!, numParams: undefined }]));
      this.inner.loadStateDict({ step: sd.step, lrScale: sd.lrScale, groups, state: slices });
    } finally {
      for (const s of slices) {
        s.m.dispose();
        s.v.dispose();
      }
    }
  }

  dispose(): void {
    this.inner.dispose();
    for (const m of this.masters) m.dispose();
  }
}

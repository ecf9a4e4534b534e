// ZeRO data parallelism (DeepSpeed's stages; stage 3 is FSDP's full sharding), over any ProcessGroup:
//
//   stage 0  plain DDP: gradients all-reduced (avg); every rank holds the full Adam state and updates the
//            full parameters (the same update on every rank, so they stay equal).
//   stage 1  optimizer state sharded: gradients all-reduced (avg); each rank keeps float32 master weights and
//            Adam moments only for its slice, updates them, and the slices are all-gathered into the params.
//   stage 2  gradients sharded too: gradients are packed into flat buckets, reduce-scattered (avg) so each
//            rank receives only its slice, and the full local gradients are freed right away.
//   stage 3  parameters sharded too: between uses a parameter holds no data (its storage is evicted, see
//            tensor/tensor.ts); the float32 master slices are the only copy. gather(unit) all-gathers one
//            unit's parameters (a block, or the root: everything outside the blocks) just before its
//            forward and again before its backward, and release(unit) frees them right after. The updated
//            slices are not all-gathered after the step: the next forward gathers what it needs.
//
// Buckets: the parameters of each group, in order, are packed into flat buckets of at most bucketElements
// elements (a larger parameter gets a bucket of its own; at stage 3 a bucket never spans two units), each
// zero-padded to a multiple of the world size so rank r owns the contiguous slice [r * shard, (r + 1) *
// shard) of every bucket. Padding stays exactly zero under Adam (zero gradient, zero moments, zero update).
//
// Overlap: with `overlap` (default; always at stage 3) every parameter gets a gradient-ready hook
// (autograd/hooks.ts). During the backward that completes the step (armFinalBackward(); with gradient
// accumulation, the last micro-batch's) a bucket's reduction starts as soon as all its gradients are final,
// while the backward goes on; step() starts the remaining buckets (parameters without a gradient) in bucket
// order and waits for all. The reduction, and so the result, is the same as without overlap.
//
// The update reuses AdamW/Adam (src/optim/adamw.ts) on the slice tensors: the same operations element by
// element, so with one rank ZeRO reproduces the plain optimizer bit for bit. (Difference from torch: a
// parameter whose gradient is null takes part with a zero gradient, since its slice is shared.)
//
// Gradient clipping is global: each rank sums the squares of its slices, the sums are all-reduced, and every
// slice is scaled by the same coefficient as clipGradNorm would use (torch's formula).
//
// Lifetimes: collectives are awaited, so they cannot sit inside scope(); the synchronous pieces run in
// scope() and the buffers the optimizer owns (masters, moments, gradient slices) are keep()'d and freed by
// dispose().
import { noGrad } from '../autograd/grad-mode.js';
import { onGradReady } from '../autograd/hooks.js';
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

export type ZeroStage = 0 | 1 | 2 | 3;

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
  /** Stage 3: the parameters of each block (a unit gathered and released together); the rest form the root unit 0. */
  units?: readonly (readonly Tensor[])[];
  /** Start reducing each bucket from gradient-ready hooks during the step's last backward (default true). */
  overlap?: boolean;
  /**
   * How per-parameter state is numbered outside the optimizer (default: its own group order), e.g. the
   * model's parameters() order that EMA files and checkpoints use: sliceFull, gatherFull and weightTensors
   * (stage 0) follow it, and sharded checkpoints record it for consolidation.
   */
  paramOrder?: readonly Tensor[];
}

export interface Bucket {
  group: number;
  /** Stage 3: the unit whose parameters it holds (0: root, i: block i - 1); 0 at other stages. */
  unit: number;
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
  buckets: { group: number; params: number[]; shapes: number[][]; numel: number; unit?: number }[];
  /** For parameter i (optimizer order), the index its per-parameter extras use (absent: the same order). */
  order?: number[];
}

export interface MemoryReport {
  rank: number;
  worldSize: number;
  stage: ZeroStage;
  /** Number of parameters (Psi). */
  parameters: number;
  /**
   * Bytes this rank holds between steps, measured from its tensors (dtype and device named in `precision`).
   * Stage 3: `parameters` are this rank's float32 parameter slices (the only persistent copy; master_weights
   * is 0, they are the same tensors).
   */
  measured: { parameters: number; gradients: number; master_weights: number; optimizer_state: number; total: number };
  precision: string;
  /** The ZeRO paper's bytes per rank for this stage with bf16 weights/gradients and fp32 master + Adam (K = 12). */
  formula_bf16: { weights: number; gradients: number; master_weights: number; optimizer_state: number; total: number; expression: string };
}

/** The ZeRO bytes-per-rank formula (K = 12: fp32 master 4 + Adam m 4 + v 4), as src/train/model-info.ts. */
export function zeroFormulaBytes(psi: number, ranks: number, stage: ZeroStage): MemoryReport['formula_bf16'] {
  const shard = (b: number) => Math.ceil(b / ranks);
  const weights = stage >= 3 ? shard(2 * psi) : 2 * psi;
  const gradients = stage >= 2 ? shard(2 * psi) : 2 * psi;
  const master_weights = stage >= 1 ? shard(4 * psi) : 4 * psi;
  const optimizer_state = stage >= 1 ? shard(8 * psi) : 8 * psi;
  const expression = ['2Ψ + 2Ψ + KΨ', '2Ψ + 2Ψ + KΨ/N', '2Ψ + (2+K)Ψ/N', '(2+2+K)Ψ/N'][stage]!;
  return { weights, gradients, master_weights, optimizer_state, total: weights + gradients + master_weights + optimizer_state, expression };
}

const isTensor = (x: unknown): x is Tensor => x instanceof Tensor;

/** Why a stage-3 parameter has no data, for the error a stray use of it throws. */
const EVICTED = 'ZeRO-3 shards this parameter across the ranks and gathers it only around its block\'s forward and backward (ZeroOptimizer.gather)';

export class ZeroOptimizer {
  readonly stage: ZeroStage;
  readonly params: Tensor[];
  readonly buckets: Bucket[];
  readonly bucketElements: number;
  /** Stage 0: the optimizer over the parameters. Stages 1-3: the optimizer over this rank's master slices. */
  readonly inner: AdamBase;
  /** Stages 1-3: this rank's float32 master slice of every bucket (index = bucket). */
  readonly masters: Tensor[] = [];
  /** Stage 3: the number of units (root + blocks). */
  readonly numUnits: number;
  readonly overlap: boolean;
  private readonly groups: ParamGroup[];
  /** For parameter i (optimizer order), its index in opts.paramOrder. */
  private readonly extIndex: number[];
  /** Stages 1-3: this rank's reduced gradient slice of every bucket, filled by the step's reductions. */
  private readonly gradSlices: (Tensor | null)[];
  /** Reductions started in the current step, by bucket. */
  private readonly pending = new Map<number, Promise<void>>();
  private readonly ready: Set<number>[];
  private readonly bucketOf: number[];
  private armed = false;
  private readonly removeHooks: (() => void)[] = [];
  /** Stage 3: units whose parameters hold data, and gathers in flight. */
  private readonly gathered = new Set<number>();
  private readonly gathering = new Map<number, Promise<void>>();
  private disposed = false;

  constructor(readonly pg: ProcessGroup, groups: readonly ParamGroup[] | readonly Tensor[], readonly opts: ZeroOptions) {
    if (![0, 1, 2, 3].includes(opts.stage)) throw new Error(`ZeRO: stage must be 0, 1, 2 or 3, got ${String(opts.stage)}`);
    this.stage = opts.stage;
    this.groups = groups.length > 0 && isTensor(groups[0]) ? [{ params: [...(groups as readonly Tensor[])] }] : (groups as readonly ParamGroup[]).map((g) => ({ ...g, params: [...g.params] }));
    this.params = this.groups.flatMap((g) => g.params);
    if (this.params.length === 0) throw new Error('ZeRO: got an empty parameter list');
    this.extIndex = this.params.map((_, i) => i);
    if (opts.paramOrder) {
      const at = new Map(opts.paramOrder.map((p, i) => [p, i]));
      if (at.size !== this.params.length || this.params.some((p) => !at.has(p))) throw new Error(`ZeRO: paramOrder must list the optimizer's ${this.params.length} parameters (got ${opts.paramOrder.length})`);
      this.extIndex = this.params.map((p) => at.get(p)!);
    }
    this.bucketElements = opts.bucketElements ?? 2 ** 24;
    if (!(Number.isInteger(this.bucketElements) && this.bucketElements > 0)) throw new Error(`ZeRO: bucketElements must be a positive integer, got ${this.bucketElements}`);
    const unitOf = new Map<Tensor, number>();
    if (this.stage === 3) {
      (opts.units ?? []).forEach((u, i) => {
        for (const p of u) {
          if (unitOf.has(p)) throw new Error(`ZeRO-3: parameter ${p.describe()} is listed in two units`);
          unitOf.set(p, i + 1);
        }
      });
      for (const p of this.params) {
        if (p.dtype !== 'float32') throw new Error(`ZeRO-3: parameters must be float32 (their fp32 slices are the only copy), got ${p.describe()}`);
      }
    }
    this.numUnits = this.stage === 3 ? (opts.units?.length ?? 0) + 1 : 1;
    const N = pg.worldSize;
    this.buckets = [];
    let index = 0;
    for (const [gi, g] of this.groups.entries()) {
      let cur: Bucket | null = null;
      for (const p of g.params) {
        const unit = unitOf.get(p) ?? 0;
        if (!cur || cur.unit !== unit || (cur.numel > 0 && cur.numel + p.size > this.bucketElements)) {
          cur = { group: gi, unit, params: [], shapes: [], numel: 0, padded: 0, shard: 0 };
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
    this.bucketOf = new Array<number>(this.params.length);
    this.buckets.forEach((b, bi) => b.params.forEach((i) => (this.bucketOf[i] = bi)));
    this.ready = this.buckets.map(() => new Set<number>());
    this.gradSlices = this.buckets.map(() => null);
    const hyper = { lr: opts.lr, betas: opts.betas, eps: opts.eps, weightDecay: opts.weightDecay };
    const make = (gs: ParamGroup[]) => (opts.optimizer === 'adamw' ? new AdamW(gs, hyper) : new Adam(gs, hyper));
    if (this.stage === 0) {
      this.inner = make(this.groups);
    } else {
      for (const b of this.buckets) this.masters.push(keep(scope(() => noGrad(() => this.flatSlice(b, (p) => p)))));
      this.masters.forEach((m, i) => (m.name = `zero bucket ${i} master slice`));
      this.inner = make(this.groups.map((g, gi) => ({ ...g, params: this.buckets.flatMap((b, bi) => (b.group === gi ? [this.masters[bi]!] : [])) })).filter((g) => g.params.length > 0));
    }
    if (this.stage === 3) for (let u = 0; u < this.numUnits; u++) this.gathered.add(u);
    this.overlap = this.stage === 3 || (opts.overlap ?? true);
    if (this.overlap) this.params.forEach((p, i) => this.removeHooks.push(onGradReady(p, () => this.onGradReady(i))));
  }

  get layout(): ZeroLayout {
    return {
      worldSize: this.pg.worldSize, bucketElements: this.bucketElements,
      buckets: this.buckets.map((b) => ({ group: b.group, params: b.params, shapes: b.shapes, numel: b.numel, ...(this.stage === 3 ? { unit: b.unit } : {}) })),
      ...(this.extIndex.some((e, i) => e !== i) ? { order: [...this.extIndex] } : {}),
    };
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

  /** Flat float32 copy of one bucket (from each param via `pick`, zeros for null), padded; [padded]. */
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
   * The next backward completes the step's gradients (with accumulation: the last micro-batch's): with
   * overlap, each bucket starts its reduction from the hooks as soon as its gradients are final.
   */
  armFinalBackward(): void {
    this.armed = this.overlap;
  }

  private onGradReady(i: number): void {
    if (!this.armed) return;
    const bi = this.bucketOf[i]!;
    if (this.pending.has(bi)) {
      throw new Error(`ZeRO: parameter ${this.params[i]!.describe()} received a gradient after its bucket ${bi} was reduced (a parameter used by two separate backward passes of one step); disable overlap for this model`);
    }
    const ready = this.ready[bi]!;
    ready.add(i);
    if (ready.size === this.buckets[bi]!.params.length) this.launch(bi);
  }

  /** Start bucket bi's reduction; its full local gradients are released as soon as they are copied. */
  private launch(bi: number): void {
    const b = this.buckets[bi]!;
    const flat = keep(scope(() => noGrad(() => this.flat(b, (p) => p.grad))));
    const pg = this.pg, rank = pg.rank;
    let run: Promise<void>;
    if (this.stage === 0) {
      run = pg.allReduce(flat, 'avg').then(() => scope(() => noGrad(() => this.unflatten(b, flat, (p, v) => {
        if (p.grad) p.grad.assign(v);
        else p.setGrad(keep(cat([v], 0).alias()));
      }))));
    } else {
      for (const i of b.params) this.params[i]!.setGrad(null);
      const g = keep(zeros([b.shard], { device: flat.device }));
      const reduce = this.stage === 1
        ? pg.allReduce(flat, 'avg').then(() => scope(() => noGrad(() => g.assign(slice(flat, 0, rank * b.shard, (rank + 1) * b.shard)))))
        : pg.reduceScatter(g, flat, 'avg');
      run = reduce.then(() => {
        this.gradSlices[bi]?.dispose();
        this.gradSlices[bi] = g;
      }, (e: unknown) => {
        g.dispose();
        throw e;
      });
    }
    const done = run.finally(() => flat.dispose());
    done.catch(() => {}); // awaited (and its error thrown) by reduceAll; not an unhandled rejection meanwhile
    this.pending.set(bi, done);
  }

  /** Wait for every reduction of this step (starting those no hook started, in bucket order). */
  private async reduceAll(): Promise<void> {
    this.armed = false;
    for (let bi = 0; bi < this.buckets.length; bi++) if (!this.pending.has(bi)) this.launch(bi);
    const results = await Promise.allSettled([...this.pending.values()]);
    this.pending.clear();
    for (const r of this.ready) r.clear();
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * One data-parallel optimizer step after every rank ran backward on its own part of the global batch.
   * Returns the global gradient norm when maxGradNorm is given (torch's clip_grad_norm_ total).
   */
  async step(opts: { maxGradNorm?: number } = {}): Promise<{ gradNorm: number | null }> {
    this.assertUsable('step');
    let gradNorm: number | null = null;
    await this.reduceAll();
    if (this.stage === 0) {
      if (opts.maxGradNorm !== undefined) gradNorm = clipGradNorm(this.params, opts.maxGradNorm);
      this.inner.step();
      return { gradNorm };
    }
    this.masters.forEach((m, bi) => {
      m.setGrad(this.gradSlices[bi]!);
      this.gradSlices[bi] = null;
    });
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
    for (const m of this.masters) m.setGrad(null);
    // stages 1 and 2: all-gather the updated slices into the (replicated) parameters; stage 3 gathers lazily
    if (this.stage < 3) for (const bi of this.buckets.keys()) await this.gatherBucket(bi);
    else for (let u = 0; u < this.numUnits; u++) if (this.gathered.has(u)) await this.gather(u, true);
    return { gradNorm };
  }

  /** All-gather bucket bi's master slices into its parameters (refilling evicted storages first). */
  private async gatherBucket(bi: number): Promise<void> {
    const b = this.buckets[bi]!;
    const full = keep(zeros([b.padded], { device: this.masters[bi]!.device }));
    try {
      await this.pg.allGather(full, this.masters[bi]!);
      scope(() => noGrad(() => this.unflatten(b, full, (p, v) => {
        p.storage.refill();
        p.assign(v);
      })));
    } finally {
      full.dispose();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // stage 3: gather and release units

  /** Stage 3: the parameters of unit u (0: root). */
  unitParams(u: number): Tensor[] {
    return this.buckets.filter((b) => b.unit === u).flatMap((b) => b.params.map((i) => this.params[i]!));
  }

  /**
   * Stage 3: give unit u's parameters their current values (collective: every rank gathers the same units
   * in the same order). `refresh` gathers again even if they hold data. Other stages: nothing to do.
   */
  gather(u: number, refresh = false): Promise<void> {
    if (this.stage !== 3) return Promise.resolve();
    if (!refresh && this.gathered.has(u)) return this.gathering.get(u) ?? Promise.resolve();
    const run = (async () => {
      for (const [bi, b] of this.buckets.entries()) if (b.unit === u) await this.gatherBucket(bi);
    })();
    this.gathered.add(u);
    const done = run.finally(() => this.gathering.delete(u));
    done.catch(() => {}); // a prefetch nobody awaits yet: its error surfaces where it is awaited
    this.gathering.set(u, done);
    return done;
  }

  /** Stage 3: free unit u's parameters (their slices stay). */
  release(u: number): void {
    if (this.stage !== 3) return;
    if (this.gathering.has(u)) throw new Error(`ZeRO-3: unit ${u} is released while its gather is in flight`);
    for (const p of this.unitParams(u)) p.storage.evict(EVICTED);
    this.gathered.delete(u);
  }

  /** Stage 3: every unit gathered (checkpoints, sampling); collective. */
  async gatherAll(): Promise<void> {
    for (let u = 0; u < this.numUnits; u++) await this.gather(u);
  }

  releaseAll(): void {
    for (let u = 0; u < this.numUnits; u++) this.release(u);
  }

  // ---------------------------------------------------------------------------------------------
  // per-parameter state kept as slices (EMAs of the weights)

  /** The tensors an EMA of the weights follows: the parameters (paramOrder) at stage 0, this rank's master slices at 1-3. */
  get weightTensors(): Tensor[] {
    if (this.stage > 0) return [...this.masters];
    const out = new Array<Tensor>(this.params.length);
    this.params.forEach((p, i) => (out[this.extIndex[i]!] = p));
    return out;
  }

  /** Stages 1-3: this rank's slice of every bucket of per-parameter tensors in paramOrder (kept; the caller disposes them). */
  sliceFull(perParam: readonly Tensor[], what: string): Tensor[] {
    if (perParam.length !== this.params.length) throw new Error(`ZeRO: ${what} has ${perParam.length} tensor(s), the model ${this.params.length} parameters`);
    const byParam = new Map(this.params.map((p, i) => {
      const t = perParam[this.extIndex[i]!]!;
      if (t.size !== p.size) throw new Error(`ZeRO: ${what} tensor ${this.extIndex[i]} has shape ${shapeStr(t.shape)}, the parameter ${shapeStr(p.shape)}`);
      return [p, t];
    }));
    return this.buckets.map((b) => keep(scope(() => noGrad(() => this.flatSlice(b, (p) => byParam.get(p)!)))));
  }

  /** Stages 1-3: whole per-parameter tensors (paramOrder) from every rank's bucket slices (collective; kept, the caller disposes). */
  async gatherFull(slices: readonly Tensor[]): Promise<Tensor[]> {
    if (slices.length !== this.buckets.length) throw new Error(`ZeRO.gatherFull: ${slices.length} slices for ${this.buckets.length} buckets`);
    const out = new Array<Tensor>(this.params.length);
    for (const [bi, b] of this.buckets.entries()) {
      const full = keep(zeros([b.padded], { device: slices[bi]!.device }));
      try {
        await this.pg.allGather(full, slices[bi]!);
        scope(() => noGrad(() => {
          let off = 0;
          for (const i of b.params) {
            const p = this.params[i]!;
            out[this.extIndex[i]!] = keep(cat([reshape(slice(full, 0, off, off + p.size), p.shape)], 0));
            off += p.size;
          }
        }));
      } finally {
        full.dispose();
      }
    }
    return out;
  }

  /** Bytes this rank holds (measured) next to the ZeRO formula for bf16 weights. */
  memoryReport(): MemoryReport {
    const psi = this.params.reduce((s, p) => s + p.size, 0);
    const bytes = (t: Tensor) => t.size * bytesPerElement(t.dtype);
    const gradDtype = 4; // gradients and the buffers they are reduced in are float32
    const sliced = this.buckets.reduce((s, b) => s + b.shard, 0);
    const masters = this.masters.reduce((s, m) => s + bytes(m), 0);
    const parameters = this.stage === 3 ? masters : this.params.reduce((s, p) => s + bytes(p), 0);
    const gradients = this.stage >= 2 ? sliced * gradDtype : psi * gradDtype;
    const master_weights = this.stage === 3 ? 0 : masters;
    const sd = this.inner.stateDict(); // materialises the moments (as the first step would)
    const optimizer_state = sd.state.reduce((s, st) => s + bytes(st.m) + bytes(st.v), 0);
    const dtypes = [...new Set(this.params.map((p) => p.dtype))].join('/');
    const note = this.stage === 0 ? ' (stage 0: the float32 parameters are the master weights)' : this.stage === 3 ? ' (stage 3: the float32 parameter slices are the master weights; a unit is gathered only while it runs)' : '';
    return {
      rank: this.pg.rank,
      worldSize: this.pg.worldSize,
      stage: this.stage,
      parameters: psi,
      measured: { parameters, gradients, master_weights, optimizer_state, total: parameters + gradients + master_weights + optimizer_state },
      precision: `${dtypes} parameters on ${this.params[0]!.device}, float32 gradients/master weights/Adam moments${note}`,
      formula_bf16: zeroFormulaBytes(psi, this.pg.worldSize, this.stage),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // state

  /** This rank's shard (stages 1-3): master slices and moments as tensors, scalars as JSON. */
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

  private assertUsable(op: string): void {
    if (this.disposed) throw new Error(`ZeRO.${op}: the optimizer was disposed`);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const r of this.removeHooks) r();
    this.inner.dispose();
    for (const m of this.masters) m.dispose();
    for (const g of this.gradSlices) g?.dispose();
  }
}

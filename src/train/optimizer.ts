// The optimizer of the training loop: the plain one (Adam or AdamW over the parameters, in this process)
// or a ZeRO stage over a process group, behind one interface, so the loop does not care which. Both
// checkpoint themselves (src/optim/checkpoint.ts for the plain one; src/distributed/checkpoint.ts, which
// shards stages 1-3), and both say which tensors an EMA of the weights follows: the parameters, or at
// ZeRO stages 1-3 this rank's float32 master slices (so the EMAs are sharded like the optimizer state).
import type { Module } from '../nn/module.js';
import { Adam, AdamW, type AdamBase, type ParamGroup } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from '../optim/checkpoint.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { ZeroOptimizer, type MemoryReport, type ZeroStage } from '../distributed/zero.js';
import { loadDistCheckpoint, saveDistCheckpoint, takeExtras, type CheckpointExtras } from '../distributed/checkpoint.js';

/** What the optimizer is, the same for a plain run and every ZeRO stage. */
export interface OptimizerSpec {
  kind: 'adam' | 'adamw';
  groups: readonly ParamGroup[] | readonly Tensor[];
  lr: number;
  betas?: [number, number];
}

/** Tensors handed out by wholeWeights(), with whether the caller must dispose them. */
export interface Whole {
  tensors: Tensor[];
  dispose(): void;
}

export interface TrainOptimizer {
  /** null: the plain optimizer (no process group). */
  readonly stage: ZeroStage | null;
  readonly lrScale: number;
  setLrScale(s: number): void;
  zeroGrad(): void;
  /** The next backward completes the step's gradients (ZeRO starts reducing buckets from its hooks). */
  armFinalBackward(): void;
  /** Clip (when maxGradNorm is given; returns the norm before clipping) and update. */
  step(maxGradNorm?: number): number | null | Promise<number | null>;
  /** What an EMA of the weights follows (see the file comment). */
  readonly weightTensors: Tensor[];
  /** Per-parameter whole tensors of state laid out like weightTensors (collective at ZeRO stages 1-3). */
  wholeWeights(ts: Tensor[]): Whole | Promise<Whole>;
  save(path: string, model: Module, meta: CheckpointMeta, extras: CheckpointExtras): void | Promise<void>;
  /** Restore; the extras come laid out like weightTensors, on `extrasDevice` (default the model's), owned by the caller. */
  load(path: string, model: Module, extraNames: readonly string[], extrasDevice?: string): { meta: CheckpointMeta; extras: Record<string, Tensor[]> };
  /** ZeRO-3 units (root + blocks): gather before use, release after. Other optimizers: no-ops. */
  gather(unit: number): void | Promise<void>;
  release(unit: number): void;
  /** Every unit gathered / released (sampling, the memory report). */
  gatherAll(): void | Promise<void>;
  releaseAll(): void;
  memoryReport(): MemoryReport | null;
  dispose(): void;
}

class PlainOptimizer implements TrainOptimizer {
  readonly stage = null;
  constructor(readonly inner: AdamBase, private readonly params: Tensor[]) {}
  get lrScale(): number {
    return this.inner.lrScale;
  }
  setLrScale(s: number): void {
    this.inner.setLrScale(s);
  }
  zeroGrad(): void {
    this.inner.zeroGrad();
  }
  armFinalBackward(): void {}
  step(maxGradNorm?: number): number | null {
    const norm = maxGradNorm !== undefined ? clipGradNorm(this.params, maxGradNorm) : null;
    this.inner.step();
    return norm;
  }
  get weightTensors(): Tensor[] {
    return this.params;
  }
  wholeWeights(ts: Tensor[]): Whole {
    return { tensors: ts, dispose: () => {} };
  }
  save(path: string, model: Module, meta: CheckpointMeta, extras: CheckpointExtras): void {
    const extra: Record<string, Tensor> = {};
    for (const [name, ts] of Object.entries(extras)) ts.forEach((t, i) => (extra[`${name}.${i}`] = t));
    saveCheckpoint(path, model, this.inner, meta, extra);
  }
  load(path: string, model: Module, extraNames: readonly string[], extrasDevice?: string): { meta: CheckpointMeta; extras: Record<string, Tensor[]> } {
    const { meta, extra } = loadCheckpoint(path, model, this.inner, { extraDevice: extrasDevice });
    return { meta, extras: takeExtras(path, extra, extraNames, this.params.length) };
  }
  gather(): void {}
  release(): void {}
  gatherAll(): void {}
  releaseAll(): void {}
  /** No sharded report; the moments are allocated as the first update would (the planner measures them). */
  memoryReport(): null {
    this.inner.allocateState();
    return null;
  }
  dispose(): void {
    this.inner.dispose();
  }
}

class ZeroTrainOptimizer implements TrainOptimizer {
  constructor(readonly zero: ZeroOptimizer, private readonly pg: ProcessGroup) {}
  get stage(): ZeroStage {
    return this.zero.stage;
  }
  get lrScale(): number {
    return this.zero.lrScale;
  }
  setLrScale(s: number): void {
    this.zero.setLrScale(s);
  }
  zeroGrad(): void {
    this.zero.zeroGrad();
  }
  armFinalBackward(): void {
    this.zero.armFinalBackward();
  }
  async step(maxGradNorm?: number): Promise<number | null> {
    return (await this.zero.step({ maxGradNorm })).gradNorm;
  }
  get weightTensors(): Tensor[] {
    return this.zero.weightTensors;
  }
  async wholeWeights(ts: Tensor[]): Promise<Whole> {
    if (this.zero.stage === 0) return { tensors: ts, dispose: () => {} };
    const tensors = await this.zero.gatherFull(ts);
    return { tensors, dispose: () => tensors.forEach((t) => t.dispose()) };
  }
  save(path: string, model: Module, meta: CheckpointMeta, extras: CheckpointExtras): Promise<void> {
    return saveDistCheckpoint(path, model, this.zero, meta, this.pg, extras);
  }
  load(path: string, model: Module, extraNames: readonly string[], extrasDevice?: string): { meta: CheckpointMeta; extras: Record<string, Tensor[]> } {
    return loadDistCheckpoint(path, model, this.zero, this.pg, extraNames, extrasDevice);
  }
  gather(unit: number): Promise<void> {
    return this.zero.gather(unit);
  }
  release(unit: number): void {
    this.zero.release(unit);
  }
  gatherAll(): Promise<void> {
    return this.zero.gatherAll();
  }
  releaseAll(): void {
    this.zero.releaseAll();
  }
  memoryReport(): MemoryReport {
    return this.zero.memoryReport();
  }
  dispose(): void {
    this.zero.dispose();
  }
}

export interface DataParallelOptions {
  pg: ProcessGroup;
  zero: ZeroStage;
  bucketElements?: number;
  /** Reduce buckets from gradient hooks during the backward (default true; stage 3 always). */
  overlap?: boolean;
}

/** The plain optimizer, or with `dp` a ZeRO stage (stage 3 shards the units: the root and each block). */
export function makeTrainOptimizer(model: Module & { blockModules?(): Module[] }, spec: OptimizerSpec, dp?: DataParallelOptions): TrainOptimizer {
  const params = model.parameters();
  if (!dp) {
    const hyper = { lr: spec.lr, betas: spec.betas };
    return new PlainOptimizer(spec.kind === 'adamw' ? new AdamW(spec.groups, hyper) : new Adam(spec.groups, hyper), params);
  }
  const units = dp.zero === 3 ? (model.blockModules?.() ?? []).map((m) => m.parameters()) : undefined;
  const zero = new ZeroOptimizer(dp.pg, spec.groups, {
    stage: dp.zero, optimizer: spec.kind, lr: spec.lr, betas: spec.betas, bucketElements: dp.bucketElements, units, overlap: dp.overlap, paramOrder: params,
  });
  return new ZeroTrainOptimizer(zero, dp.pg);
}

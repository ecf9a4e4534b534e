// A forward pass cut at its block boundaries: what comes before the repeated blocks (embeddings), each
// block as a map from a list of tensors (the state between blocks) to the next, and what comes after. A
// model's forward() runs its plan straight through; the training loop runs the same pieces one at a time
// to recompute blocks in the backward (activation checkpointing) and to gather a block's sharded
// parameters just before it runs (ZeRO-3), with exactly the operations of forward(), in the same order.
import type { Tensor } from '../tensor/tensor.js';
import { scope } from '../tensor/scope.js';
import type { Module } from './module.js';

export interface PlanBlock {
  /** The block's parameters live here (ZeRO-3 gathers them around run()). */
  readonly module: Module;
  /** Must not draw random numbers: a recomputation must give the same result. */
  run(state: Tensor[]): Tensor[];
}

export interface ForwardPlan {
  prologue(): Tensor[];
  blocks: readonly PlanBlock[];
  epilogue(state: Tensor[]): Tensor;
}

/** A model whose forward is a plan: the blocks it will cut into, known before any forward. */
export interface Blockwise<C> {
  /** The repeated blocks, in the order their plan runs them. */
  blockModules(): Module[];
  /** The forward pass on (x, t, cond) as a plan (validates its inputs at once). */
  plan(x: Tensor, t: Tensor, cond: C): ForwardPlan;
}

/** forward(): the plan straight through, a scope per piece: a block's intermediates die at its end except
 *  what the autograd graph saved (activations are freed early, not when the whole forward's scope ends). */
export function runPlan(p: ForwardPlan): Tensor {
  let state = scope(() => p.prologue());
  for (const b of p.blocks) state = scope(() => b.run(state));
  return scope(() => p.epilogue(state));
}

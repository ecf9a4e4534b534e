// One micro-batch's forward and backward through a model's plan (nn/plan.ts), a block at a time:
//
//  - activation checkpointing: a block runs without recording a graph in the forward, and only its
//    input (the state between blocks) is kept; in the backward the block is run again from that input,
//    this time recording, and backpropagated at once. Peak activation memory is the boundary states
//    plus one block's activations instead of every block's. Blocks draw no random numbers, so the
//    recomputation is the same computation and gives the same gradients.
//  - ZeRO-3: the root unit (everything outside the blocks) is gathered for the whole pass; block i's
//    unit is gathered just before its forward, released after it, gathered again before its backward
//    and released after (the gradients leave through the optimizer's gradient-ready hooks).
//
// Between blocks the state is handed over as fresh leaves (aliases requiring grad), so each block's
// backward is a separate pass with the next block's input gradients as its output gradients. Each
// synchronous piece runs in scope(); what must outlive it (the states, their graphs without
// checkpointing) is listed here and disposed at the end, since scopes cannot span the awaited gathers.
import { backward } from '../autograd/backward.js';
import { noGrad } from '../autograd/grad-mode.js';
import type { ForwardPlan } from '../nn/plan.js';
import { scope, type Disposable } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { isFloat } from '../tensor/dtype.js';
import { wait, type Co } from './coroutine.js';

/** Where a block's parameters come from: unit 0 is the root, unit i + 1 block i (ZeRO-3; otherwise no-ops). */
export interface UnitGate {
  gather(unit: number): void | Promise<void>;
  release(unit: number): void;
}

export interface BlockwiseOptions {
  /** Recompute each block in the backward instead of keeping its activations. */
  checkpoint: boolean;
  units: UnitGate;
}

/** Backpropagate from the outputs that have a gradient (a state element nothing used has none). */
function backwardFrom(outs: readonly Tensor[], grads: readonly (Tensor | null)[]): void {
  const roots: Tensor[] = [], gs: Tensor[] = [];
  outs.forEach((t, k) => {
    const g = grads[k];
    if (g && t.requiresGrad) {
      roots.push(t);
      gs.push(g);
    }
  });
  if (roots.length) backward(roots, gs);
}

/**
 * Forward and backward of `plan`; `head` turns the model's output into the scalar to backpropagate (the
 * loss, scaled for gradient accumulation). Parameter gradients accumulate into .grad as in loss.backward().
 */
export function* blockwiseForwardBackward(plan: ForwardPlan, head: (out: Tensor) => Tensor, o: BlockwiseOptions): Co<void> {
  const held: Disposable[] = [];
  const hold = (ts: Tensor[]): Tensor[] => {
    for (const t of ts) {
      held.push(t);
      for (const d of t.dependencies()) held.push(d);
    }
    return ts;
  };
  // a state computed without a graph (checkpointing) requires grad like it would have with one: every
  // floating-point state depends on parameters
  const leaves = (ts: readonly Tensor[]): Tensor[] => ts.map((t) => {
    const l = t.alias();
    if (t.requiresGrad || (o.checkpoint && isFloat(t.dtype))) l.requiresGrad_(true);
    held.push(l);
    return l;
  });
  const dropGrads = (ts: readonly Tensor[]) => {
    for (const t of ts) t.setGrad(null);
  };
  try {
    yield* wait(o.units.gather(0));
    const first = hold(scope(() => plan.prologue()));
    const inputs: Tensor[][] = [], outputs: Tensor[][] = [];
    let state = first;
    for (const [i, block] of plan.blocks.entries()) {
      yield* wait(o.units.gather(i + 1));
      const inp = leaves(state);
      state = hold(scope(() => (o.checkpoint ? noGrad(() => block.run(inp)) : block.run(inp))));
      o.units.release(i + 1);
      inputs.push(inp);
      outputs.push(state);
    }
    const last = leaves(state);
    scope(() => backward(head(plan.epilogue(last))));
    // walk back: block i's output gradients are the gradients its successor's input leaves received
    let consumed = last;
    for (let i = plan.blocks.length - 1; i >= 0; i--) {
      yield* wait(o.units.gather(i + 1));
      const inp = inputs[i]!;
      scope(() => {
        // the block's outputs: recomputed with a graph (in a scope of its own, so the recomputation's
        // intermediates die before its backward runs, as in the forward), or the ones the forward recorded
        const ys = o.checkpoint ? scope(() => plan.blocks[i]!.run(inp)) : outputs[i]!;
        backwardFrom(ys, consumed.map((l) => l.grad));
      });
      // a state element passed through unchanged is the very leaf of this block: keep its gradient
      dropGrads(consumed.filter((l) => !inp.includes(l)));
      consumed = inp;
      o.units.release(i + 1);
    }
    scope(() => backwardFrom(first, consumed.map((l) => l.grad)));
    dropGrads(consumed);
    o.units.release(0);
  } finally {
    for (const d of held) d.dispose();
  }
}

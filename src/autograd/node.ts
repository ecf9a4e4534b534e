// A node of the dynamic graph: the op that made a tensor, its inputs, the tensors its gradient rule
// needs (saved as graph-owned aliases, or remade from what they are a copy of: remake.ts; released right
// after backward), and the rule itself.
import type { Tensor } from '../tensor/tensor.js';
import { track } from '../tensor/scope.js';
import { SavedTensor } from './remake.js';

/** Gradients for each input; `needs[k]` says whether input k wants one (a rule may return null for the others). */
export type GradRule = (grad: Tensor, saved: readonly Tensor[], needs: readonly boolean[]) => readonly (Tensor | null)[];

export class GradNode {
  /** Nodes constructed in this process (tests check that no-grad code records none). */
  static created = 0;
  private savedTensors: SavedTensor[] | null;
  /**
   * Set on nodes whose single input's gradient is the output gradient placed in a region of zeros (slice):
   * adds g into that region of an accumulator of the input's shape, so the engine can sum several slices'
   * gradients in place (a chunk into 6 costs one zero-filled buffer, not 6 and 5 additions).
   */
  scatter?: (g: Tensor, into: Tensor) => void;
  constructor(
    readonly op: string,
    readonly inputs: readonly Tensor[],
    saved: readonly Tensor[],
    private readonly rule: GradRule,
  ) {
    this.savedTensors = saved.map((t) => new SavedTensor(t));
    GradNode.created++;
    track(this);
  }

  dispose(): void {
    this.release();
  }

  get released(): boolean {
    return this.savedTensors === null;
  }

  /** Gradients for each input (null where an input needs none). */
  apply(grad: Tensor): readonly (Tensor | null)[] {
    if (!this.savedTensors) {
      throw new Error(`backward: the graph through '${this.op}' was already freed (backward ran through it before, or its scope ended); recompute the forward pass`);
    }
    // called inside the backward's scope for this node, which frees what remaking made
    return this.rule(grad, this.savedTensors.map((s) => s.get()), this.inputs.map((t) => t.requiresGrad));
  }

  release(): void {
    if (!this.savedTensors) return;
    for (const t of this.savedTensors) t.dispose();
    this.savedTensors = null;
  }
}

// Saved tensors the backward remakes instead of keeping. Under autocast every matmul saves its bf16 copy
// of a float32 weight, for the gradient of its input: 2 bytes per parameter held from the forward to the
// backward (8.9 GiB of the 4.78B MMDiT's step, a fifth of its activations). The copy is a pure function of
// the weight, which lives anyway and does not change before the optimizer step, so a graph node keeps
// the weight and casts again when its gradient rule runs: one more cast per weight per backward, about
// 6 bytes of traffic per parameter (~7 ms of an H200's bandwidth for 4.78B parameters).
import type { Storage, Tensor } from '../tensor/tensor.js';
import { noGrad } from './grad-mode.js';

interface Recipe {
  source: Tensor;
  make: (source: Tensor) => Tensor;
}

// keyed by storage: an op may save a view (a transpose, a reshape) of the tensor that was registered
const recipes = new WeakMap<Storage, Recipe>();

/** Declare that `made` (a fresh, contiguous result) is make(source), recomputable as long as source lives unchanged. */
export function remakeable(made: Tensor, source: Tensor, make: (source: Tensor) => Tensor): Tensor {
  recipes.set(made.storage, { source, make });
  return made;
}

/** A saved tensor as a graph node holds it: its own alias, or the recipe's source and the view to take of a remake. */
export class SavedTensor {
  private readonly held: Tensor;
  private readonly make: ((source: Tensor) => Tensor) | null;
  private readonly geometry: readonly [readonly number[], readonly number[], number];

  constructor(t: Tensor) {
    const r = recipes.get(t.storage);
    this.make = r ? r.make : null;
    // aliases keep the storage alive for the backward even if the user disposes the originals
    this.held = r ? r.source.alias(r.source.shape, r.source.strides, r.source.offset, false) : t.alias(t.shape, t.strides, t.offset, false);
    this.geometry = [t.shape, t.strides, t.offset];
  }

  /** The tensor for the gradient rule; a remade one belongs to the caller's scope. */
  get(): Tensor {
    if (!this.make) return this.held;
    const made = noGrad(() => this.make!(this.held));
    return made.alias(...this.geometry);
  }

  dispose(): void {
    this.held.dispose();
  }
}

// Automatic mixed precision, as torch.autocast: inside autocast('bfloat16', fn) the matmul-like ops
// (matmul, and so linear; conv2d; attention) run in the low-precision dtype, the precision-sensitive ones
// (layer and group norm, softmax and log-softmax, the losses) in float32, and the rest follows type
// promotion. Parameters stay float32 (master weights; the optimizers keep float32 moments): the casts are
// ops, so gradients flow back to float32.
//
// A backend that computes in the low dtype (Backend.lowPrecision lists it: cuda) gets the inputs cast to it
// and returns low-precision outputs. Elsewhere (cpu, webgpu) the policy is emulated: the inputs and the
// outputs of those ops are rounded to the low dtype's precision but kept in float32, i.e. rounded exactly
// where the GPU would store bf16 — so the numerics of mixed precision are tested without a GPU.
import type { Backend } from '../backends/backend.js';
import { autocastDtype, withAutocast, type LowPrecision } from '../autograd/autocast-mode.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast } from './movement.js';
import { remakeable } from '../autograd/remake.js';

export type { LowPrecision };
export { autocastDtype };

/** Run fn under autocast in `dtype` ('float32' or null: off). Synchronous code only, like scope(). */
export function autocast<T>(dtype: LowPrecision | 'float32' | null, fn: () => T): T {
  return withAutocast(dtype, fn);
}

const native = (be: Backend, d: LowPrecision): boolean => !!be.lowPrecision?.includes(d);

// Storages of the low copies made here (on emulating backends: float32 tensors holding low-precision
// values), so an input that already is one is not copied again.
const lowered = new WeakSet<object>();

function lowCopy(be: Backend, d: LowPrecision, t: Tensor): Tensor {
  const toLow = (s: Tensor): Tensor => {
    const low = cast(s, d);
    const r = native(be, d) ? low : cast(low, 'float32');
    lowered.add(r.storage);
    return r;
  };
  // a weight's low copy is remade in the backward rather than saved (autograd/remake.ts)
  return t.requiresGrad && t.isLeaf ? remakeable(toLow(t), t, toLow) : toLow(t);
}

/** The inputs of a low-precision op under autocast (as given when autocast is off or they are not float32). */
export function lowInputs(be: Backend, ts: Tensor[]): Tensor[] {
  const d = autocastDtype();
  if (!d) return ts;
  return ts.map((t) => (t.dtype !== 'float32' || lowered.has(t.storage) ? t : lowCopy(be, d, t)));
}

/** A weight about to be viewed (transposed, reshaped) for a low-precision op: its low copy under autocast. */
export function lowWeight(be: Backend, w: Tensor): Tensor {
  const d = autocastDtype();
  return !d || w.dtype !== 'float32' ? w : lowCopy(be, d, w);
}

/** The output of a low-precision op under autocast: rounded to the low dtype on emulating backends. */
export function lowOutput(be: Backend, t: Tensor): Tensor {
  const d = autocastDtype();
  if (!d || t.dtype !== 'float32' || native(be, d)) return t;
  return cast(cast(t, d), 'float32');
}

/** The input of a float32 op under autocast: a low-precision tensor cast up (as given otherwise). */
export function fullInput(t: Tensor): Tensor {
  return autocastDtype() && (t.dtype === 'bfloat16' || t.dtype === 'float16') ? cast(t, 'float32') : t;
}

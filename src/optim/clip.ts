// Gradient clipping by global L2 norm, with torch.nn.utils.clip_grad_norm_ semantics (norm_type 2).
import { noGrad } from '../autograd/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { mul, square } from '../ops/elementwise.js';
import { cast, stack, toDevice } from '../ops/movement.js';
import { zeros } from '../ops/creation.js';
import { reshape } from '../ops/views.js';
import { sum } from '../ops/reduce.js';

/**
 * Clip the gradients of `params` in place so that their global L2 norm is at most `maxNorm`; returns the
 * total norm before clipping. Parameters whose grad is null are ignored (as torch does).
 *
 * Like torch: total = sqrt(sum over grads of ||g||^2); coef = maxNorm / (total + 1e-6); every grad is
 * multiplied by coef when coef < 1 (i.e. when total > maxNorm - 1e-6, which is "total > maxNorm" up to the
 * 1e-6 guard). Each grad's sum of squares is reduced on its device (float16/bfloat16 grads in float32),
 * the per-tensor sums are gathered into one vector and read once (one device synchronisation, not one per
 * parameter), and accumulated in float64 on the host. Each grad's temporaries are freed before the next
 * grad's are made, so clipping never holds a second copy of all gradients. A non-finite total is returned as is and
 * the grads are then scaled by a NaN/0 coefficient exactly as torch would (error_if_nonfinite=False).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be positive, got ${maxNorm}`);
  const grads: Tensor[] = [];
  for (const p of params) if (p.grad) grads.push(p.grad);
  if (grads.length === 0) return 0;
  return scope(() =>
    noGrad(() => {
      const acc = grads.some((g) => g.dtype === 'float64') ? 'float64' : 'float32';
      const wide = (g: Tensor) => (g.dtype === 'float16' || g.dtype === 'bfloat16' ? cast(g, 'float32') : g);
      let sq = 0;
      for (const v of perTensorSums(grads, acc, wide).toArray()) sq += v;
      const total = Math.sqrt(sq);
      const coef = maxNorm / (total + 1e-6);
      // float16/bfloat16 scaled in float32 (the cpu backend only stores them) and rounded back on assign
      const half = (g: Tensor) => g.dtype === 'float16' || g.dtype === 'bfloat16';
      if (!(coef >= 1)) for (const g of grads) scope(() => g.assign(mul(half(g) ? cast(g, 'float32') : g, coef)));
      return total;
    }),
  );
}

/**
 * Each grad's sum of squares in one vector on the grads' device. Where they share a device and the sums are
 * float32, each reduction writes its slot of the vector (no per-tensor result to gather: one launch fewer
 * per parameter, 331 for the 4.78B MMDiT); otherwise the per-tensor sums are stacked on the first grad's device.
 */
function perTensorSums(grads: readonly Tensor[], acc: 'float32' | 'float64', wide: (g: Tensor) => Tensor): Tensor {
  const device = grads[0]!.device;
  if (acc === 'float32' && grads.every((g) => g.device === device)) {
    const sums = zeros([grads.length], { device });
    grads.forEach((g, i) => scope(() => {
      const sq = square(wide(g));
      const x = sq.ndim === 0 ? reshape(sq, [1]) : sq;
      const ones = x.shape.map(() => 1);
      x.backend.reduce('sum', x.view('clipGradNorm'), [...ones.keys()], { buf: sums.storage.buf, shape: ones, strides: ones, offset: i });
    }));
    return sums;
  }
  // parameters on several devices: each sum comes to the first one's (a read per tensor; rare)
  return stack(grads.map((g) => scope(() => {
    const s = sum(square(wide(g)));
    return toDevice(s.dtype === acc ? s : cast(s, acc), device);
  })));
}

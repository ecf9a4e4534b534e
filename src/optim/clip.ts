// Gradient clipping by global L2 norm, with torch.nn.utils.clip_grad_norm_ semantics (norm_type 2).
import { noGrad } from '../autograd/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { mul, square } from '../ops/elementwise.js';
import { cast, stack } from '../ops/movement.js';
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
      const sums = grads.map((g) => scope(() => {
        const wide = g.dtype === 'float16' || g.dtype === 'bfloat16' ? cast(g, 'float32') : g;
        const s = sum(square(wide));
        return s.dtype === acc ? s : cast(s, acc);
      }));
      let sq = 0;
      for (const v of stack(sums).toArray()) sq += v;
      const total = Math.sqrt(sq);
      const coef = maxNorm / (total + 1e-6);
      // float16/bfloat16 scaled in float32 (the cpu backend only stores them) and rounded back on assign
      const half = (g: Tensor) => g.dtype === 'float16' || g.dtype === 'bfloat16';
      if (!(coef >= 1)) for (const g of grads) scope(() => g.assign(mul(half(g) ? cast(g, 'float32') : g, coef)));
      return total;
    }),
  );
}

// Gradient clipping by global L2 norm, with torch.nn.utils.clip_grad_norm_ semantics (norm_type 2).
import { noGrad } from '../autograd/grad-mode.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { mul, square } from '../ops/elementwise.js';
import { cast } from '../ops/movement.js';
import { sum } from '../ops/reduce.js';

/**
 * Clip the gradients of `params` in place so that their global L2 norm is at most `maxNorm`; returns the
 * total norm before clipping. Parameters whose grad is null are ignored (as torch does).
 *
 * Like torch: total = sqrt(sum over grads of ||g||^2); coef = maxNorm / (total + 1e-6); every grad is
 * multiplied by coef when coef < 1 (i.e. when total > maxNorm - 1e-6, which is "total > maxNorm" up to the
 * 1e-6 guard). Each grad's sum of squares is reduced on its device (float16/bfloat16 grads in float32) and
 * the per-tensor sums are accumulated in float64 on the host. A non-finite total is returned as is and
 * the grads are then scaled by a NaN/0 coefficient exactly as torch would (error_if_nonfinite=False).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be positive, got ${maxNorm}`);
  const grads: Tensor[] = [];
  for (const p of params) if (p.grad) grads.push(p.grad);
  if (grads.length === 0) return 0;
  return scope(() =>
    noGrad(() => {
      let sq = 0;
      // float16/bfloat16 in float32 (the cpu backend only stores them), scaled there and rounded back on assign
      const wide = grads.map((g) => (g.dtype === 'float16' || g.dtype === 'bfloat16' ? cast(g, 'float32') : g));
      for (const w of wide) sq += sum(square(w)).item();
      const total = Math.sqrt(sq);
      const coef = maxNorm / (total + 1e-6);
      if (!(coef >= 1)) grads.forEach((g, i) => g.assign(mul(wide[i]!, coef)));
      return total;
    }),
  );
}

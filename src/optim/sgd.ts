// Stochastic gradient descent with optional momentum, updating parameters in place:
//   g = g + wd * p;  buf = buf * momentum + g (momentum > 0; buf starts at zero);  p = p - lr * buf (or g).
// A backend with a fused step (Backend.fused.sgd) updates all parameters in one call; otherwise the step
// runs as primitive ops with the scalars as kernel arguments.
import { noGrad } from '../autograd/grad-mode.js';
import { keep, scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { zerosLike } from '../ops/creation.js';
import { add, mul, sub } from '../ops/elementwise.js';
import { byBackend } from './adamw.js';

export interface SgdOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
}

export class SGD {
  private velocity = new Map<Tensor, Tensor>();
  constructor(readonly params: readonly Tensor[], readonly opts: SgdOptions) {
    if (!(opts.lr > 0)) throw new Error(`SGD: lr must be positive, got ${opts.lr}`);
  }

  step(): void {
    const { lr, momentum = 0, weightDecay = 0 } = this.opts;
    scope(() => noGrad(() => {
      const todo = this.params.filter((p) => p.grad);
      for (const [be, ps] of byBackend(todo)) {
        const bufs = ps.map((p) => (momentum ? this.buffer(p) : null));
        const entries = ps.map((p, i) => ({ p: p.view('SGD.step'), g: p.grad!.view('SGD.step'), buf: bufs[i]?.view() ?? null }));
        if (be.fused.sgd && ps.every((p) => p.grad!.dtype === p.dtype) && be.fused.sgd(entries, { lr, momentum, weightDecay })) continue;
        ps.forEach((p, i) => {
          let g = weightDecay ? add(p.grad!, mul(p, weightDecay)) : p.grad!;
          const v = bufs[i];
          if (v) {
            v.assign(add(mul(v, momentum), g));
            g = v;
          }
          p.assign(sub(p, mul(g, lr)));
        });
      }
    }));
  }

  private buffer(p: Tensor): Tensor {
    let v = this.velocity.get(p);
    if (!v) this.velocity.set(p, (v = keep(zerosLike(p))));
    return v;
  }

  zeroGrad(): void {
    for (const p of this.params) p.setGrad(null);
  }
}

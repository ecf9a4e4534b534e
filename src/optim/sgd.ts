// Stochastic gradient descent with optional momentum, updating parameters in place.
import { noGrad } from '../autograd/grad-mode.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { zerosLike } from '../ops/creation.js';
import { add, mul, sub } from '../ops/elementwise.js';

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
    noGrad(() => {
      for (const p of this.params) {
        if (!p.grad) continue;
        let g = weightDecay ? add(p.grad, mul(p, weightDecay)) : p.grad;
        if (momentum) {
          let v = this.velocity.get(p);
          if (!v) this.velocity.set(p, (v = keep(zerosLike(p))));
          v.assign(add(mul(v, momentum), g));
          g = v;
        }
        p.assign(sub(p, mul(g, lr)));
      }
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.setGrad(null);
  }
}

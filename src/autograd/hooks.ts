// Gradient-ready hooks (torch's register_post_accumulate_grad_hook): fn(t) runs during backward() right
// after a leaf's gradient for that pass has been accumulated into t.grad, i.e. when no later rule of the
// pass can add to it. Data parallelism uses them to start reducing a bucket of gradients while the rest
// of the backward still runs. Hooks run with gradients disabled and must not start a backward themselves.
import type { Tensor } from '../tensor/tensor.js';

type Hook = (t: Tensor) => void;
const hooks = new WeakMap<Tensor, Hook[]>();

/** Call fn(t) each time a backward pass has finished accumulating t's gradient. Returns a remover. */
export function onGradReady(t: Tensor, fn: Hook): () => void {
  if (t.gradFn) throw new Error(`onGradReady: ${t.describe()} is not a leaf (only leaves accumulate a .grad)`);
  let list = hooks.get(t);
  if (!list) hooks.set(t, (list = []));
  list.push(fn);
  return () => {
    const l = hooks.get(t);
    const i = l ? l.indexOf(fn) : -1;
    if (i >= 0) l!.splice(i, 1);
  };
}

/** Run t's hooks (called by backward). */
export function gradReady(t: Tensor): void {
  const list = hooks.get(t);
  if (list) for (const fn of [...list]) fn(t);
}

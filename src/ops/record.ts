// Shared plumbing for op definitions: input checks (alive, same device), output allocation, and
// recording the gradient rule when grad mode is on and an input requires grad.
import type { Backend } from '../backends/backend.js';
import { getBackend, getDefaultDevice } from '../backends/registry.js';
import { GradNode, type GradRule } from '../autograd/node.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import type { DType } from '../tensor/dtype.js';
import { emptyTensor, type Tensor } from '../tensor/tensor.js';

/** The backend all inputs live on; throws naming the op and the devices when they differ. */
export function backendOf(op: string, ...ts: Tensor[]): Backend {
  for (const t of ts) t.assertAlive(op);
  const first = ts[0]!;
  for (const t of ts) {
    if (t.device !== first.device) {
      throw new Error(`${op}: expected all tensors on one device, got ${ts.map((x) => x.describe()).join(', ')}; move them with .to(device)`);
    }
  }
  return first.backend;
}

export function empty(backend: Backend, shape: readonly number[], dtype: DType): Tensor {
  return emptyTensor(backend, shape, dtype);
}

export function deviceBackend(device?: string): Backend {
  return getBackend(device ?? getDefaultDevice());
}

export function needsGrad(inputs: readonly Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
}

/** Attach a gradient rule to `out` (when needed) and return it. `saved` are handed back to the rule. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], saved: readonly Tensor[], rule: GradRule): Tensor {
  if (!needsGrad(inputs)) return out;
  out.requiresGrad = true;
  out.gradFn = new GradNode(op, inputs, saved, rule);
  return out;
}

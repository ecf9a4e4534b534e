// The memory of one micro-batch's forward and backward, run exactly as the training loop runs it (the
// plain backward, or block by block with or without recomputation), measured from the device's live
// bytes: on the cpu to measure, on the meta device to predict without allocating anything (`lavender
// info`). The meta device is told to take the same kernel paths as the device it stands for, so the
// trace allocates what that device would.
import { getBackend } from '../backends/registry.js';
import { mirrorFusedKernels } from '../backends/meta/index.js';
import { flowInputs } from '../flow/rectified-flow.js';
import { mean } from '../ops/reduce.js';
import { square, sub } from '../ops/elementwise.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { blockwiseForwardBackward } from './blockwise.js';
import { runSync } from './coroutine.js';
import type { TrainableModel } from './loop.js';

export interface StepMemory {
  /** The most bytes live during the forward and backward, above what was live before. */
  peakBytes: number;
  /** Bytes of the parameter gradients left after the backward (float32, as the backward allocates them). */
  gradientBytes: number;
  /** peakBytes - gradientBytes: what the forward keeps for the backward and the backward's temporaries. */
  activationBytes: number;
}

export interface StepMemoryOptions {
  /** Recompute each block in the backward (--checkpoint-activations). */
  checkpoint?: boolean;
  /** Run block by block without recomputation (as ZeRO-3 does); implied by checkpoint. */
  blockwise?: boolean;
  /** On the meta device: the device whose kernel paths the trace takes (default 'cpu'). */
  as?: string;
}

/**
 * One forward and backward of `model` on `x`/`cond` with the rectified-flow loss's operations. The device
 * (the model's) must count live bytes (cpu, meta); parameter gradients are left in .grad.
 */
export function measureStepMemory<C>(model: TrainableModel<C>, x: Tensor, cond: C, o: StepMemoryOptions = {}): StepMemory {
  const device = x.device;
  const be = getBackend(device);
  if (!be.liveBytes || !be.peakBytes || !be.resetPeakBytes) throw new Error(`measureStepMemory: the ${device} backend does not count live bytes (use cpu or meta)`);
  if (be.dataless) {
    const as = getBackend(o.as ?? 'cpu');
    mirrorFusedKernels(Object.keys(as.fused), as.lowPrecision);
  }
  model.zeroGrad();
  const generator = new Generator(0);
  const before = be.liveBytes();
  be.resetPeakBytes();
  // the loss's tensor operations as flowObjective does them (its host copies aside)
  const head = (v: Tensor, xx: Tensor, z1: Tensor) => {
    const perSample = mean(square(sub(sub(z1, xx), v)), [...Array(xx.ndim - 1).keys()].map((i) => i + 1));
    return mean(perSample);
  };
  if (!o.checkpoint && !o.blockwise) {
    scope(() => {
      const { t, z1, xt } = flowInputs(x, { generator });
      head(model.forward(xt, t, cond), x, z1).backward();
    });
  } else {
    const inp = scope(() => flowInputs(x, { generator }));
    try {
      runSync(blockwiseForwardBackward(model.plan(inp.xt, inp.t, cond), (v) => head(v, x, inp.z1), { checkpoint: !!o.checkpoint, units: { gather() {}, release() {} } }), 'measureStepMemory');
    } finally {
      for (const t of Object.values(inp)) t.dispose();
    }
  }
  const peakBytes = be.peakBytes() - before;
  const gradientBytes = model.parameters().reduce((s, p) => s + (p.grad ? p.grad.size * 4 : 0), 0);
  return { peakBytes, gradientBytes, activationBytes: peakBytes - gradientBytes };
}

// Rectified flow (spec "Rectified flow"): time sampling, the velocity-matching loss with per-sample values
// binned by t, and the Euler sampler with classifier-free guidance.
import type { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { rand, randn, tensor } from '../ops/creation.js';
import { add, erfinv, mul, sigmoid, square, sub } from '../ops/elementwise.js';
import { cat, split } from '../ops/movement.js';
import { mean } from '../ops/reduce.js';
import { reshape } from '../ops/views.js';
import { noGrad } from '../autograd/grad-mode.js';
import { scope } from '../tensor/scope.js';

export type TimeSampling = 'logit-normal' | 'stratified' | 'uniform';

/** t in (0, 1) for a batch of B: sigmoid(N(0,1)) by default. */
export function sampleTime(B: number, kind: TimeSampling, generator: Generator, device?: string): Tensor {
  switch (kind) {
    case 'logit-normal':
      return sigmoid(randn([B], { generator, device }));
    case 'uniform':
      return rand([B], { generator, device });
    case 'stratified': {
      // u_i = (i + U_i) / B, n = sqrt(2) erfinv(2u - 1), t = sigmoid(n)
      const u = mul(add(rand([B], { generator, device }), tensor(Array.from({ length: B }, (_, i) => i), { device })), 1 / B);
      return sigmoid(mul(erfinv(sub(mul(u, 2), 1)), Math.SQRT2));
    }
    default:
      throw new Error(`sampleTime: unknown time sampling '${kind as string}' (logit-normal, stratified, uniform)`);
  }
}

export type VelocityModel<C> = (x: Tensor, t: Tensor, cond: C) => Tensor;

export interface FlowLoss {
  /** Mean over all elements of (z1 - x - v)^2: the training loss (differentiable). */
  loss: Tensor;
  /** Per-sample losses and their times, detached, for binning. */
  perSample: number[];
  t: number[];
}

/** The noisy inputs of one rectified-flow step: t, the noise z1 and x_t = (1 - t) x + t z1. */
export function flowInputs(x: Tensor, opts: { timeSampling?: TimeSampling; generator: Generator }): { t: Tensor; z1: Tensor; xt: Tensor } {
  const B = x.shape[0]!;
  const t = sampleTime(B, opts.timeSampling ?? 'logit-normal', opts.generator, x.device);
  const z1 = randn(x.shape, { generator: opts.generator, device: x.device, dtype: x.dtype });
  const texp = reshape(t, [B, ...x.shape.slice(1).map(() => 1)]);
  const xt = add(mul(sub(1, texp), x), mul(texp, z1));
  return { t, z1, xt };
}

/** The loss of a predicted velocity v against the target z1 - x (inputs from flowInputs). */
export function flowObjective(v: Tensor, x: Tensor, z1: Tensor, t: Tensor): FlowLoss {
  const err = square(sub(sub(z1, x), v));
  const perSampleT = mean(err, [...Array(x.ndim - 1).keys()].map((i) => i + 1));
  const loss = mean(perSampleT);
  return { loss, perSample: Array.from(perSampleT.toArray()), t: Array.from(t.toArray()) };
}

/** One rectified-flow loss evaluation: x_t = (1 - t) x + t z1, target velocity z1 - x. */
export function flowLoss<C>(model: VelocityModel<C>, x: Tensor, cond: C, opts: { timeSampling?: TimeSampling; generator: Generator }): FlowLoss {
  const { t, z1, xt } = flowInputs(x, opts);
  return flowObjective(model(xt, t, cond), x, z1, t);
}

/** Mean loss per t-bin ([0, 0.1), [0.1, 0.2), ...); NaN for an empty bin. */
export function binLosses(t: readonly number[], losses: readonly number[], bins = 10): number[] {
  const sum = new Array<number>(bins).fill(0), count = new Array<number>(bins).fill(0);
  t.forEach((tv, i) => {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(tv * bins)));
    sum[b]! += losses[i]!;
    count[b]!++;
  });
  return sum.map((s, b) => (count[b] ? s / count[b]! : NaN));
}

export interface SampleOptions<C> {
  steps?: number;
  /** Guidance scale; used when nullCond is given. */
  cfg?: number;
  nullCond?: C;
  /** Join cond and nullCond batches into one forward of 2B (same numbers, one model call per step). */
  concatConds?: (a: C, b: C) => C;
  /** Called with z after every step (for the trajectory GIF). */
  onStep?: (z: Tensor, i: number) => void;
}

/** Euler integration from noise z at t = 1 to data at t = 0: z <- z - dt * v(z, t). */
export function sampleEuler<C>(model: VelocityModel<C>, z: Tensor, cond: C, opts: SampleOptions<C> = {}): Tensor {
  const steps = opts.steps ?? 50;
  if (!Number.isInteger(steps) || steps <= 0) throw new Error(`sampleEuler: steps must be a positive integer, got ${steps}`);
  const B = z.shape[0]!;
  const cfg = opts.cfg ?? 2;
  return noGrad(() => {
    let cur = z.alias();
    for (let i = steps; i >= 1; i--) {
      cur = scope(() => {
        const t = tensor(new Array(B).fill(i / steps), { device: z.device, dtype: z.dtype });
        let v: Tensor;
        if (opts.nullCond !== undefined && opts.concatConds) {
          const both = model(cat([cur, cur], 0), cat([t, t], 0), opts.concatConds(cond, opts.nullCond));
          const [vc, vu] = split(both, B, 0) as [Tensor, Tensor];
          v = add(vu, mul(sub(vc, vu), cfg));
        } else if (opts.nullCond !== undefined) {
          const vc = model(cur, t, cond), vu = model(cur, t, opts.nullCond);
          v = add(vu, mul(sub(vc, vu), cfg));
        } else {
          v = model(cur, t, cond);
        }
        const next = sub(cur, mul(v, 1 / steps));
        cur.dispose();
        return next;
      });
      opts.onStep?.(cur, steps - i + 1);
    }
    return cur;
  });
}

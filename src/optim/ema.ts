// Power-function EMA of the weights (Karras et al., EDM2), as in the LavenderFlow release.
//
// At training step k (1-based), the per-step decay is beta_k = (1 - 1/k)^(1 + gamma): the average then
// weights the whole history like t^gamma, so it never depends on a fixed half-life and step 1 copies
// the weights (beta_1 = 0). When the average is only updated every s steps, one update stands in for s
// per-step ones with the first-order correction beta_s = max(0, 1 - (1 - beta_k) * s), and then
//   ema = beta_s * ema + (1 - beta_s) * param.
// The averages are float32 copies whatever the parameters' dtype, allocated once and updated in place.
// They live on the parameters' device, or on another one (`device: 'cpu'`: host memory, so a GPU holds
// the model and optimizer while the EMAs, as large as the float32 weights each, stay off it). Then each
// update copies the parameters over one tensor at a time (at most one parameter's copy exists at once) and
// applies the same arithmetic there; the transfer is paid only every `every` steps.
import { noGrad } from '../autograd/grad-mode.js';
import { keep, scope } from '../tensor/scope.js';
import { shapeStr } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, mul } from '../ops/elementwise.js';
import { cast, toDevice } from '../ops/movement.js';

export interface PowerEmaOptions {
  /** Power-function exponent (EDM2's gamma, e.g. 6.94 for sigma_rel 0.10; larger averages over less). */
  gamma: number;
  /** Update every `every` steps (default 1). */
  every?: number;
  /** Update at steps where step % every === at % every (default 0). The release updates at step % 16 === 1. */
  at?: number;
  /** Where the averages live (default: each parameter's own device); e.g. 'cpu' to keep them in host memory. */
  device?: string;
}

export interface PowerEmaStateDict {
  gamma: number;
  every: number;
  /** Training step of the last applied update (0 before any). */
  lastStep: number;
  /** One float32 average per parameter, in order. */
  ema: Tensor[];
}

/** The decay used by an update at training step `step` (1-based) of an EMA applied every `every` steps. */
export function powerEmaBeta(step: number, gamma: number, every = 1): number {
  if (!(Number.isInteger(step) && step >= 1)) throw new Error(`powerEmaBeta: step must be an integer >= 1 (1-based), got ${step}`);
  const beta = (1 - 1 / step) ** (1 + gamma);
  return Math.max(0, 1 - (1 - beta) * every);
}

export class PowerEma {
  readonly gamma: number;
  readonly every: number;
  readonly at: number;
  /** The float32 averages, one per parameter (owned by this object). */
  readonly ema: Tensor[];
  lastStep = 0;

  constructor(readonly params: readonly Tensor[], opts: PowerEmaOptions) {
    if (!(Number.isFinite(opts?.gamma) && opts.gamma > -1)) throw new Error(`PowerEma: gamma must be a finite number > -1, got ${opts?.gamma}`);
    const every = opts.every ?? 1;
    if (!(Number.isInteger(every) && every >= 1)) throw new Error(`PowerEma: every must be an integer >= 1, got ${every}`);
    this.gamma = opts.gamma;
    this.every = every;
    this.at = opts.at ?? 0;
    if (!(Number.isInteger(this.at) && this.at >= 0)) throw new Error(`PowerEma: at must be a non-negative integer, got ${opts.at}`);
    this.ema = [];
    try {
      // one parameter at a time: its float32 copy on the averages' device, nothing else kept
      for (const p of params) this.ema.push(scope(() => noGrad(() => keep(this.float32Copy(p, opts.device ?? p.device)))));
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** A new float32 tensor on `device` holding p's values (moved first, then cast there). */
  private float32Copy(p: Tensor, device: string): Tensor {
    const moved = p.device === device ? p : toDevice(p, device);
    if (moved.dtype !== 'float32') return cast(moved, 'float32');
    return moved === p ? p.clone() : moved;
  }

  /**
   * Call after optimizer step number `step` (1-based: the count of optimizer steps taken so far). The
   * average is updated when step % every === at % every (other calls do nothing); returns whether it was.
   */
  update(step: number): boolean {
    if (!(Number.isInteger(step) && step >= 1)) throw new Error(`PowerEma.update: step must be an integer >= 1 (1-based), got ${step}`);
    if (step % this.every !== this.at % this.every) return false;
    const b = powerEmaBeta(step, this.gamma, this.every);
    // a scope per parameter: its temporaries (and its copy on the averages' device) are freed before the next
    for (const [i, p] of this.params.entries()) {
      const e = this.ema[i]!;
      scope(() =>
        noGrad(() => {
          const moved = toDevice(p, e.device); // a view of p on its own device
          const p32 = moved.dtype === 'float32' ? moved : cast(moved, 'float32');
          e.assign(add(mul(e, b), mul(p32, 1 - b)));
        }),
      );
    }
    this.lastStep = step;
    return true;
  }

  /** Copy the averages into `params` (default: the tracked parameters), converting to their dtypes. */
  copyTo(params: readonly Tensor[] = this.params): void {
    this.checkLike('PowerEma.copyTo', params.length, (i) => params[i]!.shape, 'target');
    for (const [i, p] of params.entries()) {
      const e = this.ema[i]!;
      scope(() => noGrad(() => p.assign(toDevice(e, p.device))));
    }
  }

  /** The state; the ema tensors are this object's own buffers (read or clone them, do not dispose). */
  stateDict(): PowerEmaStateDict {
    return { gamma: this.gamma, every: this.every, lastStep: this.lastStep, ema: [...this.ema] };
  }

  /** Copy saved averages in (counts and shapes are checked first); gamma and every must match. */
  loadStateDict(sd: PowerEmaStateDict): void {
    const op = 'PowerEma.loadStateDict';
    if (!sd || !Array.isArray(sd.ema)) throw new Error(`${op}: expected {gamma, every, lastStep, ema: Tensor[]}`);
    if (sd.gamma !== this.gamma || sd.every !== this.every) {
      throw new Error(`${op}: saved gamma=${sd.gamma}, every=${sd.every} but this EMA has gamma=${this.gamma}, every=${this.every}`);
    }
    if (!(Number.isInteger(sd.lastStep) && sd.lastStep >= 0)) throw new Error(`${op}: lastStep must be an integer >= 0, got ${sd.lastStep}`);
    this.checkLike(op, sd.ema.length, (i) => sd.ema[i]!.shape, 'saved ema');
    for (const [i, e] of this.ema.entries()) {
      const src = sd.ema[i]!;
      scope(() => noGrad(() => e.assign(toDevice(src, e.device))));
    }
    this.lastStep = sd.lastStep;
  }

  /** Free the averages. */
  dispose(): void {
    for (const e of this.ema) e.dispose();
  }

  private checkLike(op: string, n: number, shapeOf: (i: number) => readonly number[], what: string): void {
    if (n !== this.ema.length) throw new Error(`${op}: got ${n} ${what} tensor(s), this EMA tracks ${this.ema.length}`);
    for (let i = 0; i < n; i++) {
      const s = shapeOf(i), want = this.ema[i]!.shape;
      if (s.length !== want.length || s.some((d, k) => d !== want[k])) {
        throw new Error(`${op}: parameter ${i}${this.params[i]?.name ? ` '${this.params[i]!.name}'` : ''}: ${what} has shape ${shapeStr(s)}, the average has shape ${shapeStr(want)}`);
      }
    }
  }
}

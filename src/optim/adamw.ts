// Adam and AdamW with parameter groups, matching torch.optim.Adam / torch.optim.AdamW (single-tensor path,
// amsgrad=False, maximize=False) operation for operation:
//
//   step_t += 1                                         (per parameter; parameters whose grad is null are skipped)
//   AdamW: p = p * (1 - lr * wd)                        (decoupled decay, before the Adam update)
//   Adam:  g = g + wd * p                               (L2 penalty folded into the gradient)
//   m = m * beta1 + (1 - beta1) * g
//   v = v * beta2 + (1 - beta2) * g * g
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps           (eps added after the bias-corrected sqrt)
//   p = p + (-lr / (1 - beta1^t)) * m / denom
//
// Each group keeps a base `lr`; the lr actually used is `group.lr * lrScale`, where lrScale is set by a
// scheduler (WarmupScheduler in schedule.ts). Per-group rules (muP width scaling) therefore compose with
// warm-up: a group at base lr 1e-3/width still warms up from the same fraction as every other group.
//
// Memory: the moments m and v are allocated once per parameter (on its first step with a gradient, like
// torch), taken out of every scope with keep(), and updated in place with assign(). Every temporary of a
// step lives inside the step's scope(), so live buffers stay flat over any number of steps.
//
// Speed: a backend with a fused step (Backend.fused.adamw) updates a whole group in one call; otherwise
// (or when it declines) the step runs as the primitive ops above, with the scalars as kernel arguments.
import type { Backend } from '../backends/backend.js';
import { noGrad } from '../autograd/grad-mode.js';
import { isFloat } from '../tensor/dtype.js';
import { keep, scope } from '../tensor/scope.js';
import { shapeStr } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { zerosLike } from '../ops/creation.js';
import { add, div, mul, sqrt } from '../ops/elementwise.js';
import { toDevice } from '../ops/movement.js';

/** Parameters that share hyperparameters; unset fields take the optimizer's defaults. */
export interface ParamGroup {
  params: Tensor[];
  /** Base learning rate of the group (multiplied by the optimizer's lrScale). */
  lr?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** A label used in error messages. */
  name?: string;
}

/** Defaults for every group; lr is required. */
export interface AdamWOptions {
  lr: number;
  /** [beta1, beta2]; default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Default 0.01 for AdamW (decoupled) and 0 for Adam (L2), as torch. */
  weightDecay?: number;
}

/** A group with every hyperparameter resolved. lr, weightDecay, betas and eps may be changed between steps. */
export interface ResolvedParamGroup {
  readonly params: readonly Tensor[];
  lr: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  readonly name?: string;
}

/** The optimizer state of one parameter. */
export interface AdamParamState {
  /** Number of updates this parameter has received (torch's per-parameter `step`). */
  step: number;
  /** First moment (torch's exp_avg). */
  m: Tensor;
  /** Second moment (torch's exp_avg_sq). */
  v: Tensor;
}

export interface AdamStateDict {
  /** Number of step() calls on the optimizer. */
  step: number;
  /** The scheduler's multiplier at save time; optional when loading (kept as is when absent). */
  lrScale?: number;
  /** Hyperparameters per group; numParams (the group's size) is checked on load when present. */
  groups: { lr: number; weightDecay: number; betas: [number, number]; eps: number; name?: string; numParams?: number }[];
  /** Per parameter, in group order (group 0's parameters, then group 1's, ...). */
  state: AdamParamState[];
}

function checkHyper(where: string, g: { lr: number; weightDecay: number; betas: [number, number]; eps: number }): void {
  if (!(Number.isFinite(g.lr) && g.lr >= 0)) throw new Error(`${where}: lr must be a finite number >= 0, got ${g.lr}`);
  if (!(Number.isFinite(g.weightDecay) && g.weightDecay >= 0)) throw new Error(`${where}: weightDecay must be a finite number >= 0, got ${g.weightDecay}`);
  if (!Array.isArray(g.betas) || g.betas.length !== 2) throw new Error(`${where}: betas must be a pair [beta1, beta2], got ${JSON.stringify(g.betas)}`);
  for (const [i, b] of g.betas.entries()) {
    if (!(b >= 0 && b < 1)) throw new Error(`${where}: betas[${i}] must be in [0, 1), got ${b}`);
  }
  if (!(Number.isFinite(g.eps) && g.eps >= 0)) throw new Error(`${where}: eps must be a finite number >= 0, got ${g.eps}`);
}

/** Shared Adam/AdamW implementation (construct AdamW or Adam); usable as the common type of both. */
export class AdamBase {
  readonly paramGroups: ResolvedParamGroup[];
  private readonly state = new Map<Tensor, AdamParamState>();
  private steps = 0;
  private scale = 1;

  protected constructor(
    groups: readonly ParamGroup[] | readonly Tensor[],
    defaults: AdamWOptions,
    private readonly decoupled: boolean,
    private readonly kind: 'Adam' | 'AdamW',
  ) {
    const defaultWeightDecay = decoupled ? 0.01 : 0;
    const list: readonly ParamGroup[] = groups.length > 0 && isTensor(groups[0]) ? [{ params: [...(groups as readonly Tensor[])] }] : (groups as readonly ParamGroup[]);
    const seen = new Map<Tensor, string>();
    this.paramGroups = list.map((g, gi) => {
      const where = `${kind}: group ${gi}${g.name ? ` '${g.name}'` : ''}`;
      if (!g || !Array.isArray(g.params)) throw new Error(`${where}: expected {params: Tensor[], ...} or a list of tensors`);
      const resolved: ResolvedParamGroup = {
        params: [...g.params],
        lr: g.lr ?? defaults.lr,
        weightDecay: g.weightDecay ?? defaults.weightDecay ?? defaultWeightDecay,
        betas: [...(g.betas ?? defaults.betas ?? [0.9, 0.999])] as [number, number],
        eps: g.eps ?? defaults.eps ?? 1e-8,
        name: g.name,
      };
      checkHyper(where, resolved);
      for (const [pi, p] of resolved.params.entries()) {
        if (!isTensor(p)) throw new Error(`${where}: params[${pi}] is not a tensor`);
        if (!isFloat(p.dtype)) throw new Error(`${where}: params[${pi}] must be floating point, got ${p.describe()}`);
        const prev = seen.get(p);
        if (prev) throw new Error(`${where}: params[${pi}] (${p.describe()}) also appears in ${prev}; a parameter may belong to one group only`);
        seen.set(p, `group ${gi} params[${pi}]`);
      }
      return resolved;
    });
    if (seen.size === 0) throw new Error(`${kind}: got an empty parameter list`);
  }

  /** The multiplier a scheduler applies to every group's base lr. */
  get lrScale(): number {
    return this.scale;
  }
  setLrScale(s: number): void {
    if (!(Number.isFinite(s) && s >= 0)) throw new Error(`${this.kind}.setLrScale: scale must be a finite number >= 0, got ${s}`);
    this.scale = s;
  }
  /** The lr group `i` uses on the next step: its base lr times lrScale. */
  effectiveLr(i: number): number {
    const g = this.paramGroups[i];
    if (!g) throw new Error(`${this.kind}.effectiveLr: no group ${i} (there are ${this.paramGroups.length})`);
    return g.lr * this.scale;
  }
  /** Number of step() calls so far. */
  get stepCount(): number {
    return this.steps;
  }
  /** Every parameter, in group order. */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((g) => [...g.params]);
  }

  step(): void {
    this.steps++;
    scope(() =>
      noGrad(() => {
        for (const group of this.paramGroups) {
          const lr = group.lr * this.scale;
          const { weightDecay: wd, eps } = group;
          const [beta1, beta2] = group.betas;
          const todo: Tensor[] = [];
          for (const p of group.params) {
            if (!p.grad) continue;
            p.assertAlive(`${this.kind}.step`);
            this.stateOf(p).step++;
            todo.push(p);
          }
          for (const [be, ps] of byBackend(todo)) {
            const hp = { lr, beta1, beta2, eps, weightDecay: wd, decoupled: this.decoupled };
            const entries = ps.map((p) => {
              const st = this.stateOf(p);
              return { p: p.view(), g: p.grad!.view(), m: st.m.view(), v: st.v.view(), step: st.step };
            });
            if (be.fused.adamw && entries.every((e, i) => e.g.buf.dtype === ps[i]!.dtype) && be.fused.adamw(entries, hp)) continue;
            for (const p of ps) this.composedStep(p, lr, wd, eps, beta1, beta2);
          }
        }
      }),
    );
  }

  /** One parameter's step as primitive ops (the definition the fused kernels reproduce). */
  private composedStep(p: Tensor, lr: number, wd: number, eps: number, beta1: number, beta2: number): void {
    const st = this.stateOf(p);
    let g: Tensor = p.grad!;
    if (wd !== 0) {
      if (this.decoupled) p.assign(mul(p, 1 - lr * wd));
      else g = add(g, mul(p, wd));
    }
    st.m.assign(add(mul(st.m, beta1), mul(g, 1 - beta1)));
    st.v.assign(add(mul(st.v, beta2), mul(mul(g, 1 - beta2), g)));
    const biasCorrection1 = 1 - beta1 ** st.step;
    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** st.step);
    const stepSize = lr / biasCorrection1;
    const denom = add(div(sqrt(st.v), biasCorrection2Sqrt), eps);
    p.assign(add(p, div(mul(st.m, -stepSize), denom)));
  }

  /** Clear every parameter's gradient (set it to null, disposing it). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.setGrad(null);
  }

  /** Allocate every parameter's moments now, as the first step() would (planners measure them before training). */
  allocateState(): void {
    for (const g of this.paramGroups) for (const p of g.params) this.stateOf(p);
  }

  private stateOf(p: Tensor): AdamParamState {
    let st = this.state.get(p);
    if (!st) {
      st = { step: 0, m: keep(zerosLike(p)), v: keep(zerosLike(p)) };
      this.state.set(p, st);
    }
    return st;
  }

  /**
   * The optimizer's state. The m and v tensors are the optimizer's own buffers (not copies, as in torch):
   * do not dispose them, and read or clone them before the next step() if a snapshot is needed.
   * Parameters that have not been stepped yet get zero moments with step 0 (equivalent to fresh state).
   */
  stateDict(): AdamStateDict {
    return {
      step: this.steps,
      lrScale: this.scale,
      groups: this.paramGroups.map((g) => ({
        lr: g.lr, weightDecay: g.weightDecay, betas: [g.betas[0], g.betas[1]], eps: g.eps,
        ...(g.name !== undefined ? { name: g.name } : {}), numParams: g.params.length,
      })),
      state: this.paramGroups.flatMap((g) => g.params.map((p) => {
        const st = this.stateOf(p);
        return { step: st.step, m: st.m, v: st.v };
      })),
    };
  }

  /**
   * Restore a state dict: values are copied into this optimizer's buffers (the dict's tensors stay the
   * caller's). Group hyperparameters are replaced by the saved ones, as torch does. Everything is checked
   * before anything changes: group and parameter counts, and every moment's shape against its parameter.
   */
  loadStateDict(sd: AdamStateDict): void {
    const op = `${this.kind}.loadStateDict`;
    if (!sd || typeof sd !== 'object' || !Array.isArray(sd.groups) || !Array.isArray(sd.state)) {
      throw new Error(`${op}: expected {step, groups: [...], state: [...]}`);
    }
    if (!(Number.isInteger(sd.step) && sd.step >= 0)) throw new Error(`${op}: step must be an integer >= 0, got ${sd.step}`);
    if (sd.lrScale !== undefined && !(Number.isFinite(sd.lrScale) && sd.lrScale >= 0)) throw new Error(`${op}: lrScale must be a finite number >= 0, got ${sd.lrScale}`);
    if (sd.groups.length !== this.paramGroups.length) {
      throw new Error(`${op}: the state dict has ${sd.groups.length} parameter group(s), this optimizer has ${this.paramGroups.length}`);
    }
    const label = (gi: number) => `group ${gi}${this.paramGroups[gi]!.name ? ` '${this.paramGroups[gi]!.name}'` : ''}`;
    for (const [gi, sg] of sd.groups.entries()) {
      const mine = this.paramGroups[gi]!;
      if (sg.numParams !== undefined && sg.numParams !== mine.params.length) {
        throw new Error(`${op}: ${label(gi)} has ${mine.params.length} parameter(s), the state dict's group ${gi} has ${sg.numParams}`);
      }
      checkHyper(`${op}: saved ${label(gi)}`, sg);
    }
    const params = this.params;
    if (sd.state.length !== params.length) {
      throw new Error(`${op}: the state dict has state for ${sd.state.length} parameter(s), this optimizer has ${params.length}`);
    }
    const where: string[] = [];
    for (const [gi, g] of this.paramGroups.entries()) {
      for (const [pi, p] of g.params.entries()) where.push(`parameter ${where.length} (${label(gi)}, params[${pi}]${p.name ? ` '${p.name}'` : ''})`);
    }
    for (const [i, st] of sd.state.entries()) {
      const p = params[i]!;
      if (!st || typeof st !== 'object') throw new Error(`${op}: ${where[i]}: missing state`);
      if (!(Number.isInteger(st.step) && st.step >= 0)) throw new Error(`${op}: ${where[i]}: step must be an integer >= 0, got ${st.step}`);
      for (const key of ['m', 'v'] as const) {
        const t = st[key];
        if (!isTensor(t)) throw new Error(`${op}: ${where[i]}: ${key} is not a tensor`);
        t.assertAlive(op);
        if (t.shape.length !== p.shape.length || t.shape.some((d, k) => d !== p.shape[k])) {
          throw new Error(`${op}: ${where[i]}: saved ${key} has shape ${shapeStr(t.shape)} but the parameter has shape ${shapeStr(p.shape)}`);
        }
      }
    }
    // all checked: apply
    for (const [gi, sg] of sd.groups.entries()) {
      const mine = this.paramGroups[gi]!;
      mine.lr = sg.lr;
      mine.weightDecay = sg.weightDecay;
      mine.betas = [sg.betas[0], sg.betas[1]];
      mine.eps = sg.eps;
    }
    scope(() =>
      noGrad(() => {
        for (const [i, st] of sd.state.entries()) {
          const mine = this.stateOf(params[i]!);
          mine.step = st.step;
          mine.m.assign(st.m.device === mine.m.device ? st.m : toDevice(st.m, mine.m.device));
          mine.v.assign(st.v.device === mine.v.device ? st.v : toDevice(st.v, mine.v.device));
        }
      }),
    );
    this.steps = sd.step;
    if (sd.lrScale !== undefined) this.scale = sd.lrScale;
  }

  /** Free the moment buffers (the optimizer must not be stepped afterwards). */
  dispose(): void {
    for (const st of this.state.values()) {
      st.m.dispose();
      st.v.dispose();
    }
    this.state.clear();
  }
}

/** Tensors grouped by backend (a group's parameters may live on several devices). */
export function byBackend(ts: readonly Tensor[]): Map<Backend, Tensor[]> {
  const m = new Map<Backend, Tensor[]>();
  for (const t of ts) {
    const list = m.get(t.backend);
    if (list) list.push(t);
    else m.set(t.backend, [t]);
  }
  return m;
}

function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}

/** torch.optim.AdamW: decoupled weight decay (default 0.01) applied to the parameter before the Adam update. */
export class AdamW extends AdamBase {
  constructor(groups: readonly ParamGroup[] | readonly Tensor[], defaults: AdamWOptions) {
    super(groups, defaults, true, 'AdamW');
  }
}

/** torch.optim.Adam: weight decay (default 0) as an L2 penalty added to the gradient. */
export class Adam extends AdamBase {
  constructor(groups: readonly ParamGroup[] | readonly Tensor[], defaults: AdamWOptions) {
    super(groups, defaults, false, 'Adam');
  }
}

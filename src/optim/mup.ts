// Learning-rate rules as parameter groups.
//
// lavenderflowGroups: the release's muP-style rule (spec "Training of the release"), name matching as the
// release does it (substrings of the parameter name): biases, norms, positional_encoding and
// register_tokens get 0.033 lr and no weight decay; init_x_linear gets lr * 4 / fan_in and
// cond_seq_linear lr * 32 / fan_in; every other parameter lr * 32 / width. Parameters sharing
// (lr, weight decay) share a group, in first-seen order.
//
// muPGroups: standard muP for Adam (Yang et al., Tensor Programs V): compare each parameter's shape with
// the same parameter in a base model; dimensions that differ are "infinite". Matrix-like parameters (two
// infinite dimensions: hidden weights) get lr / widthMult, where widthMult = fan_in / base fan_in; vector-
// like parameters (biases, norms, embeddings, input weights, the readout) keep lr. The readout's output is
// divided by the width multiplier in the model (MMDiTOptions.outputMultiplier) and attention uses 1/d
// (MMDiTOptions.attentionScale = 'linear').
import type { Tensor } from '../tensor/tensor.js';
import type { ParamGroup } from './adamw.js';

const NO_DECAY = ['bias', 'norm', 'positional_encoding', 'register_tokens'];
const FAN_IN_RULES: Record<string, number> = { init_x_linear: 4, cond_seq_linear: 32 };

export interface LavenderflowRuleOptions {
  lr: number;
  /** The model width D (the release's hidden_dim). */
  width: number;
  weightDecay?: number;
}

/** The lr and weight decay the release gives one parameter. */
export function lavenderflowRule(name: string, shape: readonly number[], o: LavenderflowRuleOptions): { lr: number; weightDecay: number } {
  const noDecay = NO_DECAY.some((s) => name.includes(s));
  if (noDecay) return { lr: o.lr * 0.033, weightDecay: 0 };
  const wd = o.weightDecay ?? 0.1;
  const special = Object.keys(FAN_IN_RULES).find((k) => name.includes(k));
  if (special) return { lr: (o.lr * FAN_IN_RULES[special]!) / shape[shape.length - 1]!, weightDecay: wd };
  return { lr: (o.lr * 32) / o.width, weightDecay: wd };
}

function groupBy(named: Iterable<[string, Tensor]>, rule: (name: string, p: Tensor) => { lr: number; weightDecay: number }): ParamGroup[] {
  const groups = new Map<string, ParamGroup>();
  for (const [name, p] of named) {
    const r = rule(name, p);
    const key = `${r.lr}|${r.weightDecay}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { params: [], lr: r.lr, weightDecay: r.weightDecay, name: `lr=${r.lr.toPrecision(4)} wd=${r.weightDecay}` }));
    g.params.push(p);
  }
  return [...groups.values()];
}

export function lavenderflowGroups(named: Iterable<[string, Tensor]>, o: LavenderflowRuleOptions): ParamGroup[] {
  return groupBy(named, (name, p) => lavenderflowRule(name, p.shape, o));
}

export interface MuPOptions {
  lr: number;
  weightDecay?: number;
}

/** Number of dimensions of `shape` that differ from `base` (the parameter's "infinite" dimensions). */
export function infiniteDims(shape: readonly number[], base: readonly number[]): number {
  if (shape.length !== base.length) throw new Error(`muP: shape [${shape}] and base shape [${base}] differ in rank`);
  return shape.filter((d, i) => d !== base[i]).length;
}

/** The muP width multiplier of a parameter: fan_in / base fan_in for hidden weights, else 1. */
export function muPLrScale(shape: readonly number[], base: readonly number[]): number {
  if (shape.length < 2 || infiniteDims(shape, base) < 2) return 1;
  return base[base.length - 1]! / shape[shape.length - 1]!;
}

export function muPGroups(named: Iterable<[string, Tensor]>, baseShapes: ReadonlyMap<string, readonly number[]>, o: MuPOptions): ParamGroup[] {
  return groupBy(named, (name, p) => {
    const base = baseShapes.get(name);
    if (!base) throw new Error(`muP: parameter '${name}' has no base shape (is the base model the same architecture?)`);
    const noDecay = p.ndim < 2;
    return { lr: o.lr * muPLrScale(p.shape, base), weightDecay: noDecay ? 0 : o.weightDecay ?? 0 };
  });
}

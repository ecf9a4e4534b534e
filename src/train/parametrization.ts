// How an MMDiT training run sets its per-parameter learning rates (and the two muP model multipliers):
//   release  the release's rule (lavenderflowGroups: lr * 32 / width for hidden weights, 0.033 lr for
//            biases/norms/tables, fan-in rules for the input projections; weight decay as the release).
//   mup      standard muP for Adam against a base width (muPGroups: hidden weights lr * base / fan_in, the rest lr;
//            the readout multiplied by base / width). The model's width-like fields (dim, global_conddim)
//            are scaled to the base width to get the base shapes.
//   sp       the standard parametrisation: one learning rate for every parameter, no multipliers.
// At the base width mup and sp build the same model with the same groups (up to grouping), so their runs match.
// Weight decay: none on vectors (biases, norms, tables) for mup and sp.
import { MMDiT, resolveMMDiTConfig, type MMDiTConfig, type MMDiTOptions } from '../models/mmdit.js';
import type { ParamGroup } from '../optim/adamw.js';
import { lavenderflowGroups, muPGroups } from '../optim/mup.js';
import type { Tensor } from '../tensor/tensor.js';

export type TrainParametrization = 'release' | 'mup' | 'sp';
export const TRAIN_PARAMETRIZATIONS: readonly TrainParametrization[] = ['release', 'mup', 'sp'];

export interface ParametrizationOptions {
  lr: number;
  weightDecay: number;
  /** mup: the width the learning rate is tuned at (default: the model's own width, where mup equals sp). */
  baseWidth?: number;
  /** Attention logit scale (default the release's 'sqrt'; muP's 1/d rule matters only when the head width grows). */
  attentionScale?: 'sqrt' | 'linear';
}

/** The config of the muP base model: width-like fields scaled to `base`. */
export function muPBaseConfig(config: MMDiTConfig, base: number): MMDiTConfig {
  const c = resolveMMDiTConfig(config);
  if (!Number.isInteger(base) || base < 1) throw new Error(`muP: the base width must be a positive integer, got ${base}`);
  const g = Math.round((c.global_conddim * base) / c.dim);
  if (g < 1) throw new Error(`muP: global_conddim ${c.global_conddim} at width ${c.dim} scales to nothing at base width ${base}`);
  return { ...c, dim: base, global_conddim: g, n_heads: 1 };
}

/** The model options (multipliers) a parametrisation needs at construction. */
export function parametrizationModelOptions(p: TrainParametrization, config: MMDiTConfig, o: Pick<ParametrizationOptions, 'baseWidth' | 'attentionScale'>): MMDiTOptions {
  check(p);
  if (p !== 'mup') return {};
  const width = resolveMMDiTConfig(config).dim;
  return { attentionScale: o.attentionScale ?? 'sqrt', outputMultiplier: (o.baseWidth ?? width) / width };
}

/** The optimizer's parameter groups for `model` under parametrisation `p`. */
export function parametrizationGroups(p: TrainParametrization, model: MMDiT, o: ParametrizationOptions): ParamGroup[] {
  check(p);
  const named = [...model.namedParameters()];
  if (p === 'release') return lavenderflowGroups(named, { lr: o.lr, width: model.config.dim, weightDecay: o.weightDecay });
  if (p === 'sp') return [{ params: named.filter(([, t]) => t.ndim >= 2).map(([, t]) => t), lr: o.lr, weightDecay: o.weightDecay, name: 'matrices' },
    { params: named.filter(([, t]) => t.ndim < 2).map(([, t]) => t), lr: o.lr, weightDecay: 0, name: 'vectors' }].filter((g) => g.params.length);
  const base = new MMDiT(muPBaseConfig(model.config, o.baseWidth ?? model.config.dim), { device: 'meta' });
  const baseShapes = new Map([...base.namedParameters()].map(([n, t]) => [n, [...t.shape]] as [string, number[]]));
  return muPGroups(named as [string, Tensor][], baseShapes, { lr: o.lr, weightDecay: o.weightDecay });
}

function check(p: string): void {
  if (!TRAIN_PARAMETRIZATIONS.includes(p as TrainParametrization)) throw new Error(`parametrisation must be one of ${TRAIN_PARAMETRIZATIONS.join(', ')}, got '${p}'`);
}

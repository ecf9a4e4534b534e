// muP coordinate check: train MMDiTs of several widths for a few steps at a large learning rate and record
// the mean |activation| of every block's output at every step. Under muP the curves over width stay flat;
// under the standard parametrisation (SP) they grow with width.
import { MMDiT } from '../models/mmdit.js';
import { flowLoss } from '../flow/rectified-flow.js';
import { AdamW } from '../optim/adamw.js';
import { muPGroups } from '../optim/mup.js';
import { randn } from '../ops/creation.js';
import { abs, sub } from '../ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import { mean } from '../ops/reduce.js';
import { Generator } from '../tensor/random.js';
import { keep, scope } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';

export type Parametrization = 'mup' | 'sp';

export interface CoordCheckOptions {
  widths: number[];
  steps: number;
  lr: number;
  parametrization: Parametrization;
  headDim?: number;
  batch?: number;
  seed?: number;
}

export interface CoordCheckResult {
  parametrization: Parametrization;
  widths: number[];
  blocks: string[];
  /** activations[step][block][widthIndex] = mean |output| of that block at that step */
  activations: number[][][];
  /** changes[step][block][widthIndex] = mean |output - output at step 0|: the coordinate size muP keeps flat */
  changes: number[][][];
  lr: number;
}

function config(width: number, headDim: number) {
  return { dim: width, n_layers: 2, n_double_layers: 1, n_heads: Math.max(1, width / headDim), global_conddim: width, cond_seq_dim: 32, max_seq: 16 };
}

export function coordCheck(o: CoordCheckOptions): CoordCheckResult {
  const headDim = o.headDim ?? 16, B = o.batch ?? 4, seed = o.seed ?? 0;
  const base = o.widths[0]!;
  const baseShapes = new Map([...new MMDiT(config(base, headDim), { device: 'meta' }).namedParameters()].map(([n, p]) => [n, [...p.shape]] as [string, number[]]));
  let blocks: string[] = [];
  const perWidth: number[][][] = [], perWidthDelta: number[][][] = []; // [width][step][block]
  for (const width of o.widths) {
    const mup = o.parametrization === 'mup';
    const model = new MMDiT(config(width, headDim), {
      generator: new Generator(seed), attentionScale: mup ? 'linear' : 'sqrt', outputMultiplier: mup ? base / width : 1,
    });
    const opt = new AdamW(mup ? muPGroups(model.namedParameters(), baseShapes, { lr: o.lr }) : model.parameters(), { lr: o.lr, weightDecay: 0 });
    const data = new Generator(seed + 1);
    const x = keep(randn([B, 4, 8, 8], { generator: data }));
    const cSeq = keep(randn([B, 4, 32], { generator: data }));
    const steps: number[][] = [], deltas: number[][] = [];
    const first = new Map<string, Tensor>();
    for (let s = 0; s < o.steps; s++) {
      const names: string[] = [], acts: number[] = [], dels: number[] = [];
      model.onBlockOutput = (name, t) => noGrad(() => {
        names.push(name);
        acts.push(mean(abs(t)).item());
        if (s === 0) first.set(name, keep(t.clone()));
        dels.push(mean(abs(sub(t, first.get(name)!))).item());
      });
      scope(() => {
        // the same t and noise every step, so output changes come from the weight updates alone
        const rng = new Generator(seed + 2);
        const { loss } = flowLoss((xt, t, c: typeof cSeq) => model.forward(xt, t, c), x, cSeq, { generator: rng });
        opt.zeroGrad();
        loss.backward();
        opt.step();
      });
      blocks = names;
      steps.push(acts);
      deltas.push(dels);
    }
    perWidth.push(steps);
    perWidthDelta.push(deltas);
    for (const t of first.values()) t.dispose();
    x.dispose();
    cSeq.dispose();
    opt.dispose();
    for (const p of model.parameters()) p.dispose();
  }
  const byStep = (src: number[][][]) => Array.from({ length: o.steps }, (_, s) => blocks.map((_, b) => o.widths.map((_, w) => src[w]![s]![b]!)));
  return { parametrization: o.parametrization, widths: o.widths, blocks, activations: byStep(perWidth), changes: byStep(perWidthDelta), lr: o.lr };
}

/** How much each block's output change grows from the narrowest to the widest model at the last step. */
export function widthGrowth(r: CoordCheckResult): number[] {
  const last = r.changes[r.changes.length - 1]!;
  return last.map((row) => row[row.length - 1]! / row[0]!);
}

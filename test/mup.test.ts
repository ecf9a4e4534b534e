// muP: the release's learning-rate rule, standard muP groups, and the coordinate check (flat under muP,
// growing with width under the standard parametrisation).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { lavenderflowRule, muPGroups, muPLrScale } from '../src/optim/mup.js';
import { coordCheck, widthGrowth } from '../src/train/coord-check.js';

test('the release rule: no-decay params 0.033 lr, fan-in rules for the input projections, 32/D elsewhere', () => {
  const o = { lr: 1e-2, width: 2560 };
  assert.deepEqual(lavenderflowRule('model.init_x_linear.bias', [2560], o), { lr: 1e-2 * 0.033, weightDecay: 0 });
  assert.deepEqual(lavenderflowRule('model.positional_encoding', [1, 4096, 2560], o), { lr: 1e-2 * 0.033, weightDecay: 0 });
  assert.deepEqual(lavenderflowRule('register_tokens', [1, 8, 2560], o), { lr: 1e-2 * 0.033, weightDecay: 0 });
  assert.deepEqual(lavenderflowRule('init_x_linear.weight', [2560, 16], o), { lr: (1e-2 * 4) / 16, weightDecay: 0.1 });
  assert.deepEqual(lavenderflowRule('cond_seq_linear.weight', [2560, 2048], o), { lr: (1e-2 * 32) / 2048, weightDecay: 0.1 });
  assert.deepEqual(lavenderflowRule('double_layers.0.attn.w1q.weight', [2560, 2560], o), { lr: (1e-2 * 32) / 2560, weightDecay: 0.1 });
});

test('lavenderflowGroups covers every MMDiT parameter once, grouped by (lr, weight decay)', () => {
  const m = new L.MMDiT(L.MMDIT_PRESETS['mmdit-tiny']!, { device: 'meta' });
  const groups = L.optim.lavenderflowGroups(m.namedParameters(), { lr: 1e-3, width: 64 });
  const all = groups.flatMap((g) => g.params);
  assert.equal(all.length, m.parameters().length);
  assert.equal(new Set(all).size, all.length);
  assert.equal(new Set(groups.map((g) => `${g.lr}|${g.weightDecay}`)).size, groups.length);
});

test('muP groups: hidden matrices get lr * base/width, vectors and input/output weights keep lr', () => {
  assert.equal(muPLrScale([256, 256], [64, 64]), 0.25);
  assert.equal(muPLrScale([256, 16], [64, 16]), 1); // input weight: fan_in fixed
  assert.equal(muPLrScale([16, 256], [16, 64]), 1); // readout: one infinite dim
  assert.equal(muPLrScale([256], [64]), 1);
  const base = new L.MMDiT({ ...L.MMDIT_PRESETS['mmdit-tiny']!, dim: 64, global_conddim: 64 }, { device: 'meta' });
  const wide = new L.MMDiT({ ...L.MMDIT_PRESETS['mmdit-tiny']!, dim: 256, global_conddim: 256 }, { device: 'meta' });
  const shapes = new Map([...base.namedParameters()].map(([n, p]) => [n, [...p.shape]] as [string, number[]]));
  const groups = muPGroups(wide.namedParameters(), shapes, { lr: 1 });
  const lrOf = (name: string) => groups.find((g) => g.params.includes(wide.stateDict()[name]!))!.lr;
  assert.equal(lrOf('double_layers.0.attn.w1q.weight'), 0.25);
  assert.equal(lrOf('init_x_linear.weight'), 1);
  assert.equal(lrOf('final_linear.weight'), 1);
  assert.equal(lrOf('positional_encoding'), 1);
  assert.throws(() => muPGroups([['mystery', L.zeros([2])]], shapes, { lr: 1 }), /'mystery' has no base shape/);
});

test('coordinate check: flat over width under muP, growing under the standard parametrisation', () => {
  const opts = { widths: [32, 64, 128, 256], steps: 5, lr: 1e-2 };
  const mup = widthGrowth(coordCheck({ ...opts, parametrization: 'mup' }));
  const sp = widthGrowth(coordCheck({ ...opts, parametrization: 'sp' }));
  for (const g of mup) assert.ok(g > 0.5 && g < 1.5, `muP growth ${mup}`);
  for (const g of sp) assert.ok(g > 1.8, `SP growth ${sp}`);
  assert.ok(Math.min(...sp) > Math.max(...mup) * 2);
});

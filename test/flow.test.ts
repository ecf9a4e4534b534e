// Rectified flow: time samplers, the loss definition, t-binning and the Euler sampler.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { binLosses, flowLoss, sampleEuler, sampleTime } from '../src/flow/rectified-flow.js';

test('time samplers: logit-normal is sigmoid of a normal, stratified covers every stratum', () => {
  const g = new L.Generator(5);
  const t = Array.from(sampleTime(4000, 'logit-normal', g).toArray());
  assert.ok(t.every((v) => v > 0 && v < 1));
  assert.ok(Math.abs(t.reduce((a, b) => a + b) / t.length - 0.5) < 0.02);
  const logits = t.map((v) => Math.log(v / (1 - v)));
  const sd = Math.sqrt(logits.reduce((a, b) => a + b * b, 0) / logits.length);
  assert.ok(Math.abs(sd - 1) < 0.05, `logit sd ${sd}`);
  const s = Array.from(sampleTime(8, 'stratified', new L.Generator(1)).toArray());
  // sigmoid(sqrt2 erfinv(2u-1)) is monotone in u, and u_i lies in [i/B, (i+1)/B)
  for (let i = 1; i < 8; i++) assert.ok(s[i]! > s[i - 1]!);
  const u = Array.from(sampleTime(1000, 'uniform', new L.Generator(2)).toArray());
  assert.ok(u.every((v) => v >= 0 && v < 1));
  assert.throws(() => sampleTime(2, 'cosine' as 'uniform', g), /unknown time sampling 'cosine'/);
});

test('flow loss equals mean((z1 - x - v)^2) for a model that returns a constant', () => {
  const x = L.randn([3, 2, 4, 4], { generator: new L.Generator(9) });
  const g = new L.Generator(11);
  const r = flowLoss(() => L.zeros([3, 2, 4, 4]), x, null, { generator: g });
  // recompute with the same draws: t from (seed 11, offset 0), z1 next
  const g2 = new L.Generator(11);
  const t = L.sigmoid(L.randn([3], { generator: g2 }));
  const z1 = L.randn([3, 2, 4, 4], { generator: g2 });
  const want = L.mean(L.square(L.sub(z1, x))).item();
  assert.ok(Math.abs(r.loss.item() - want) < 1e-6);
  assert.deepEqual(r.t, Array.from(t.toArray()));
  assert.equal(r.perSample.length, 3);
});

test('binLosses averages per tenth of t', () => {
  assert.deepEqual(binLosses([0.05, 0.07, 0.95, 0.5], [1, 3, 5, 7]).map((v) => (Number.isNaN(v) ? null : v)),
    [2, null, null, null, null, 7, null, null, null, 5]);
});

test('Euler sampling follows a known velocity field exactly; CFG mixes conditional and unconditional', () => {
  // v = z - c (a straight line to c): with S steps, z_{k+1} = z_k - (z_k - c)/S
  const z = L.tensor([[4]]);
  const c = L.tensor([[1]]);
  const out = sampleEuler((x, _t, cond: L.Tensor) => L.sub(x, cond), z, c, { steps: 4 });
  let want = 4;
  for (let i = 0; i < 4; i++) want -= (want - 1) / 4;
  assert.ok(Math.abs(out.item() - want) < 1e-6);
  const guided = sampleEuler((x, _t, cond: L.Tensor) => L.sub(x, cond), z, c, { steps: 1, cfg: 3, nullCond: L.tensor([[0]]) });
  // v = vu + 3 (vc - vu) = 4 + 3 * (3 - 4) = 1 -> z = 4 - 1
  assert.ok(Math.abs(guided.item() - 3) < 1e-6);
  const joined = sampleEuler((x, _t, cond: L.Tensor) => L.sub(x, cond), z, c, { steps: 1, cfg: 3, nullCond: L.tensor([[0]]), concatConds: (a, b) => L.cat([a, b], 0) });
  assert.ok(Math.abs(joined.item() - 3) < 1e-6);
});

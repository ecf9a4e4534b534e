// Rectified flow: time samplers, the loss definition, t-binning and the Euler sampler.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import * as L from '../src/index.js';
import { binLosses, flowLoss, sampleEuler, sampleTime, type TimeSampling } from '../src/flow/rectified-flow.js';

/** PyTorch reference (scripts/make-flow-fixtures.py): lavender's Philox draws re-implemented in Python, then torch float64. */
interface FlowFixture {
  shape: number[]; x: number[]; a: number[]; beta: number; cond: number[];
  loss: Record<TimeSampling, { seed: number; t: number[]; perSample: number[]; loss: number; gradA: number[]; gradBeta: number }>;
  samplers: Record<TimeSampling, { seed: number; B: number; t: number[] }>;
  euler: { z0: number[]; steps: number; cfg: number; guided: number[][]; unguided: number[][] };
}
const fx = JSON.parse(readFileSync(new URL('../../test/fixtures/flow.json', import.meta.url), 'utf8')) as FlowFixture;

/** |got - want| <= tol * max(1, |want|) element by element, naming the first that is not. */
function near(got: ArrayLike<number>, want: readonly number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol * Math.max(1, Math.abs(want[i]!)), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

/** Standard normal CDF: 1/2 + the integral of the density over [0, z] by Simpson's rule (error < 1e-10 for |z| < 8). */
function normalCdf(z: number): number {
  const n = 400, h = Math.abs(z) / n;
  let s = 0;
  for (let i = 0; i <= n; i++) s += (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2) / 2);
  const half = (s * h) / 3 / Math.sqrt(2 * Math.PI);
  return z >= 0 ? 0.5 + half : 0.5 - half;
}

/** Kolmogorov-Smirnov distance between the sample and a CDF. */
function ksDistance(sample: readonly number[], cdf: (v: number) => number): number {
  const s = [...sample].sort((a, b) => a - b), n = s.length;
  let d = 0;
  s.forEach((v, i) => (d = Math.max(d, Math.abs(cdf(v) - i / n), Math.abs(cdf(v) - (i + 1) / n))));
  return d;
}

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

test('flow loss with a non-constant model v = a x_t + b: loss, per-sample losses and gradients computed by hand', () => {
  const xs = [0.5, -1.25, 2, 0.75]; // [B = 2, 1, 1, 2]
  const x = L.tensor(xs, { shape: [2, 1, 1, 2] });
  const a = L.tensor(0.8, { requiresGrad: true }), b = L.tensor(-0.3, { requiresGrad: true });
  const r = flowLoss((xt) => L.add(L.mul(xt, a), b), x, null, { generator: new L.Generator(3) });
  r.loss.backward();
  // the draws, in flowLoss's order: t (logit-normal), then z1
  const g = new L.Generator(3);
  const t = Array.from(L.sigmoid(L.randn([2], { generator: g })).toArray());
  const z1 = Array.from(L.randn([2, 1, 1, 2], { generator: g }).toArray());
  let loss = 0, da = 0, db = 0;
  const per = [0, 0];
  xs.forEach((xv, i) => {
    const tb = t[Math.floor(i / 2)]!;
    const xt = (1 - tb) * xv + tb * z1[i]!;
    const e = z1[i]! - xv - (0.8 * xt - 0.3); // target velocity z1 - x
    loss += e * e / 4;
    per[Math.floor(i / 2)]! += e * e / 2;
    da += -2 * e * xt / 4;
    db += -2 * e / 4;
  });
  near([r.loss.item()], [loss], 1e-6, 'loss');
  near(r.perSample, per, 1e-6, 'perSample');
  near(r.t, t, 0, 't');
  near([a.grad!.item(), b.grad!.item()], [da, db], 1e-5, 'd loss / d (a, b)');
});

for (const kind of ['logit-normal', 'uniform', 'stratified'] as const) {
  test(`flow loss (${kind} t) matches PyTorch for v = a[c] x_t + beta t + cond: t, per-sample losses, loss, gradients`, () => {
    const want = fx.loss[kind];
    const x = L.tensor(fx.x, { shape: fx.shape });
    const a = L.tensor(fx.a, { shape: [1, fx.shape[1]!, 1, 1], requiresGrad: true });
    const beta = L.tensor(fx.beta, { requiresGrad: true });
    const cond = L.tensor(fx.cond, { shape: [fx.shape[0]!, 1, 1, 1] });
    const model = (xt: L.Tensor, t: L.Tensor, c: L.Tensor) => L.add(L.add(L.mul(xt, a), L.mul(L.reshape(t, [-1, 1, 1, 1]), beta)), c);
    const r = flowLoss(model, x, cond, { generator: new L.Generator(want.seed), timeSampling: kind });
    r.loss.backward();
    near(r.t, want.t, kind === 'stratified' ? 1e-5 : 1e-6, 't');
    near(r.perSample, want.perSample, 1e-5, 'perSample');
    near([r.loss.item()], [want.loss], 1e-5, 'loss');
    near(a.grad!.toArray(), want.gradA, 1e-5, 'd loss / d a');
    near([beta.grad!.item()], [want.gradBeta], 1e-5, 'd loss / d beta');
  });
}

test('Euler sampler with and without CFG (separate and joined batches) matches PyTorch step by step for v(z, t, cond)', () => {
  const { z0, steps, cfg, guided, unguided } = fx.euler;
  const a = L.tensor(fx.a, { shape: [1, fx.shape[1]!, 1, 1] }), beta = L.tensor(fx.beta);
  const model = (z: L.Tensor, t: L.Tensor, c: L.Tensor) => L.add(L.add(L.mul(z, a), L.mul(L.reshape(t, [-1, 1, 1, 1]), beta)), L.reshape(c, [-1, 1, 1, 1]));
  const z = L.tensor(z0, { shape: fx.shape });
  const cond = L.tensor(fx.cond), nullCond = L.zeros([fx.shape[0]!]);
  const run = (opts: Parameters<typeof sampleEuler<L.Tensor>>[3], want: number[][], what: string) => {
    const seen: number[] = [];
    const out = sampleEuler(model, z, cond, { ...opts, steps, onStep: (zi, i) => { seen.push(i); near(zi.toArray(), want[i - 1]!, 1e-5, `${what} step ${i}`); } });
    assert.deepEqual(seen, [1, 2, 3, 4], `${what}: onStep(z, i) after every step`);
    near(out.toArray(), want.at(-1)!, 1e-5, `${what} result`);
  };
  run({}, unguided, 'unguided');
  run({ cfg, nullCond }, guided, 'cfg');
  run({ cfg, nullCond, concatConds: (c, n) => L.cat([c, n], 0) }, guided, 'cfg joined');
  // z is not consumed: the same input gives the same result again
  run({}, unguided, 'unguided again');
});

test('Euler sampler hands the model t = i/S for i = S..1 (a velocity equal to t integrates to (S+1)/2S)', () => {
  const ts: number[] = [];
  const out = sampleEuler((z, t) => { ts.push(t.toArray()[0]!); return L.mul(L.onesLike(z), L.reshape(t, [-1, 1])); }, L.tensor([[1], [2]]), null, { steps: 5 });
  near(ts, [1, 0.8, 0.6, 0.4, 0.2], 1e-7, 't schedule');
  near(out.toArray(), [1 - 0.6, 2 - 0.6], 1e-6, 'z');
  assert.throws(() => sampleEuler((z) => z, L.tensor([1]), null, { steps: 0 }), /sampleEuler: steps must be a positive integer, got 0/);
  assert.throws(() => sampleEuler((z) => z, L.tensor([1]), null, { steps: 2.5 }), /got 2\.5/);
});

test('time samplers draw exactly what PyTorch computes from the same Philox stream', () => {
  for (const kind of ['logit-normal', 'uniform', 'stratified'] as const) {
    const { seed, B, t } = fx.samplers[kind];
    near(sampleTime(B, kind, new L.Generator(seed)).toArray(), t, kind === 'stratified' ? 1e-5 : 1e-6, kind);
  }
});

test('time sampler distributions: stratified t_i lies in stratum i of the logit-normal CDF; KS distances to the right laws', () => {
  const B = 2000;
  const logit = (v: number) => Math.log(v / (1 - v));
  // stratified: Phi(logit t_i) = u_i = (i + U_i) / B, so it lies in [i/B, (i+1)/B)
  const s = Array.from(sampleTime(B, 'stratified', new L.Generator(8)).toArray());
  s.forEach((v, i) => {
    const u = normalCdf(logit(v));
    assert.ok(u >= i / B - 2e-5 && u <= (i + 1) / B + 2e-5, `stratified t[${i}] = ${v}: Phi(logit t) = ${u} is not in [${i / B}, ${(i + 1) / B})`);
  });
  // logit-normal: logit(t) ~ N(0, 1); uniform: t ~ U(0, 1). The critical KS distance at 1% for n = 4000 is 1.63 / sqrt(n) = 0.026.
  const n = 4000, crit = 1.63 / Math.sqrt(n);
  const ln = Array.from(sampleTime(n, 'logit-normal', new L.Generator(9)).toArray());
  const un = Array.from(sampleTime(n, 'uniform', new L.Generator(10)).toArray());
  const dLn = ksDistance(ln.map(logit), normalCdf), dUn = ksDistance(un, (v) => Math.min(1, Math.max(0, v)));
  assert.ok(dLn < crit, `logit-normal: KS distance of logit(t) to N(0, 1) is ${dLn}`);
  assert.ok(dUn < crit, `uniform: KS distance to U(0, 1) is ${dUn}`);
  // and the test tells them apart: logit-normal t is not uniform, uniform t is not logit-normal
  assert.ok(ksDistance(ln, (v) => v) > 4 * crit);
  assert.ok(ksDistance(un.map(logit), normalCdf) > 4 * crit);
});

test('binLosses: bin edges (t = 0.1 opens bin 1, t = 1 and above go to the last bin, t < 0 to the first), other bin counts', () => {
  const bins = binLosses([0, 0.1, 0.0999, 1, 1.5, -0.2], [1, 2, 3, 4, 5, 6]).map((v) => (Number.isNaN(v) ? null : v));
  assert.deepEqual(bins, [(1 + 3 + 6) / 3, 2, null, null, null, null, null, null, null, 4.5]);
  assert.deepEqual(binLosses([0.2, 0.7], [1, 3], 2), [1, 3]);
});

test('Euler sampler: joined batches make one model call of 2B per step, separate ones two of B; no guidance without nullCond; t has z\'s dtype and device', () => {
  const calls: number[] = [];
  const model = (z: L.Tensor, t: L.Tensor) => {
    calls.push(z.shape[0]!);
    assert.equal(t.dtype, z.dtype);
    assert.equal(t.device, z.device);
    assert.deepEqual([...t.shape], [z.shape[0]]);
    return L.mul(z, 0.5);
  };
  const z = L.tensor([[1, 2], [3, 4]], { dtype: 'float64' });
  const joined = sampleEuler(model, z, L.zeros([2]), { steps: 3, cfg: 2, nullCond: L.zeros([2]), concatConds: (a, b) => L.cat([a, b], 0) });
  assert.deepEqual(calls, [4, 4, 4]);
  calls.length = 0;
  const separate = sampleEuler(model, z, L.zeros([2]), { steps: 3, cfg: 2, nullCond: L.zeros([2]) });
  assert.deepEqual(calls, [2, 2, 2, 2, 2, 2]);
  assert.deepEqual(Array.from(joined.toArray()), Array.from(separate.toArray()));
  calls.length = 0;
  // concatConds alone does not switch guidance on: plain Euler, one call of B per step
  const plain = sampleEuler(model, z, L.zeros([2]), { steps: 3, concatConds: () => { throw new Error('concatConds called without nullCond'); } });
  assert.deepEqual(calls, [2, 2, 2]);
  near(plain.toArray(), [1, 2, 3, 4].map((v) => v * (1 - 0.5 / 3) ** 3), 1e-12, 'plain');
  assert.equal(plain.dtype, 'float64');
});

test('time samplers draw on the requested device (meta: shapes only)', () => {
  for (const kind of ['logit-normal', 'uniform', 'stratified'] as const) {
    const t = sampleTime(4, kind, new L.Generator(1), 'meta');
    assert.equal(t.device, 'meta', kind);
    assert.deepEqual([...t.shape], [4], kind);
  }
});

// Optimizers anchored to PyTorch: AdamW and Adam with two parameter groups, a LambdaLR-style warm-up and
// clip_grad_norm_ replay test/fixtures/optim.json (made by scripts/make-optim-fixtures.py with torch in
// float64) step by step. Also: power EMA against its formula, state-dict round trips, load errors,
// gradient clipping, the warm-up convention, and flat memory over 200 steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as L from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { fastHits, kernels } from '../src/backends/cpu/fast/kernels.js';

const { AdamW, Adam, PowerEma, WarmupScheduler, clipGradNorm, linearDecay, linearWarmup, powerEmaBeta } = L.optim;

interface FixtureRun {
  kind: 'adamw' | 'adam';
  steps: { norm: number; lr: number[]; params: Record<string, number[]> }[];
  state: { name: string; step: number; m: number[]; v: number[] }[];
}
interface Fixtures {
  torch_version: string;
  betas: [number, number];
  eps: number;
  warmup: number;
  max_norm: number;
  groups: { name: string; lr: number; weight_decay: number; params: string[] }[];
  params: { name: string; shape: number[]; init: number[] }[];
  grads: Record<string, number[] | null>[];
  runs: FixtureRun[];
}

// dist/test/optim.test.js -> <repo>/test/fixtures/optim.json
const fx = JSON.parse(readFileSync(new URL('../../test/fixtures/optim.json', import.meta.url), 'utf8')) as Fixtures;

const TOL = 1e-10;

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    assert.ok(d <= tol, `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (|diff| ${d} > ${tol})`);
  }
}

function assertSame(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.deepEqual(Array.from(a), Array.from(b), what);
}

type Kind = 'adamw' | 'adam';

/** The fixture's parameters as leaves (float64 unless asked), and its two groups. */
function fixtureModel(dtype: 'float64' | 'float32' = 'float64') {
  const params = new Map<string, Tensor>();
  for (const p of fx.params) {
    const t = L.tensor(p.init, { dtype, shape: p.shape }).requiresGrad_();
    t.name = p.name;
    params.set(p.name, t);
  }
  const groups = fx.groups.map((g) => ({ name: g.name, lr: g.lr, weightDecay: g.weight_decay, params: g.params.map((n) => params.get(n)!) }));
  return { params, ordered: fx.params.map((p) => params.get(p.name)!), groups };
}

function makeOpt(kind: Kind, groups: L.optim.ParamGroup[]) {
  const Cls = kind === 'adamw' ? AdamW : Adam;
  return new Cls(groups, { lr: 1, betas: fx.betas, eps: fx.eps });
}

/** Set step s's fixture gradients (null where torch had None). */
function feedGrads(params: Map<string, Tensor>, s: number, dtype: 'float64' | 'float32' = 'float64'): void {
  for (const p of fx.params) {
    const g = fx.grads[s]![p.name];
    params.get(p.name)!.setGrad(g ? L.tensor(g, { dtype, shape: p.shape }) : null);
  }
}

for (const run of fx.runs) {
  test(`${run.kind} matches torch.optim.${run.kind === 'adamw' ? 'AdamW' : 'Adam'} (2 groups, warm-up, clipping) at every step`, () => {
    const { params, ordered, groups } = fixtureModel();
    const opt = makeOpt(run.kind, groups);
    const sched = new WarmupScheduler(opt, fx.warmup);
    for (const [s, want] of run.steps.entries()) {
      feedGrads(params, s);
      for (const [gi, lr] of want.lr.entries()) assert.ok(Math.abs(opt.effectiveLr(gi) - lr) <= 1e-15, `step ${s} group ${gi} lr ${opt.effectiveLr(gi)} vs ${lr}`);
      const norm = clipGradNorm(ordered, fx.max_norm);
      assert.ok(Math.abs(norm - want.norm) <= 1e-12 * want.norm, `step ${s}: norm ${norm} vs torch ${want.norm}`);
      opt.step();
      sched.step();
      for (const p of fx.params) assertClose(params.get(p.name)!.toArray(), want.params[p.name]!, TOL, `${run.kind} step ${s} ${p.name}`);
    }
    // the moments and per-parameter step counts (one parameter skipped a step) match torch's state
    const sd = opt.stateDict();
    for (const [i, st] of run.state.entries()) {
      assert.equal(sd.state[i]!.step, st.step, `${st.name} step count`);
      assertClose(sd.state[i]!.m.toArray(), st.m, TOL, `${run.kind} exp_avg ${st.name}`);
      assertClose(sd.state[i]!.v.toArray(), st.v, TOL, `${run.kind} exp_avg_sq ${st.name}`);
    }
    assert.equal(sd.step, run.steps.length);
    opt.dispose();
  });
}

// float64 takes the composed step; float32 on cpu takes the fused multi-tensor kernel (wasm where it loaded),
// which gets each parameter's own step count: the skipped parameter's bias correction shows a wrong one
for (const run of fx.runs) {
  test(`${run.kind} in float32 on cpu (the fused step) follows torch's float64 run, the skipped parameter included`, () => {
    const { params, ordered, groups } = fixtureModel('float32');
    const opt = makeOpt(run.kind, groups);
    const sched = new WarmupScheduler(opt, fx.warmup);
    const fusedBefore = fastHits.adamw ?? 0;
    for (const [s, want] of run.steps.entries()) {
      feedGrads(params, s, 'float32');
      clipGradNorm(ordered, fx.max_norm);
      opt.step();
      sched.step();
      for (const p of fx.params) assertClose(params.get(p.name)!.toArray(), want.params[p.name]!, 2e-6, `float32 ${run.kind} step ${s} ${p.name}`);
    }
    if (kernels()) assert.equal((fastHits.adamw ?? 0) - fusedBefore, run.steps.length * fx.groups.length, 'one fused call per group and step');
    assert.deepEqual(opt.stateDict().state.map((st) => st.step), run.state.map((st) => st.step));
    opt.dispose();
  });
}

test('fixtures exercise both clipping branches and a skipped parameter', () => {
  const norms = fx.runs[0]!.steps.map((s) => s.norm);
  assert.ok(norms.some((n) => n > fx.max_norm) && norms.some((n) => n < fx.max_norm));
  assert.ok(fx.grads.some((g) => Object.values(g).includes(null)));
  assert.ok(new Set(fx.runs[0]!.state.map((s) => s.step)).size > 1);
});

for (const kind of ['adamw', 'adam'] as const) {
  test(`${kind}: stateDict round trip continues exactly like an uninterrupted run`, () => {
    const runFor = (steps: number[], opt: L.optim.AdamBase, sched: InstanceType<typeof WarmupScheduler>, params: Map<string, Tensor>, ordered: Tensor[]) => {
      for (const s of steps) {
        feedGrads(params, s);
        clipGradNorm(ordered, fx.max_norm);
        opt.step();
        sched.step();
      }
    };
    // uninterrupted
    const a = fixtureModel();
    const optA = makeOpt(kind, a.groups);
    const schedA = new WarmupScheduler(optA, fx.warmup);
    runFor([0, 1, 2, 3, 4, 5], optA, schedA, a.params, a.ordered);

    // 3 steps, save, restore into a fresh optimizer (and scheduler, and parameter values), 3 more
    const b = fixtureModel();
    const optB = makeOpt(kind, b.groups);
    const schedB = new WarmupScheduler(optB, fx.warmup);
    runFor([0, 1, 2], optB, schedB, b.params, b.ordered);
    const saved = optB.stateDict();
    const savedSched = schedB.stateDict();
    const savedParams = b.ordered.map((p) => p.toArray());

    const c = fixtureModel();
    for (const [i, p] of c.ordered.entries()) p.assign(L.tensor(savedParams[i]!, { dtype: 'float64', shape: p.shape }));
    const optC = makeOpt(kind, c.groups.map((g) => ({ ...g, lr: 123 }))); // hyperparameters come from the dict
    const schedC = new WarmupScheduler(optC, fx.warmup);
    optC.loadStateDict(saved);
    schedC.loadStateDict(savedSched);
    optB.dispose(); // the restored optimizer owns copies, not the saved buffers
    assert.equal(optC.stepCount, 3);
    assert.deepEqual(optC.paramGroups.map((g) => g.lr), fx.groups.map((g) => g.lr));
    runFor([3, 4, 5], optC, schedC, c.params, c.ordered);

    for (const [i, p] of a.ordered.entries()) assertSame(c.ordered[i]!.toArray(), p.toArray(), `${kind} ${p.name} after resume`);
    const sa = optA.stateDict(), sc = optC.stateDict();
    for (const [i, st] of sa.state.entries()) {
      assert.equal(sc.state[i]!.step, st.step);
      assertSame(sc.state[i]!.m.toArray(), st.m.toArray(), `m ${i}`);
      assertSame(sc.state[i]!.v.toArray(), st.v.toArray(), `v ${i}`);
    }
    optA.dispose();
    optC.dispose();
  });
}

test('loadStateDict rejects mismatched groups, counts and shapes, naming them, and changes nothing', () => {
  const { groups } = fixtureModel();
  const opt = new AdamW(groups, { lr: 0.1 });
  const good = new AdamW(fixtureModel().groups, { lr: 0.1 }).stateDict();

  const oneGroup = new AdamW(fixtureModel().ordered, { lr: 0.1 }).stateDict();
  assert.throws(() => opt.loadStateDict(oneGroup), /1 parameter group\(s\), this optimizer has 2/);

  const wrongCount = { ...good, groups: good.groups.map((g, i) => (i === 1 ? { ...g, numParams: 3 } : g)) };
  assert.throws(() => opt.loadStateDict(wrongCount), /group 1 'other' has 2 parameter\(s\), the state dict's group 1 has 3/);

  const fewerStates = { ...good, state: good.state.slice(0, 3) };
  assert.throws(() => opt.loadStateDict(fewerStates), /state for 3 parameter\(s\), this optimizer has 4/);

  const badShape = { ...good, state: good.state.map((s, i) => (i === 2 ? { ...s, v: L.zeros([2, 4], { dtype: 'float64' }) } : s)) };
  assert.throws(() => opt.loadStateDict(badShape), (e: Error) => {
    assert.match(e.message, /parameter 2 \(group 1 'other', params\[0\] 'w2'\)/);
    assert.match(e.message, /saved v has shape \[2, 4\] but the parameter has shape \[4, 2\]/);
    return true;
  });

  const badBetas = { ...good, groups: good.groups.map((g) => ({ ...g, betas: [0.9, 1.5] as [number, number] })) };
  assert.throws(() => opt.loadStateDict(badBetas), /betas\[1\] must be in \[0, 1\)/);

  // nothing was applied by the failed loads
  assert.deepEqual(opt.paramGroups.map((g) => g.lr), [0.05, 0.02]);
  assert.equal(opt.stepCount, 0);
});

test('constructor validation: empty list, duplicates, bad hyperparameters; plain tensor lists form one group', () => {
  const a = L.zeros([2], { requiresGrad: true });
  assert.throws(() => new AdamW([], { lr: 0.1 }), /empty parameter list/);
  assert.throws(() => new AdamW([{ params: [a] }, { params: [a], name: 'dup' }], { lr: 0.1 }), /group 1 'dup'.*also appears in group 0/);
  assert.throws(() => new AdamW([a], { lr: -1 }), /lr must be/);
  assert.throws(() => new Adam([a], { lr: 0.1, betas: [1, 0.9] }), /betas\[0\]/);
  assert.throws(() => new AdamW([L.zeros([2], { dtype: 'int32' })], { lr: 0.1 }), /floating point/);
  const opt = new AdamW([a], { lr: 0.1 });
  assert.equal(opt.paramGroups.length, 1);
  assert.equal(opt.paramGroups[0]!.weightDecay, 0.01);
  assert.equal(new Adam([a], { lr: 0.1 }).paramGroups[0]!.weightDecay, 0);
});

test('AdamW step by hand: decoupled decay, bias correction, eps after the sqrt', () => {
  const p = L.tensor([1, -2], { dtype: 'float64' }).requiresGrad_();
  const opt = new AdamW([{ params: [p], lr: 0.1, weightDecay: 0.5 }], { lr: 1, betas: [0.8, 0.9], eps: 1e-3 });
  opt.setLrScale(0.5);
  const lr = 0.05;
  let x = [1, -2];
  const m = [0, 0], v = [0, 0];
  const grads = [[0.3, -0.1], [-0.2, 0.4]];
  for (const [k, g] of grads.entries()) {
    p.setGrad(L.tensor(g, { dtype: 'float64' }));
    opt.step();
    const t = k + 1;
    x = x.map((xi, i) => {
      const d = xi * (1 - lr * 0.5);
      m[i] = 0.8 * m[i]! + 0.2 * g[i]!;
      v[i] = 0.9 * v[i]! + 0.1 * g[i]! * g[i]!;
      const mh = m[i]! / (1 - 0.8 ** t), vh = v[i]! / (1 - 0.9 ** t);
      return d - (lr * mh) / (Math.sqrt(vh) + 1e-3);
    });
    assertClose(p.toArray(), x, 1e-14, `step ${t}`);
  }
  // a parameter whose grad is null is skipped entirely (no decay either)
  p.setGrad(null);
  const before = Array.from(p.toArray());
  opt.step();
  assertSame(p.toArray(), before, 'no grad, no change');
  assert.equal(opt.stateDict().state[0]!.step, 2);
  opt.dispose();
});

test('clipGradNorm returns the global norm and scales like clip_grad_norm_', () => {
  const a = L.zeros([2], { dtype: 'float64', requiresGrad: true });
  const b = L.zeros([2, 1], { dtype: 'float64', requiresGrad: true });
  const c = L.zeros([3], { dtype: 'float64', requiresGrad: true }); // no grad: ignored
  a.setGrad(L.tensor([3, 0], { dtype: 'float64' }));
  b.setGrad(L.tensor([[0], [4]], { dtype: 'float64' }));
  const n = clipGradNorm([a, b, c], 1);
  assert.equal(n, 5);
  const coef = 1 / (5 + 1e-6);
  assertSame(a.grad!.toArray(), [3 * coef, 0], 'a scaled');
  assertSame(b.grad!.toArray(), [0, 4 * coef], 'b scaled');
  assert.equal(c.grad, null);
  // under the limit: unchanged, still returns the norm
  const n2 = clipGradNorm([a, b, c], 10);
  assert.ok(Math.abs(n2 - 5 * coef) < 1e-15);
  assertSame(a.grad!.toArray(), [3 * coef, 0], 'a unchanged');
  // float32 grads, no grads at all, bad maxNorm
  const f = L.zeros([4], { requiresGrad: true });
  f.setGrad(L.tensor([1, 1, 1, 1]));
  assert.equal(clipGradNorm([f], 0.5), 2);
  assertClose(f.grad!.toArray(), [0.25, 0.25, 0.25, 0.25], 1e-6, 'float32 scaled');
  assert.equal(clipGradNorm([c], 1), 0);
  assert.throws(() => clipGradNorm([a], 0), /maxNorm must be positive/);
});

test('linearWarmup and WarmupScheduler follow LambdaLR(lambda s: min(1, (s+1)/warmup))', () => {
  assert.deepEqual([0, 1, 2, 3, 10].map((s) => linearWarmup(s, 4)), [0.25, 0.5, 0.75, 1, 1]);
  assert.equal(linearWarmup(0, 0), 1);
  assert.throws(() => linearWarmup(-1, 3), /step must be/);
  const p = L.zeros([1], { requiresGrad: true });
  const opt = new AdamW([{ params: [p], lr: 0.3 }, { params: [L.zeros([1], { requiresGrad: true })], lr: 0.03 }], { lr: 1 });
  const sched = new WarmupScheduler(opt, 3);
  const seen: number[][] = [];
  for (let s = 0; s < 4; s++) {
    seen.push([opt.effectiveLr(0), opt.effectiveLr(1)]);
    sched.step();
  }
  const want = [[0.1, 0.01], [0.2, 0.02], [0.3, 0.03], [0.3, 0.03]];
  for (const [i, w] of want.entries()) assertClose(seen[i]!, w, 1e-15, `warm-up step ${i}`);
});

test('linearDecay follows LambdaLR(lambda s: 1 - s/total): full lr first, 1/total last, 0 past the end', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 9].map((s) => linearDecay(s, 4)), [1, 0.75, 0.5, 0.25, 0, 0]);
  assert.equal(linearDecay(0, 1), 1);
  assert.throws(() => linearDecay(-1, 3), /linearDecay: step must be an integer >= 0, got -1/);
  assert.throws(() => linearDecay(1.5, 3), /step must be/);
  assert.throws(() => linearDecay(0, 0), /linearDecay: totalSteps must be an integer >= 1, got 0/);
});

test('PowerEma follows beta = (1 - 1/k)^(1+gamma), beta_s = max(0, 1 - (1-beta)*s), in float32', () => {
  const gamma = 6.94;
  for (const every of [1, 3]) {
    const p = L.tensor([0, 0, 0], { dtype: 'float64' }).requiresGrad_();
    const ema = new PowerEma([p], { gamma, every });
    let ref = [0, 0, 0];
    for (let k = 1; k <= 12; k++) {
      const vals = [Math.sin(k), k * 0.1, -1 / k];
      p.assign(L.tensor(vals, { dtype: 'float64' }));
      const applied = ema.update(k);
      assert.equal(applied, k % every === 0);
      if (applied) {
        const beta = (1 - 1 / k) ** (1 + gamma);
        const b = Math.max(0, 1 - (1 - beta) * every);
        assert.equal(powerEmaBeta(k, gamma, every), b);
        ref = ref.map((e, i) => b * e + (1 - b) * vals[i]!);
        if (k === every) assertSame(ema.ema[0]!.toArray(), Float32Array.from(vals), 'first update copies the weights');
      }
      assert.equal(ema.ema[0]!.dtype, 'float32');
      assertClose(ema.ema[0]!.toArray(), ref, 2e-6, `every ${every} step ${k}`);
    }
    // copyTo converts back to the parameter's dtype; stateDict round trip
    const q = L.zeros([3], { dtype: 'float64' });
    ema.copyTo([q]);
    assertSame(q.toArray(), Float64Array.from(ema.ema[0]!.toArray()), 'copyTo');
    const other = new PowerEma([L.zeros([3], { dtype: 'float64' })], { gamma, every });
    other.loadStateDict(ema.stateDict());
    assertSame(other.ema[0]!.toArray(), ema.ema[0]!.toArray(), 'loadStateDict');
    assert.equal(other.lastStep, ema.lastStep);
    assert.throws(() => other.loadStateDict({ ...ema.stateDict(), ema: [L.zeros([4])] }), /parameter 0: saved ema has shape \[4\], the average has shape \[3\]/);
    assert.throws(() => other.loadStateDict({ ...ema.stateDict(), ema: [] }), /got 0 saved ema tensor\(s\), this EMA tracks 1/);
    assert.throws(() => other.loadStateDict({ ...ema.stateDict(), gamma: 1 }), /gamma/);
    assert.throws(() => ema.copyTo([L.zeros([2])]), /target has shape \[2\]/);
    assert.throws(() => ema.update(0), /1-based/);
    ema.dispose();
    other.dispose();
  }
});

test('memory stays flat over 200 steps of AdamW + clipping + warm-up + EMA', () => {
  const backend = L.getBackend('cpu');
  const gen = new L.Generator(11);
  const w1 = L.mul(L.randn([8, 16], { generator: gen }), 0.3).requiresGrad_();
  const b1 = L.zeros([16], { requiresGrad: true });
  const w2 = L.mul(L.randn([16, 1], { generator: gen }), 0.3).requiresGrad_();
  const params = [w1, b1, w2];
  const opt = new AdamW([{ params: [w1, w2], weightDecay: 0.1 }, { params: [b1], weightDecay: 0 }], { lr: 1e-2 });
  const sched = new WarmupScheduler(opt, 20);
  const ema = new PowerEma(params, { gamma: 6.94, every: 2 });
  const x = L.randn([32, 8], { generator: gen });
  const y = L.sum(L.sin(x), 1, true);
  const live: number[] = [];
  let first = 0, last = 0;
  for (let step = 1; step <= 200; step++) {
    const loss = L.scope(() => {
      opt.zeroGrad();
      const l = L.mseLoss(L.matmul(L.silu(L.add(L.matmul(x, w1), b1)), w2), y);
      l.backward();
      clipGradNorm(params, 1.0);
      opt.step();
      sched.step();
      ema.update(step);
      return l.item();
    });
    if (step === 1) first = loss;
    last = loss;
    live.push(backend.liveBuffers());
  }
  const steady = live.slice(2);
  assert.equal(Math.max(...steady), Math.min(...steady), `live buffers drifted: ${Math.min(...steady)}..${Math.max(...steady)}`);
  assert.ok(last < first * 0.5, `the loop should learn (loss ${first} -> ${last})`);
  opt.dispose();
  ema.dispose();
});

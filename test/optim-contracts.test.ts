// Optimizer behaviour the PyTorch fixtures of optim.test.ts do not reach (found by mutation testing, see
// docs/testing.md): SGD against hand-computed torch.optim.SGD steps; every hyperparameter and state-dict
// check, with its message, and the boundary values that are legal; optimizer and EMA state moved between
// devices; the EMA's phase (`at`) and bfloat16 parameters; clipping half-precision gradients; muP's rank
// checks; checkpoint loading errors and its memory.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { cpuReferenceBackend } from '../src/backends/cpu/index.js';
import { loadCheckpoint, saveCheckpoint } from '../src/optim/checkpoint.js';
import { saveSafetensors } from '../src/io/safetensors.js';

const { AdamW, Adam, SGD, PowerEma, WarmupScheduler, clipGradNorm, linearWarmup, powerEmaBeta, muPLrScale, infiniteDims, muPGroups } = L.optim;
// a second device with data: the pure reference backend
L.registerBackendInstance(cpuReferenceBackend);

const arr = (t: L.Tensor) => Array.from(t.toArray());
const near = (a: number[], b: number[], tol: number, what: string) =>
  b.forEach((v, i) => assert.ok(Math.abs(a[i]! - v) <= tol * Math.max(1, Math.abs(v)), `${what}[${i}]: ${a[i]} vs ${v}`));

test('SGD follows torch.optim.SGD step by step: momentum buffer, weight decay added to the gradient, parameters without a gradient untouched', () => {
  const p = L.tensor([1, -2]), q = L.tensor([0.5]);
  const opt = new SGD([p, q], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
  // torch: d = g + wd p; buf = d on the first step, then buf = 0.9 buf + d; p -= lr buf
  let P = [1, -2], buf = [0, 0];
  const grads = [[0.5, 1], [-1, 2], [0.25, 0.25]];
  grads.forEach((g, s) => {
    p.setGrad(L.tensor(g));
    if (s === 1) q.setGrad(null);
    else q.setGrad(L.tensor([2]));
    opt.step();
    const d = g.map((v, i) => v + 0.01 * P[i]!);
    buf = s === 0 ? d : buf.map((b, i) => 0.9 * b + d[i]!);
    P = P.map((v, i) => v - 0.1 * buf[i]!);
    near(arr(p), P, 1e-6, `p after step ${s + 1}`);
  });
  // q stepped on steps 1 and 3 only: buf 2.005, then 0.9 * 2.005 + (2 + 0.01 q)
  const q1 = 0.5 - 0.1 * (2 + 0.005), buf3 = 0.9 * (2 + 0.005) + (2 + 0.01 * q1);
  near(arr(q), [q1 - 0.1 * buf3], 1e-6, 'q');
  // plain SGD: p -= lr g, no state
  const r = L.tensor([3]);
  const plain = new SGD([r], { lr: 0.5 });
  r.setGrad(L.tensor([2]));
  plain.step();
  plain.step();
  assert.deepEqual(arr(r), [1]);
  plain.zeroGrad();
  assert.equal(r.grad, null);
  assert.throws(() => new SGD([r], { lr: 0 }), /^Error: SGD: lr must be positive, got 0/);
  assert.throws(() => new SGD([r], { lr: -1 }), /SGD: lr must be positive, got -1/);
});

test('Adam/AdamW hyperparameter checks name the optimizer, the group and the value; the boundary values are legal', () => {
  const p = () => [L.zeros([2])];
  for (const [Opt, kind] of [[AdamW, 'AdamW'], [Adam, 'Adam']] as const) {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ lr: -1 }, /lr must be a finite number >= 0, got -1/], [{ lr: NaN }, /lr must be/],
      [{ weightDecay: -0.1 }, /weightDecay must be a finite number >= 0, got -0.1/], [{ weightDecay: Infinity }, /weightDecay must be/],
      [{ betas: [0.9] }, /betas must be a pair \[beta1, beta2\], got \[0.9\]/], [{ betas: 'x' }, /betas must be a pair/],
      [{ betas: [0.9, 1] }, /betas\[1\] must be in \[0, 1\), got 1/], [{ betas: [-0.1, 0.9] }, /betas\[0\] must be in \[0, 1\), got -0.1/],
      [{ eps: -1 }, /eps must be a finite number >= 0, got -1/], [{ eps: NaN }, /eps must be a finite number >= 0, got NaN/],
    ];
    for (const [h, re] of bad) {
      assert.throws(() => new Opt([{ params: p(), name: 'g0', ...h }], { lr: 1e-3 }), (e: Error) => e.message.startsWith(`${kind}: group 0 'g0': `) && re.test(e.message), JSON.stringify(h));
    }
    // legal at the boundary: lr 0, weightDecay 0, beta 0, eps 0
    const ok = new Opt([{ params: p(), lr: 0, weightDecay: 0, betas: [0, 0], eps: 0 }], { lr: 1 });
    assert.equal(ok.effectiveLr(0), 0);
    assert.throws(() => ok.effectiveLr(3), new RegExp(`^Error: ${kind}.effectiveLr: no group 3 \\(there are 1\\)`));
    assert.throws(() => new Opt([{ lr: 1 } as unknown as L.optim.ParamGroup], { lr: 1 }), new RegExp(`^Error: ${kind}: group 0: expected \\{params: Tensor\\[\\], \\.\\.\\.\\} or a list of tensors`));
    assert.throws(() => new Opt([{ params: [L.zeros([1]), 3 as unknown as L.Tensor] }], { lr: 1 }), /group 0: params\[1\] is not a tensor/);
    assert.throws(() => ok.setLrScale(-0.5), new RegExp(`^Error: ${kind}.setLrScale: scale must be a finite number >= 0, got -0.5`));
    assert.throws(() => ok.setLrScale(NaN), /setLrScale: scale must be/);
    ok.setLrScale(0);
    ok.setLrScale(0.25);
    assert.equal(ok.lrScale, 0.25);
  }
});

test('Adam loadStateDict checks every field before changing anything, moves state from another device, and restores lrScale only when saved', () => {
  const params = [L.tensor([1, 2]), L.tensor([[3]])];
  const opt = new AdamW([{ params, name: 'named' }], { lr: 0.1 });
  params.forEach((p) => p.setGrad(L.onesLike(p)));
  opt.step();
  const sd = opt.stateDict();
  assert.equal(sd.groups[0]!.name, 'named');
  const unnamed = new AdamW([L.zeros([1])], { lr: 0.1 }).stateDict();
  assert.ok(!('name' in unnamed.groups[0]!), 'no name key for an unnamed group');
  const good = () => ({ ...sd, groups: sd.groups.map((g) => ({ ...g })), state: sd.state.map((s) => ({ ...s })) });
  const bad: [(d: ReturnType<typeof good>) => unknown, RegExp][] = [
    [() => null, /^Error: AdamW.loadStateDict: expected \{step, groups: \[\.\.\.\], state: \[\.\.\.\]\}/],
    [() => 'text', /expected \{step, groups/],
    [(d) => ({ ...d, state: undefined }), /expected \{step, groups/],
    [(d) => ({ ...d, step: -1 }), /AdamW.loadStateDict: step must be an integer >= 0, got -1/],
    [(d) => ({ ...d, step: 1.5 }), /step must be an integer >= 0, got 1.5/],
    [(d) => ({ ...d, lrScale: -1 }), /AdamW.loadStateDict: lrScale must be a finite number >= 0, got -1/],
    [(d) => ({ ...d, lrScale: NaN }), /lrScale must be a finite number >= 0, got NaN/],
    [(d) => ({ ...d, groups: [{ ...d.groups[0], eps: -1 }] }), /AdamW.loadStateDict: saved group 0 'named': eps must be/],
    [(d) => ({ ...d, state: [null, d.state[1]] }), /AdamW.loadStateDict: parameter 0 \(group 0 'named', params\[0\]\): missing state/],
    [(d) => ({ ...d, state: [d.state[0], 7] }), /parameter 1 \(group 0 'named', params\[1\]\): missing state/],
    [(d) => ({ ...d, state: [{ ...d.state[0], step: -2 }, d.state[1]] }), /parameter 0 .*: step must be an integer >= 0, got -2/],
    [(d) => ({ ...d, state: [{ ...d.state[0], step: 0.5 }, d.state[1]] }), /step must be an integer >= 0, got 0.5/],
    [(d) => ({ ...d, state: [{ ...d.state[0], m: [0, 0] }, d.state[1]] }), /parameter 0 .*: m is not a tensor/],
    [(d) => ({ ...d, state: [d.state[0], { ...d.state[1], v: L.zeros([1]) }] }), /parameter 1 .*: saved v has shape \[1\] but the parameter has shape \[1, 1\]/],
    [(d) => ({ ...d, state: [{ ...d.state[0], m: L.zeros([3]) }, d.state[1]] }), /saved m has shape \[3\] but the parameter has shape \[2\]/],
  ];
  const before = { p: params.map(arr), m: sd.state.map((s) => arr(s.m)), lrScale: opt.lrScale, step: opt.stepCount };
  for (const [make, re] of bad) assert.throws(() => opt.loadStateDict(make(good()) as L.optim.AdamStateDict), re, String(re));
  assert.deepEqual(sd.state.map((s) => arr(s.m)), before.m, 'nothing changed');
  assert.equal(opt.stepCount, before.step);
  // step 0 is legal; state held on another device is copied over; lrScale kept when the dict has none
  opt.setLrScale(0.5);
  const moved = good();
  moved.step = 0;
  moved.state = moved.state.map((s) => ({ step: 0, m: L.full(s.m.shape, 0.25, { device: 'cpu-reference' }), v: L.full(s.v.shape, 4, { device: 'cpu-reference' }) }));
  delete (moved as { lrScale?: number }).lrScale;
  opt.loadStateDict(moved);
  assert.equal(opt.lrScale, 0.5);
  assert.equal(opt.stepCount, 0);
  const now = opt.stateDict();
  assert.deepEqual(now.state.map((s) => [s.m.device, arr(s.m)[0], arr(s.v)[0], s.step]), [['cpu', 0.25, 4, 0], ['cpu', 0.25, 4, 0]]);
  opt.loadStateDict({ ...good(), lrScale: 0 });
  assert.equal(opt.lrScale, 0);
  // dispose frees the moments
  const live = L.getBackend('cpu').liveBuffers();
  opt.dispose();
  assert.equal(L.getBackend('cpu').liveBuffers(), live - 4);
});

test('WarmupScheduler and linearWarmup reject bad counts and positions by name; 0 warm-up steps means the full lr', () => {
  const opt = new AdamW([L.zeros([1])], { lr: 1 });
  assert.equal(linearWarmup(5, 0), 1);
  assert.equal(linearWarmup(0, -3), 1);
  assert.equal(linearWarmup(0, 0.5), 1);
  const none = new WarmupScheduler(opt, 0);
  assert.equal(none.scale, 1);
  assert.equal(opt.lrScale, 1);
  for (const w of [-1, 1.5, NaN]) assert.throws(() => new WarmupScheduler(opt, w), new RegExp(`^Error: WarmupScheduler: warmupSteps must be an integer >= 0, got ${w}`));
  const s = new WarmupScheduler(opt, 4);
  for (const sd of [{ lastStep: -1 }, { lastStep: 1.5 }, {}, undefined]) {
    assert.throws(() => s.loadStateDict(sd as { lastStep: number }), /^Error: WarmupScheduler.loadStateDict: lastStep must be an integer >= 0, got/, JSON.stringify(sd));
  }
  s.loadStateDict({ lastStep: 0 });
  assert.equal(opt.lrScale, 0.25);
  s.loadStateDict({ lastStep: 2 });
  assert.equal(opt.lrScale, 0.75);
});

test('PowerEma: checks with messages, the phase `at` of every-k updates, bfloat16 parameters averaged in float32, state across devices', () => {
  const p = L.tensor([1, 2]);
  for (const [o, re] of [[{ gamma: -1 }, /gamma must be a finite number > -1, got -1/], [{ gamma: NaN }, /gamma must be/], [undefined, /gamma must be a finite number > -1, got undefined/],
    [{ gamma: 1, every: 0 }, /every must be an integer >= 1, got 0/], [{ gamma: 1, every: 1.5 }, /every must be an integer >= 1, got 1.5/],
    [{ gamma: 1, at: -1 }, /at must be a non-negative integer, got -1/], [{ gamma: 1, at: 0.5 }, /at must be a non-negative integer, got 0.5/]] as const) {
    assert.throws(() => new PowerEma([p], o as unknown as L.optim.PowerEmaOptions), (e: Error) => e.message.startsWith('PowerEma: ') && re.test(e.message), JSON.stringify(o));
  }
  new PowerEma([p], { gamma: -0.5, every: 1, at: 0 }).dispose(); // legal boundaries
  for (const s of [0, -1, 1.5]) {
    assert.throws(() => powerEmaBeta(s, 1), new RegExp(`^Error: powerEmaBeta: step must be an integer >= 1 \\(1-based\\), got ${s}`));
    assert.throws(() => new PowerEma([p], { gamma: 1 }).update(s), /PowerEma.update: step must be an integer >= 1/);
  }
  // every 3 with phase 1: updates at steps 1, 4, 7
  const ema = new PowerEma([p], { gamma: 1, every: 3, at: 1 });
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((s) => ema.update(s)), [true, false, false, true, false, false, true]);
  // bfloat16 parameters: the average is float32 and follows the formula
  const h = L.tensor([1, 3]).to('bfloat16');
  const eh = new PowerEma([h], { gamma: 0 });
  assert.equal(eh.ema[0]!.dtype, 'float32');
  h.assign(L.tensor([3, 5]).to('bfloat16'));
  eh.update(2); // beta = (1 - 1/2)^1 = 0.5
  assert.deepEqual(arr(eh.ema[0]!), [2, 4]);
  // copyTo and loadStateDict across devices; shape and count errors name the operation
  const target = L.zeros([2], { device: 'cpu-reference' });
  eh.copyTo([target]);
  assert.deepEqual([target.device, ...arr(target)], ['cpu-reference', 2, 4]);
  assert.throws(() => eh.copyTo([L.zeros([3])]), /^Error: PowerEma.copyTo: parameter 0: target has shape \[3\], the average has shape \[2\]/);
  assert.throws(() => eh.copyTo([L.zeros([1, 2])]), /PowerEma.copyTo: parameter 0: target has shape \[1, 2\]/);
  const named = L.zeros([2]);
  named.name = 'w';
  const en = new PowerEma([named], { gamma: 0 });
  assert.throws(() => en.copyTo([L.zeros([5])]), /parameter 0 'w': target has shape \[5\]/);
  en.loadStateDict({ gamma: 0, every: 1, lastStep: 0, ema: [L.tensor([7, 8], { device: 'cpu-reference' })] });
  assert.deepEqual([en.ema[0]!.device, ...arr(en.ema[0]!)], ['cpu', 7, 8]);
  assert.equal(en.lastStep, 0);
  for (const [sd, re] of [[null, /^Error: PowerEma.loadStateDict: expected \{gamma, every, lastStep, ema: Tensor\[\]\}/], [{ gamma: 0, every: 1, lastStep: 0 }, /expected \{gamma/],
    [{ gamma: 0, every: 2, lastStep: 0, ema: [L.zeros([2])] }, /saved gamma=0, every=2 but this EMA has gamma=0, every=1/],
    [{ gamma: 0, every: 1, lastStep: -1, ema: [L.zeros([2])] }, /lastStep must be an integer >= 0, got -1/],
    [{ gamma: 0, every: 1, lastStep: 0.5, ema: [L.zeros([2])] }, /lastStep must be an integer >= 0, got 0.5/]] as const) {
    assert.throws(() => en.loadStateDict(sd as unknown as L.optim.PowerEmaStateDict), re, JSON.stringify(sd));
  }
  const live = L.getBackend('cpu').liveBuffers();
  en.dispose();
  assert.equal(L.getBackend('cpu').liveBuffers(), live - 1);
});

test('clipGradNorm on float16 and bfloat16 gradients: the norm in float32, the gradients scaled in their own dtype', () => {
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const a = L.zeros([2]), b = L.zeros([1]);
    a.setGrad(L.tensor([3, 0]).to(dtype));
    b.setGrad(L.tensor([4]).to(dtype));
    assert.equal(clipGradNorm([a, b], 1), 5, dtype);
    assert.equal(a.grad!.dtype, dtype);
    near([...arr(a.grad!.to('float32')), ...arr(b.grad!.to('float32'))], [0.6, 0, 0.8], 4e-3, dtype);
  }
});

test('clipGradNorm sums every shape into its slot: a 0-d gradient, an empty one, matrices, on two devices and with float64', () => {
  const sets: [L.Tensor[], number][] = [];
  const mk = (data: number[], shape: number[], o: { device?: string; dtype?: 'float64' } = {}) => {
    const p = L.zeros(shape, o);
    p.setGrad(L.tensor(data, { shape, ...o }));
    return p;
  };
  // 0-d 2, empty, a 2x2 matrix (1, 2, 2, 4): total sqrt(4 + 0 + 25) on one device
  sets.push([[mk([2], []), mk([], [0]), mk([1, 2, 2, 4], [2, 2])], Math.sqrt(29)]);
  // the same over two devices (the stacked fallback) and with a float64 gradient
  sets.push([[mk([2], []), mk([1, 2, 2, 4], [2, 2], { device: 'cpu-reference' })], Math.sqrt(29)]);
  sets.push([[mk([2], [], { dtype: 'float64' }), mk([1, 2, 2, 4], [2, 2])], Math.sqrt(29)]);
  for (const [ps, total] of sets) assert.ok(Math.abs(clipGradNorm(ps, 100) - total) < 1e-6, `${ps.map((p) => p.describe()).join(', ')}`);
});

test('muP: shapes of different rank are an error; vectors and matrices of the base width keep the base lr; no decay on vectors', () => {
  assert.throws(() => infiniteDims([4, 4], [4]), /^Error: muP: shape \[4,4\] and base shape \[4\] differ in rank/);
  assert.equal(muPLrScale([8], [4]), 1); // a vector: never scaled
  assert.equal(muPLrScale([8, 4], [4, 4]), 1); // one infinite dim (an output layer)
  assert.equal(muPLrScale([8, 8], [4, 4]), 0.5);
  const named: [string, L.Tensor][] = [['w', L.zeros([8, 8])], ['b', L.zeros([8])]];
  const groups = muPGroups(named, new Map([['w', [4, 4]], ['b', [4]]]), { lr: 1, weightDecay: 0.1 });
  const by = Object.fromEntries(groups.map((g) => [g.params[0] === named[0]![1] ? 'w' : 'b', g]));
  assert.deepEqual([by.w!.lr, by.w!.weightDecay, by.b!.lr, by.b!.weightDecay], [0.5, 0.1, 1, 0]);
  assert.equal(by.w!.name, 'lr=0.5000 wd=0.1');
  const noWd = muPGroups(named, new Map([['w', [4, 4]], ['b', [4]]]), { lr: 1 });
  assert.deepEqual(noWd.map((g) => g.weightDecay).sort(), [0, 0]);
});

test('loadCheckpoint: bad metadata and missing moments are named with the file; the loaded tensors are freed; weights land on the model\'s device', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lav-ckpt-'));
  const model = new L.nn.Linear(3, 2, { device: 'cpu-reference', generator: new L.Generator(1) });
  const opt = new AdamW(model.parameters(), { lr: 0.1 });
  const path = join(dir, 'ok.safetensors');
  saveCheckpoint(path, model, opt, { format: 'lavender-train-v1', step: 3 }, { 'ema.x': L.ones([2]) });
  const other = new L.nn.Linear(3, 2, { device: 'cpu-reference', generator: new L.Generator(2) });
  const opt2 = new AdamW(other.parameters(), { lr: 0.1 });
  opt2.stateDict(); // materialises its moments, so the count below is only what loading adds
  const be = L.getBackend('cpu-reference'), live = be.liveBuffers(); // (cpu and cpu-reference share one buffer pool)
  const { meta, extra } = loadCheckpoint(path, other, opt2);
  assert.equal(meta.step, 3);
  assert.deepEqual(Object.keys(extra), ['ema.x']);
  assert.equal(extra['ema.x']!.device, 'cpu-reference');
  assert.deepEqual(arr(other.weight), arr(model.weight));
  // only the extra tensor stays allocated (weights and moments were copied in and their loaded copies freed)
  assert.equal(be.liveBuffers(), live + 1);
  const write = (name: string, meta: Record<string, string>, tensors: Record<string, L.Tensor> = { 'model.weight': L.zeros([2, 3]), 'model.bias': L.zeros([2]) }) => {
    const p = join(dir, name);
    saveSafetensors(p, tensors, meta);
    return p;
  };
  const good = JSON.stringify({ format: 'lavender-train-v1', step: 1 }), optim = JSON.stringify({ step: 0, groups: opt2.stateDict().groups, steps: [0, 0] });
  const cases: [string, RegExp][] = [
    [write('nojson.safetensors', { lavender: '{', optimizer: optim }), /nojson\.safetensors: metadata is not valid JSON/],
    [write('nometa.safetensors', { optimizer: optim }), /nometa\.safetensors: metadata field 'lavender' is missing or not a lavender-train-v1 checkpoint/],
    [write('format.safetensors', { lavender: JSON.stringify({ format: 'other', step: 1 }), optimizer: optim }), /format\.safetensors: metadata field 'lavender' is missing or not/],
    [write('noopt.safetensors', { lavender: good }), /noopt\.safetensors: metadata field 'optimizer' is missing/],
    [write('nosteps.safetensors', { lavender: good, optimizer: JSON.stringify({ step: 0 }) }), /nosteps\.safetensors: metadata field 'optimizer' is missing/],
    [write('weights.safetensors', { lavender: good, optimizer: optim }, { 'model.weight': L.zeros([2, 3]) }), /weights\.safetensors: .*bias/],
    [write('moments.safetensors', { lavender: good, optimizer: optim }), /moments\.safetensors: tensors 'optim\.0\.m' \/ 'optim\.0\.v' are missing/],
    [write('onlym.safetensors', { lavender: good, optimizer: optim }, { 'model.weight': L.zeros([2, 3]), 'model.bias': L.zeros([2]), 'optim.0.m': L.zeros([2, 3]), 'optim.1.m': L.zeros([2]), 'optim.1.v': L.zeros([2]) }),
      /onlym\.safetensors: tensors 'optim\.0\.m' \/ 'optim\.0\.v' are missing/],
  ];
  for (const [p, re] of cases) assert.throws(() => loadCheckpoint(p, other, opt2), (e: Error) => e.message.startsWith(`checkpoint ${p}: `) && re.test(e.message), String(re));
});

// ---- found by the second StrykerJS run (after the tests above)

test('shape checks compare every dim and the rank; an unnamed group is "group i"; a disposed parameter is named by the step', () => {
  // AdamW: a moment of the parameter's rank with one dim off; a saved group without a name
  const p = L.zeros([2, 3]);
  const opt = new AdamW([p], { lr: 0.1 });
  const sd = opt.stateDict();
  assert.throws(() => opt.loadStateDict({ ...sd, state: [{ ...sd.state[0]!, m: L.zeros([2, 4]) }] }), /parameter 0 \(group 0, params\[0\]\): saved m has shape \[2, 4\] but the parameter has shape \[2, 3\]/);
  assert.throws(() => opt.loadStateDict({ ...sd, groups: [{ ...sd.groups[0]!, eps: -1 }] }), /^Error: AdamW.loadStateDict: saved group 0: eps must be a finite number >= 0, got -1$/);
  const q = L.tensor([1]);
  const optQ = new Adam([q], { lr: 0.1 });
  q.dispose(); // (which drops its gradient; one given afterwards reaches the step)
  q.setGrad(L.tensor([1]));
  assert.throws(() => optQ.step(), /^Error: Adam.step: use of a disposed tensor/);
  // PowerEma: a target or saved average with the same leading dims but another rank, or one dim off
  const ema = new PowerEma([L.zeros([2, 1])], { gamma: 1 });
  assert.throws(() => ema.copyTo([L.zeros([2])]), /^Error: PowerEma.copyTo: parameter 0: target has shape \[2\], the average has shape \[2, 1\]/);
  const wide = new PowerEma([L.zeros([2, 3])], { gamma: 1 });
  assert.throws(() => wide.loadStateDict({ gamma: 1, every: 1, lastStep: 0, ema: [L.zeros([2, 4])] }), /^Error: PowerEma.loadStateDict: parameter 0: saved ema has shape \[2, 4\], the average has shape \[2, 3\]/);
});

test('plain SGD keeps no per-parameter state; loadCheckpoint works for a model without parameters', () => {
  const r = L.tensor([3, 1]);
  const plain = new SGD([r], { lr: 0.5 });
  r.setGrad(L.tensor([2, 2]));
  const before = L.getBackend('cpu').liveBuffers();
  L.scope(() => plain.step());
  L.scope(() => plain.step());
  assert.equal(L.getBackend('cpu').liveBuffers(), before, 'no velocity buffer without momentum');
  assert.deepEqual(arr(r), [1, -1]);
  // a model without parameters (its state lives elsewhere): the loader has no parameter to take a device from
  const dir = mkdtempSync(join(tmpdir(), 'lav-ckpt-'));
  const empty = new L.nn.Module();
  const w = L.tensor([1, 2]);
  const opt = new AdamW([w], { lr: 0.1 });
  w.setGrad(L.tensor([1, 1]));
  opt.step();
  saveCheckpoint(join(dir, 'c.safetensors'), empty, opt, { format: 'lavender-train-v1', step: 1 });
  const opt2 = new AdamW([L.tensor([1, 2])], { lr: 0.1 });
  assert.equal(loadCheckpoint(join(dir, 'c.safetensors'), empty, opt2).meta.step, 1);
  assert.equal(opt2.stepCount, 1);
});

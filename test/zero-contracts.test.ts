// ZeRO behaviour dist.test.ts does not reach (found by mutation testing, see docs/testing.md): buckets that
// hold several parameters (and one larger than the limit), parameter groups, Adam vs AdamW, a parameter
// without a gradient, bfloat16 parameters, which collectives each stage uses, the memory report and the
// bytes formula (stage 3 included), the checks on bad options, and the sharded / full optimizer state round trips in-process.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../src/index.js';
import { tensor, zeros } from '../src/ops/creation.js';
import { getBackend, registerBackendInstance } from '../src/backends/registry.js';
import { cpuReferenceBackend } from '../src/backends/cpu/index.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { Adam, AdamW, type AdamBase, type ParamGroup } from '../src/optim/adamw.js';
import type { ProcessGroup } from '../src/distributed/process-group.js';
import { ZeroOptimizer, zeroFormulaBytes, type ZeroOptions, type ZeroStage } from '../src/distributed/zero.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { groups } from './harness/process-groups.js';

// a second device with data (the pure reference backend), for parameters held elsewhere than the default device
registerBackendInstance(cpuReferenceBackend);

const arr = (t: Tensor) => Array.from(t.toArray());
// several small parameters: with bucketElements 12, buckets [p0 (5), p1 (6)], [p2 (7)], [p3 (20): larger than the limit]
const SHAPES = [[5], [2, 3], [7], [4, 5]];
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const init = (i: number, dtype: 'float32' | 'bfloat16' = 'float32') => tensor(Float32Array.from({ length: size(SHAPES[i]!) }, (_, k) => Math.cos(k + 3 * i)), { shape: SHAPES[i] }).to(dtype);
const gradFor = (rank: number, step: number, i: number) => tensor(Float32Array.from({ length: size(SHAPES[i]!) }, (_, k) => Math.fround(Math.sin(k * 0.7 + rank * 1.9 + step * 0.3 + i))), { shape: SHAPES[i] });

/** Split the 4 parameters into the given groups (lists of indices) with their own lr / weight decay. */
function grouped(params: Tensor[], split?: number[][]): ParamGroup[] | Tensor[] {
  if (!split) return params;
  return split.map((idx, gi) => ({ params: idx.map((i) => params[i]!), lr: 0.05 * (gi + 1), weightDecay: 0.1 / (gi + 1), name: `g${gi}` }));
}

interface RunOpts { N: number; stage: ZeroStage; steps: number; optimizer?: 'adam' | 'adamw'; split?: number[][]; nullGrad?: number; dtype?: 'float32' | 'bfloat16'; eps?: number }

/** Every rank steps ZeRO on its own gradients; returns the ranks' parameters and the optimizers (groups destroyed). */
async function zeroRun(o: RunOpts, spy?: (pg: ProcessGroup) => void) {
  const pgs = await groups(o.N);
  try {
    pgs.forEach((pg) => spy?.(pg));
    const ranks = pgs.map((pg) => {
      const params = SHAPES.map((_, i) => init(i, o.dtype));
      const opts: ZeroOptions = { stage: o.stage, optimizer: o.optimizer ?? 'adamw', lr: 0.05, weightDecay: 0.1, bucketElements: 12, eps: o.eps ?? 10 };
      return { pg, params, opt: new ZeroOptimizer(pg, grouped(params, o.split), opts) };
    });
    for (let s = 0; s < o.steps; s++) {
      for (const r of ranks) r.params.forEach((p, i) => p.setGrad(i === o.nullGrad ? null : gradFor(r.pg.rank, s, i)));
      await Promise.all(ranks.map((r) => r.opt.step()));
    }
    return ranks;
  } finally {
    for (const pg of pgs) pg.destroy();
  }
}

/** One process, averaged gradients (float64 sum, one rounding), the same optimizer. */
function reference(o: RunOpts) {
  const params = SHAPES.map((_, i) => init(i));
  const Opt = (o.optimizer ?? 'adamw') === 'adamw' ? AdamW : Adam;
  const opt: AdamBase = new Opt(grouped(params, o.split), { lr: 0.05, weightDecay: 0.1, eps: o.eps ?? 10 });
  for (let s = 0; s < o.steps; s++) {
    params.forEach((p, i) => {
      if (i === o.nullGrad) return p.setGrad(tensor(new Float32Array(p.size), { shape: p.shape })); // ZeRO: a zero gradient
      const acc = new Float64Array(p.size);
      for (let r = 0; r < o.N; r++) gradFor(r, s, i).toArray().forEach((v, k) => (acc[k]! += v));
      p.setGrad(tensor(Float32Array.from(acc, (v) => v / o.N), { shape: p.shape }));
    });
    opt.step();
  }
  return params.map(arr);
}

function assertParams(got: number[][], want: number[][], tol: number, what: string): void {
  got.forEach((vals, i) => vals.forEach((v, k) => assert.ok(Math.abs(v - want[i]![k]!) <= tol, `${what}: param ${i}[${k}] ${v} vs ${want[i]![k]}`)));
}

test('ZeRO buckets hold several parameters up to bucketElements, a larger one alone, per group; slices, padding and layout follow', async () => {
  const [r0, r1] = await zeroRun({ N: 2, stage: 2, steps: 0 });
  assert.deepEqual(r0!.opt.buckets.map((b) => [b.group, b.params, b.shapes, b.numel, b.padded, b.shard]), [
    [0, [0, 1], [[5], [2, 3]], 11, 12, 6], [0, [2], [[7]], 7, 8, 4], [0, [3], [[4, 5]], 20, 20, 10]]);
  assert.deepEqual(r0!.opt.layout, { worldSize: 2, bucketElements: 12, buckets: r0!.opt.buckets.map(({ group, params, shapes, numel }) => ({ group, params, shapes, numel })) });
  // rank 1's master slice of bucket 0: elements 6..11 of [p0 (5), p1 (6), pad]
  const flat0 = [...arr(init(0)), ...arr(init(1)), 0];
  assert.deepEqual(arr(r1!.opt.masters[0]!), flat0.slice(6, 12).map(Math.fround));
  assert.deepEqual(r0!.opt.masters.map((m) => m.name), ['zero bucket 0 master slice', 'zero bucket 1 master slice', 'zero bucket 2 master slice']);
  // groups never share a bucket
  // group 0 = [p2], group 1 = [p0, p1, p3] (indices 1..3 in group order)
  const [g0] = await zeroRun({ N: 2, stage: 1, steps: 0, split: [[2], [0, 1, 3]] });
  assert.deepEqual(g0!.opt.buckets.map((b) => [b.group, b.params]), [[0, [0]], [1, [1, 2]], [1, [3]]]);
});

test('ZeRO with multi-parameter buckets, parameter groups, Adam or AdamW, and a parameter without a gradient equals one process', async () => {
  const cases: RunOpts[] = [
    { N: 3, stage: 1, steps: 3 }, { N: 3, stage: 2, steps: 3 }, { N: 2, stage: 0, steps: 3 },
    { N: 2, stage: 2, steps: 2, optimizer: 'adam' }, { N: 3, stage: 1, steps: 2, split: [[0, 2], [1, 3]] },
    { N: 2, stage: 0, steps: 2, split: [[3], [0, 1, 2]] }, { N: 2, stage: 2, steps: 2, nullGrad: 1 }, { N: 2, stage: 0, steps: 2, nullGrad: 2 },
    { N: 3, stage: 3, steps: 3 }, { N: 2, stage: 3, steps: 2, split: [[0, 2], [1, 3]] }, { N: 2, stage: 3, steps: 2, nullGrad: 3 },
  ];
  for (const o of cases) {
    const want = reference(o);
    for (const r of await zeroRun(o)) assertParams(r.params.map(arr), want, 1e-6, JSON.stringify(o));
  }
  // the check has teeth: Adam and AdamW differ here, and so do the groups' learning rates
  assert.notDeepEqual(reference({ N: 2, stage: 0, steps: 2, optimizer: 'adam' }), reference({ N: 2, stage: 0, steps: 2 }));
});

test('ZeRO keeps bfloat16 parameters in bfloat16, with float32 master slices, following the float32 run to bf16 rounding', async () => {
  const o: RunOpts = { N: 2, stage: 2, steps: 2, dtype: 'bfloat16' };
  const want = reference({ ...o, dtype: 'float32' });
  for (const r of await zeroRun(o)) {
    assert.deepEqual(r.params.map((p) => p.dtype), ['bfloat16', 'bfloat16', 'bfloat16', 'bfloat16']);
    assert.deepEqual(r.opt.masters.map((m) => m.dtype), ['float32', 'float32', 'float32']);
    assertParams(r.params.map((p) => arr(p)), want, 1e-2, 'bf16');
  }
});

test('each stage uses its collectives: 0 all-reduces gradients, 1 all-reduces and all-gathers, 2 and 3 reduce-scatter and all-gather', async () => {
  // stage 3 without units: the root unit holds every parameter and is gathered again after the update
  const expect: Record<ZeroStage, Record<string, number>> = {
    0: { allReduce: 3, reduceScatter: 0, allGather: 0 }, 1: { allReduce: 3, reduceScatter: 0, allGather: 3 }, 2: { allReduce: 0, reduceScatter: 3, allGather: 3 }, 3: { allReduce: 0, reduceScatter: 3, allGather: 3 },
  };
  for (const stage of [0, 1, 2, 3] as const) {
    const calls: Record<string, number> = { allReduce: 0, reduceScatter: 0, allGather: 0 };
    await zeroRun({ N: 2, stage, steps: 1 }, (pg) => {
      if (pg.rank !== 0) return;
      for (const k of Object.keys(calls)) {
        const m = k as 'allReduce' | 'reduceScatter' | 'allGather';
        const orig = pg[m].bind(pg) as (...a: unknown[]) => Promise<void>;
        (pg as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => { calls[m]!++; return orig(...a); };
      }
    });
    assert.deepEqual(calls, expect[stage], `stage ${stage}: collectives per step (3 buckets)`);
  }
});

test('the memory report adds up its parts; the ZeRO bytes formula per stage', async () => {
  for (const stage of [0, 1, 2, 3] as const) {
    const [r] = await zeroRun({ N: 2, stage, steps: 1 });
    const m = r!.opt.memoryReport();
    const psi = SHAPES.reduce((a, s) => a + size(s), 0); // 38
    assert.equal(m.parameters, psi);
    // stage 3: the float32 slices are the parameters' only persistent copy (counted once, as parameters)
    assert.equal(m.measured.parameters, stage === 3 ? 4 * (6 + 4 + 10) : 4 * psi);
    assert.equal(m.measured.gradients, stage >= 2 ? 4 * (6 + 4 + 10) : 4 * psi);
    assert.equal(m.measured.master_weights, stage === 0 || stage === 3 ? 0 : 4 * (6 + 4 + 10));
    assert.equal(m.measured.optimizer_state, stage === 0 ? 8 * psi : 8 * (6 + 4 + 10));
    const { parameters, gradients, master_weights, optimizer_state } = m.measured;
    assert.equal(m.measured.total, parameters + gradients + master_weights + optimizer_state);
    assert.match(m.precision, [
      /^float32 parameters on cpu, float32 gradients\/master weights\/Adam moments \(stage 0: the float32 parameters are the master weights\)$/,
      /^float32 parameters on cpu, float32 gradients\/master weights\/Adam moments$/, /^float32 parameters on cpu, float32 gradients\/master weights\/Adam moments$/,
      /^float32 parameters on cpu, float32 gradients\/master weights\/Adam moments \(stage 3: the float32 parameter slices are the master weights; a unit is gathered only while it runs\)$/,
    ][stage]!);
    assert.deepEqual([m.rank, m.worldSize, m.stage], [0, 2, stage]);
  }
  assert.deepEqual(zeroFormulaBytes(1000, 4, 0), { weights: 2000, gradients: 2000, master_weights: 4000, optimizer_state: 8000, total: 16000, expression: '2Ψ + 2Ψ + KΨ' });
  assert.deepEqual(zeroFormulaBytes(1000, 4, 1), { weights: 2000, gradients: 2000, master_weights: 1000, optimizer_state: 2000, total: 7000, expression: '2Ψ + 2Ψ + KΨ/N' });
  assert.deepEqual(zeroFormulaBytes(1000, 4, 2), { weights: 2000, gradients: 500, master_weights: 1000, optimizer_state: 2000, total: 5500, expression: '2Ψ + (2+K)Ψ/N' });
  assert.deepEqual(zeroFormulaBytes(1000, 4, 3), { weights: 500, gradients: 500, master_weights: 1000, optimizer_state: 2000, total: 4000, expression: '(2+2+K)Ψ/N' });
  assert.equal(zeroFormulaBytes(1001, 4, 2).gradients, 501); // rounded up per rank
  assert.equal(zeroFormulaBytes(1001, 4, 3).weights, 501);
});

test('ZeRO refuses bad options naming them', async () => {
  const [pg] = await groups(1);
  try {
    const p = [tensor([1, 2])];
    const base: ZeroOptions = { stage: 1, optimizer: 'adamw', lr: 0.1 };
    assert.throws(() => new ZeroOptimizer(pg!, p, { ...base, stage: 4 as ZeroStage }), /^Error: ZeRO: stage must be 0, 1, 2 or 3, got 4/);
    assert.throws(() => new ZeroOptimizer(pg!, [tensor([1, 2]).to('bfloat16')], { ...base, stage: 3 }), /^Error: ZeRO-3: parameters must be float32 \(their fp32 slices are the only copy\), got .*bfloat16/);
    const q = [tensor([1, 2]), tensor([3])];
    assert.throws(() => new ZeroOptimizer(pg!, q, { ...base, stage: 3, units: [[q[0]!], [q[0]!, q[1]!]] }), /^Error: ZeRO-3: parameter .* is listed in two units/);
    assert.throws(() => new ZeroOptimizer(pg!, q, { ...base, paramOrder: [q[1]!] }), /^Error: ZeRO: paramOrder must list the optimizer's 2 parameters \(got 1\)/);
    assert.throws(() => new ZeroOptimizer(pg!, [], base), /^Error: ZeRO: got an empty parameter list/);
    assert.throws(() => new ZeroOptimizer(pg!, [{ params: [] }], base), /ZeRO: got an empty parameter list/);
    for (const b of [0, 1.5, -4]) assert.throws(() => new ZeroOptimizer(pg!, p, { ...base, bucketElements: b }), new RegExp(`^Error: ZeRO: bucketElements must be a positive integer, got ${b}`));
    const ok = new ZeroOptimizer(pg!, p, { ...base, bucketElements: 1 });
    assert.equal(ok.buckets.length, 1, 'a parameter larger than the limit still gets one bucket');
    p[0]!.setGrad(tensor([1, 1]));
    await assert.rejects(ok.step({ maxGradNorm: 0 }), /^Error: ZeRO: maxGradNorm must be positive, got 0/);
    const s0 = new ZeroOptimizer(pg!, p, { ...base, stage: 0 });
    assert.throws(() => s0.shardState(), /ZeRO: stage 0 keeps the full optimizer state; save it with the standard checkpoint/);
  } finally {
    pg!.destroy();
  }
});

test('sharded state round trip: 2 steps, shardState, a fresh ZeRO per rank (other hyperparameters) loads its shard and 2 more steps equal 4 uninterrupted ones', async () => {
  for (const stage of [1, 2, 3] as const) {
    const o: RunOpts = { N: 2, stage, steps: 4, split: [[0, 1], [2, 3]] };
    const want = reference(o);
    const pgs = await groups(2);
    try {
      const first = pgs.map((pg) => { const params = SHAPES.map((_, i) => init(i)); return { pg, params, opt: new ZeroOptimizer(pg, grouped(params, o.split), { stage, optimizer: 'adamw', lr: 0.05, weightDecay: 0.1, bucketElements: 12, eps: 10 }) }; });
      const stepAll = async (rs: typeof first, from: number, to: number) => {
        for (let s = from; s < to; s++) {
          for (const r of rs) r.params.forEach((p, i) => p.setGrad(gradFor(r.pg.rank, s, i)));
          await Promise.all(rs.map((r) => r.opt.step()));
        }
      };
      await stepAll(first, 0, 2);
      const shards = first.map((r) => r.opt.shardState());
      assert.deepEqual(shards[0]!.meta.steps, [2, 2, 2]);
      const resumed = first.map((r, k) => {
        const params = r.params.map((p) => tensor(arr(p), { shape: p.shape }));
        const opt = new ZeroOptimizer(r.pg, grouped(params, o.split), { stage, optimizer: 'adamw', lr: 1, weightDecay: 0, bucketElements: 12, eps: 1 });
        opt.loadShard(shards[k]!.tensors, shards[k]!.meta, `shard ${k}`);
        assert.equal(opt.stepCount, 2);
        return { pg: r.pg, params, opt };
      });
      await stepAll(resumed, 2, 4);
      for (const r of resumed) assertParams(r.params.map(arr), want, 1e-6, `stage ${stage} after loadShard`);
      // a shard of another layout is refused naming the tensor and the sizes
      const other = new ZeroOptimizer(pgs[0]!, grouped(SHAPES.map((_, i) => init(i)), o.split), { stage, optimizer: 'adamw', lr: 0.05, bucketElements: 64 });
      assert.throws(() => other.loadShard(shards[0]!.tensors, shards[0]!.meta, 'the shard'), /^Error: the shard: tensor 'zero\.\d\.master' has \[\d+\], this rank's slice of bucket \d has \d+ elements \(different layout\)/);
      assert.throws(() => other.loadShard({}, shards[0]!.meta, 'empty'), /^Error: empty: tensor 'zero\.0\.master' is missing/);
    } finally {
      for (const pg of pgs) pg.destroy();
    }
  }
});

test('loadFullState: a one-process AdamW state loads into ZeRO 0, 1, 2 and 3 at any world size and training continues identically', async () => {
  const o: RunOpts = { N: 2, stage: 2, steps: 4 };
  const want = reference(o);
  // the first 2 steps in one process, as a standard checkpoint would hold them
  const params1 = SHAPES.map((_, i) => init(i));
  const opt1 = new AdamW(params1, { lr: 0.05, weightDecay: 0.1, eps: 10 });
  for (let s = 0; s < 2; s++) {
    params1.forEach((p, i) => {
      const acc = new Float64Array(p.size);
      for (let r = 0; r < 2; r++) gradFor(r, s, i).toArray().forEach((v, k) => (acc[k]! += v));
      p.setGrad(tensor(Float32Array.from(acc, (v) => v / 2), { shape: p.shape }));
    });
    opt1.step();
  }
  const sd = opt1.stateDict();
  for (const stage of [0, 1, 2, 3] as const) {
    const pgs = await groups(2);
    try {
      const ranks = pgs.map((pg) => {
        const params = params1.map((p) => tensor(arr(p), { shape: p.shape }));
        const opt = new ZeroOptimizer(pg, params, { stage, optimizer: 'adamw', lr: 0.05, weightDecay: 0.1, bucketElements: 12, eps: 10 });
        opt.loadFullState(sd);
        return { pg, params, opt };
      });
      for (let s = 2; s < 4; s++) {
        for (const r of ranks) r.params.forEach((p, i) => p.setGrad(gradFor(r.pg.rank, s, i)));
        await Promise.all(ranks.map((r) => r.opt.step()));
      }
      for (const r of ranks) assertParams(r.params.map(arr), want, 1e-6, `loadFullState at stage ${stage}`);
      if (stage > 0) {
        assert.throws(() => ranks[0]!.opt.loadFullState({ ...sd, state: sd.state.slice(1) }), /^Error: ZeRO.loadFullState: the state has 3 parameter\(s\), the model has 4/);
        assert.throws(() => ranks[0]!.opt.loadFullState({ ...sd, state: sd.state.map((s, i) => (i === 1 ? { ...s, m: tensor([1]) } : s)) }), /ZeRO.loadFullState: parameter 1: saved m has shape \[1\], the parameter \[2, 3\]/);
      }
    } finally {
      for (const pg of pgs) pg.destroy();
    }
  }
});

// ---- found by the second StrykerJS run (after the tests above): boundaries, empty groups, devices, memory

const buckets = (opt: ZeroOptimizer) => opt.buckets.map((b) => b.params);
const live = () => getBackend('cpu').liveBuffers();

test('bucket boundaries: a bucket may fill bucketElements exactly; a zero-size parameter does not start a bucket of its own', async () => {
  const [pg] = await groups(1);
  try {
    const make = (shapes: number[][]) => new ZeroOptimizer(pg!, shapes.map((s) => zeros(s)), { stage: 0, optimizer: 'adamw', lr: 0.1, bucketElements: 12 });
    assert.deepEqual(buckets(make([[5], [7], [3]])), [[0, 1], [2]], '5 + 7 = 12 fits');
    assert.deepEqual(buckets(make([[0], [20], [2]])), [[0, 1], [2]], 'the empty parameter shares the next one\'s bucket');
  } finally {
    pg!.destroy();
  }
});

test('a parameter group without parameters: the steps, the shard metadata per original group and both state round trips', async () => {
  const split = (params: Tensor[]): ParamGroup[] => [
    { params: [], lr: 0.3, weightDecay: 0, name: 'empty' },
    { params: [params[0]!, params[1]!], lr: 0.05, weightDecay: 0.1, name: 'a' },
    { params: [params[2]!, params[3]!], lr: 0.1, weightDecay: 0.05, name: 'b' },
  ];
  const gradsAt = (s: number, i: number) => { // the 2 ranks' average, as reference() forms it
    const acc = new Float64Array(size(SHAPES[i]!));
    for (let r = 0; r < 2; r++) gradFor(r, s, i).toArray().forEach((v, k) => (acc[k]! += v));
    return tensor(Float32Array.from(acc, (v) => v / 2), { shape: SHAPES[i] });
  };
  const oneProcess = (steps: number) => {
    const params = SHAPES.map((_, i) => init(i)), opt = new AdamW(split(params), { lr: 1, eps: 10 });
    for (let s = 0; s < steps; s++) {
      params.forEach((p, i) => p.setGrad(gradsAt(s, i)));
      opt.step();
    }
    return { params, sd: opt.stateDict() };
  };
  const ref = oneProcess(4).params, at2 = oneProcess(2), paramsAt2 = at2.params.map(arr);
  for (const stage of [1, 2] as const) {
    const pgs = await groups(2);
    try {
      const zopts: ZeroOptions = { stage, optimizer: 'adamw', lr: 1, eps: 10, bucketElements: 12 };
      const run = (rs: { pg: ProcessGroup; params: Tensor[]; opt: ZeroOptimizer }[], from: number, to: number) => (async () => {
        for (let s = from; s < to; s++) {
          for (const r of rs) r.params.forEach((p, i) => p.setGrad(gradFor(r.pg.rank, s, i)));
          await Promise.all(rs.map((r) => r.opt.step()));
        }
      })();
      const first = pgs.map((pg) => { const params = SHAPES.map((_, i) => init(i)); return { pg, params, opt: new ZeroOptimizer(pg, split(params), zopts) }; });
      await run(first, 0, 2);
      const shard = first[0]!.opt.shardState();
      assert.equal(shard.meta.groups[0]!.numParams, 0);
      assert.deepEqual(shard.meta.groups.slice(1).map((g) => [g.name, g.lr, g.weightDecay, g.numParams]), [['a', 0.05, 0.1, 2], ['b', 0.1, 0.05, 2]], 'hyperparameters of each original group');
      const shards = first.map((r) => r.opt.shardState());
      const resumed = first.map((r, k) => {
        const params = r.params.map((p) => tensor(arr(p), { shape: p.shape }));
        const opt = new ZeroOptimizer(r.pg, split(params), { ...zopts, lr: 7 });
        opt.loadShard(shards[k]!.tensors, shards[k]!.meta, `shard ${k}`);
        return { pg: r.pg, params, opt };
      });
      const full = pgs.map((pg) => {
        const params = paramsAt2.map((v, i) => tensor(v, { shape: SHAPES[i] }));
        const opt = new ZeroOptimizer(pg, split(params), { ...zopts, lr: 7 });
        opt.loadFullState(at2.sd);
        return { pg, params, opt };
      });
      await run(resumed, 2, 4);
      await run(full, 2, 4);
      for (const r of [...resumed, ...full]) assertParams(r.params.map(arr), ref.map(arr), 1e-6, `stage ${stage}`);
    } finally {
      for (const pg of pgs) pg.destroy();
    }
  }
});

test('lrScale, zeroGrad, loadShard at stage 0, and the per-bucket step counts of loadFullState and loadShard', async () => {
  const pgs = await groups(2);
  try {
    const s0 = new ZeroOptimizer(pgs[0]!, [tensor([1, 2])], { stage: 0, optimizer: 'adamw', lr: 0.1 });
    assert.throws(() => s0.loadShard({}, { step: 0, lrScale: 1, groups: [], steps: [] }, 'the shard'), /^Error: the shard: a sharded optimizer state cannot be loaded at ZeRO stage 0; consolidate it first \(lavender consolidate\)/);
    // one process: p1 and p2 get no gradient on the first step, so their step counts are 1 (the optimizer's is 2)
    const params1 = SHAPES.map((_, i) => init(i));
    const opt1 = new AdamW(params1, { lr: 0.05, eps: 10 });
    for (let s = 0; s < 2; s++) {
      params1.forEach((p, i) => p.setGrad(s === 0 && (i === 1 || i === 2) ? null : gradFor(0, s, i)));
      opt1.step();
    }
    const sd = opt1.stateDict();
    assert.deepEqual(sd.state.map((s) => s.step), [2, 1, 1, 2]);
    const ranks = pgs.map((pg) => {
      // built on other weights: loadFullState takes the masters from the parameters as they are when it runs
      const params = SHAPES.map((_, i) => init(i));
      const opt = new ZeroOptimizer(pg, params, { stage: 1, optimizer: 'adamw', lr: 0.05, eps: 10, bucketElements: 12 });
      params.forEach((p, i) => p.assign(tensor(arr(params1[i]!), { shape: p.shape })));
      opt.loadFullState(sd);
      return { pg, params, opt };
    });
    for (const r of ranks) {
      // buckets [p0, p1], [p2], [p3]: a bucket continues at the count of its most-stepped parameter
      assert.deepEqual(r.opt.inner.stateDict().state.map((s) => s.step), [2, 1, 2]);
      const flatAll = r.opt.buckets.map((b) => b.params.flatMap((i) => arr(params1[i]!)));
      r.opt.masters.forEach((m, bi) => {
        const b = r.opt.buckets[bi]!, padded = [...flatAll[bi]!, ...Array(b.padded - b.numel).fill(0)];
        assert.deepEqual(arr(m), padded.slice(r.pg.rank * b.shard, (r.pg.rank + 1) * b.shard), `master slice of bucket ${bi}`);
      });
      r.opt.setLrScale(0.5);
      assert.equal(r.opt.lrScale, 0.5);
      assert.equal(r.opt.inner.lrScale, 0.5);
    }
    const shards = ranks.map((r) => r.opt.shardState());
    assert.deepEqual(shards[0]!.meta.steps, [2, 1, 2]);
    assert.equal(shards[0]!.meta.lrScale, 0.5);
    const again = ranks.map((r, k) => {
      const opt = new ZeroOptimizer(r.pg, r.params, { stage: 1, optimizer: 'adamw', lr: 0.05, eps: 10, bucketElements: 12 });
      opt.loadShard(shards[k]!.tensors, shards[k]!.meta, 'shard');
      return opt;
    });
    assert.deepEqual(again[0]!.inner.stateDict().state.map((s) => s.step), [2, 1, 2]);
    assert.equal(again[0]!.lrScale, 0.5);
    // zeroGrad clears every parameter's gradient
    ranks[0]!.params.forEach((p) => p.setGrad(tensor(arr(p), { shape: p.shape })));
    ranks[0]!.opt.zeroGrad();
    assert.deepEqual(ranks[0]!.params.map((p) => p.grad), [null, null, null, null]);
  } finally {
    for (const pg of pgs) pg.destroy();
  }
});

test('ZeRO on parameters held by another device: every buffer it makes (zero gradients, padding, slices) is made there', async () => {
  const pgs = await groups(2);
  try {
    for (const stage of [0, 1, 2] as const) {
      const ranks = pgs.map((pg) => {
        const params = SHAPES.map((_, i) => init(i).to('cpu-reference'));
        return { pg, params, opt: new ZeroOptimizer(pg, params, { stage, optimizer: 'adamw', lr: 0.05, weightDecay: 0.1, bucketElements: 12, eps: 10 }) };
      });
      for (let s = 0; s < 2; s++) {
        // p2 has no gradient: its zeros, the padding and the slices must be on cpu-reference too
        for (const r of ranks) r.params.forEach((p, i) => p.setGrad(i === 2 ? null : gradFor(r.pg.rank, s, i).to('cpu-reference')));
        await Promise.all(ranks.map((r) => r.opt.step()));
      }
      const want = reference({ N: 2, stage, steps: 2, nullGrad: 2 });
      for (const r of ranks) {
        assert.deepEqual(r.params.map((p) => p.device), ['cpu-reference', 'cpu-reference', 'cpu-reference', 'cpu-reference']);
        assertParams(r.params.map(arr), want, 1e-6, `stage ${stage} on cpu-reference`);
      }
    }
  } finally {
    for (const pg of pgs) pg.destroy();
  }
});

test('ZeRO frees what it allocates: live buffers stay flat over steps, a second loadFullState allocates nothing, dispose frees the rest, a failed collective leaks nothing', async () => {
  for (const stage of [0, 1, 2] as const) {
    const pgs = await groups(2);
    try {
      const ranks = pgs.map((pg) => { const params = SHAPES.map((_, i) => init(i)); return { pg, params, opt: new ZeroOptimizer(pg, params, { stage, optimizer: 'adamw', lr: 0.05, bucketElements: 12, eps: 10 }) }; });
      const counts: number[] = [];
      for (let s = 0; s < 3; s++) {
        for (const r of ranks) r.params.forEach((p, i) => p.setGrad(gradFor(r.pg.rank, s, i)));
        await Promise.all(ranks.map((r) => r.opt.step()));
        counts.push(live());
      }
      assert.deepEqual(counts, [counts[0], counts[0], counts[0]], `stage ${stage}: live buffers after steps 1, 2, 3`);
      const sd = new AdamW(SHAPES.map((_, i) => init(i)), { lr: 0.05 }).stateDict();
      for (const r of ranks) r.opt.loadFullState(sd);
      const before = live();
      for (const r of ranks) r.opt.loadFullState(sd);
      assert.equal(live(), before, `stage ${stage}: loading into existing moments allocates nothing`);
      for (const r of ranks) r.params.forEach((p) => p.setGrad(null));
      const held = live();
      for (const r of ranks) r.opt.dispose();
      // per rank: stage 0 frees the moments (2 per parameter); stages 1/2 the 3 bucket masters and their moments
      assert.equal(held - live(), ranks.length * (stage === 0 ? 2 * SHAPES.length : 3 + 2 * 3), `stage ${stage}: dispose frees the moments and masters`);
    } finally {
      for (const pg of pgs) pg.destroy();
    }
  }
  // a collective that fails (the group is gone): step rejects and frees its buffers
  const pgs = await groups(2);
  const params = SHAPES.map((_, i) => init(i));
  const opt = new ZeroOptimizer(pgs[0]!, params, { stage: 2, optimizer: 'adamw', lr: 0.05, bucketElements: 12 });
  params.forEach((p, i) => p.setGrad(gradFor(0, 0, i)));
  for (const pg of pgs) pg.destroy();
  const before = live();
  await assert.rejects(opt.step());
  assert.equal(live(), before - SHAPES.length, 'the local gradients, freed as their buckets were launched; nothing else stays');
  opt.dispose();
});

test('clipping in ZeRO uses torch\'s coefficient maxNorm / (norm + 1e-6), visible with small gradients', async () => {
  for (const stage of [1, 2] as const) {
    const pgs = await groups(2);
    try {
      // gradients ~1e-6: the 1e-6 guard changes the coefficient by tens of percent
      const small = (rank: number, i: number) => tensor(arr(gradFor(rank, 0, i)).map((v) => v * 1e-6), { shape: SHAPES[i] });
      const ranks = pgs.map((pg) => { const params = SHAPES.map((_, i) => init(i)); return { pg, params, opt: new ZeroOptimizer(pg, params, { stage, optimizer: 'adamw', lr: 0.05, weightDecay: 0, bucketElements: 12, eps: 1e-6 }) }; });
      for (const r of ranks) r.params.forEach((p, i) => p.setGrad(small(r.pg.rank, i)));
      const norms = await Promise.all(ranks.map((r) => r.opt.step({ maxGradNorm: 2e-6 })));
      const ref = SHAPES.map((_, i) => init(i));
      ref.forEach((p, i) => {
        const a = arr(small(0, i)), b = arr(small(1, i));
        p.setGrad(tensor(a.map((v, k) => (v + b[k]!) / 2), { shape: p.shape }));
      });
      const refNorm = clipGradNorm(ref, 2e-6);
      new AdamW(ref, { lr: 0.05, weightDecay: 0, eps: 1e-6 }).step();
      for (const n of norms) assert.ok(Math.abs(n.gradNorm! - refNorm) <= 1e-6 * refNorm, `norm ${n.gradNorm} vs ${refNorm}`);
      for (const r of ranks) assertParams(r.params.map(arr), ref.map(arr), 1e-6, `stage ${stage} clipped`);
    } finally {
      for (const pg of pgs) pg.destroy();
    }
  }
});

test('the memory report names every parameter dtype', async () => {
  const [pg] = await groups(1);
  try {
    const opt = new ZeroOptimizer(pg!, [init(0), init(1, 'bfloat16')], { stage: 1, optimizer: 'adamw', lr: 0.1 });
    assert.match(opt.memoryReport().precision, /^float32\/bfloat16 parameters on cpu, /);
  } finally {
    pg!.destroy();
  }
});

// Gradient-ready hooks and multi-root backward (src/autograd), and what ZeRO builds on them: bucket
// reductions that start during the backward (overlap) and give the same result as reducing afterwards.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../src/index.js';
import { backward } from '../src/autograd/backward.js';
import { onGradReady } from '../src/autograd/hooks.js';
import { tensor, randn } from '../src/ops/creation.js';
import { add, mul, square, sub } from '../src/ops/elementwise.js';
import { mean, sum } from '../src/ops/reduce.js';
import { matmul } from '../src/ops/matmul.js';
import { scope } from '../src/tensor/scope.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { MMDiT } from '../src/models/mmdit.js';
import { lavenderflowGroups } from '../src/optim/mup.js';
import type { ProcessGroup } from '../src/distributed/process-group.js';
import { makeTrainOptimizer } from '../src/train/optimizer.js';
import { groups } from './harness/ranks.js';

const arr = (t: Tensor) => Array.from(t.toArray());

test('onGradReady fires once per backward per leaf, after its gradient is complete (all uses summed, accumulated into .grad)', () => {
  const w = tensor([1, 2, 3]).requiresGrad_(), v = tensor([0.5, -1, 2]).requiresGrad_();
  const seen: { name: string; grad: number[] }[] = [];
  const offW = onGradReady(w, (t) => seen.push({ name: 'w', grad: arr(t.grad!) }));
  onGradReady(v, (t) => seen.push({ name: 'v', grad: arr(t.grad!) }));
  scope(() => sum(add(mul(w, w), mul(w, v))).backward()); // w used three times
  assert.deepEqual([...seen].sort((a, b) => a.name.localeCompare(b.name)), [{ name: 'v', grad: [1, 2, 3] }, { name: 'w', grad: [2.5, 3, 8] }]);
  assert.equal(seen.length, 2);
  scope(() => sum(mul(w, 2)).backward()); // accumulates: the hook sees the accumulated gradient
  assert.deepEqual(seen.at(-1), { name: 'w', grad: [4.5, 5, 10] });
  offW();
  scope(() => sum(w).backward());
  assert.equal(seen.length, 3, 'a removed hook does not fire');
  assert.throws(() => onGradReady(mul(w, 1), () => {}), /is not a leaf/);
});

test('backward from several roots with their gradients equals the sum of separate backwards; a root given twice adds up', () => {
  const g = new Generator(3);
  const a = randn([3, 4], { generator: g }).requiresGrad_(), b = randn([4, 2], { generator: g }).requiresGrad_();
  const ga = randn([3, 2], { generator: g }), gb = randn([3, 4], { generator: g });
  scope(() => {
    const y = matmul(a, b), z = square(a);
    backward([y, z, y], [ga, gb, ga]);
  });
  const together = [arr(a.grad!), arr(b.grad!)];
  a.setGrad(null);
  b.setGrad(null);
  scope(() => matmul(a, b).backward(mul(ga, 2)));
  scope(() => square(a).backward(gb));
  assert.deepEqual(together[1], arr(b.grad!));
  together[0]!.forEach((x, i) => assert.ok(Math.abs(x - arr(a.grad!)[i]!) < 1e-6));
  assert.throws(() => backward([matmul(a, b)], []), /1 roots but 0 gradients/);
});

/** A process group that logs each collective with whether the backward was still running. */
function logged(pg: ProcessGroup, phase: { now: string }, log: string[]): ProcessGroup {
  const wrap = <A extends unknown[]>(name: string, f: (...a: A) => Promise<void>) => (...a: A) => {
    log.push(`${name}@${phase.now}`);
    return f(...a);
  };
  return {
    rank: pg.rank, worldSize: pg.worldSize, backend: pg.backend,
    allReduce: wrap('allReduce', pg.allReduce.bind(pg)), reduceScatter: wrap('reduceScatter', pg.reduceScatter.bind(pg)),
    allGather: wrap('allGather', pg.allGather.bind(pg)), broadcast: wrap('broadcast', pg.broadcast.bind(pg)), barrier: pg.barrier.bind(pg), destroy: () => pg.destroy(),
  };
}

test('overlap: ZeRO starts bucket reductions from the hooks while the backward runs, with the same result as reducing after it (stages 0 and 2, 2 ranks)', async () => {
  const cfg = { dim: 32, n_layers: 2, n_double_layers: 1, n_heads: 2, global_conddim: 32, cond_seq_dim: 8, max_seq: 16 };
  const results: Record<string, number[][]> = {};
  for (const zero of [0, 2] as const) {
    for (const overlap of [true, false]) {
      const pgs = await groups(2);
      try {
        const logs: string[][] = [];
        const params = await Promise.all(pgs.map(async (raw, r) => {
          const phase = { now: 'idle' }, log: string[] = [];
          logs.push(log);
          const pg = logged(raw, phase, log);
          const model = new MMDiT(cfg, { generator: new Generator(1) });
          const spec = { kind: 'adamw' as const, groups: lavenderflowGroups(model.namedParameters(), { lr: 1e-2, width: 32 }), lr: 1e-2, betas: [0.9, 0.95] as [number, number] };
          const opt = makeTrainOptimizer(model, spec, { pg, zero, overlap, bucketElements: 4096 });
          try {
            const g = new Generator(10 + r);
            const x = randn([2, 4, 4, 4], { generator: g }), c = randn([2, 4, 8], { generator: g }), t = tensor([0.25, 0.75]);
            opt.armFinalBackward();
            phase.now = 'backward';
            scope(() => mean(square(sub(model.forward(x, t, c), x))).backward());
            phase.now = 'after';
            await opt.step(1.0);
            return model.parameters().map(arr).flat();
          } finally {
            opt.dispose();
          }
        }));
        assert.deepEqual(params[0], params[1], 'the ranks agree');
        results[`zero${zero}-${overlap}`] = params;
        const during = logs[0]!.filter((l) => l.endsWith('@backward')).length;
        if (overlap) assert.ok(during >= 2, `zero ${zero}: ${during} reductions started during the backward (log ${logs[0]!.join(' ')})`);
        else assert.equal(during, 0, `zero ${zero} without overlap: ${logs[0]!.join(' ')}`);
      } finally {
        for (const pg of pgs) pg.destroy();
      }
    }
    assert.deepEqual(results[`zero${zero}-true`], results[`zero${zero}-false`], `zero ${zero}: overlapped reduction gives bit-identical parameters`);
  }
});

test('a collective started before a long synchronous stretch (the rest of a backward) is not timed out by it: the deadline counts from when the rank can wait', async () => {
  const pgs = await groups(2, 300);
  try {
    const ts = pgs.map((_, r) => tensor([r + 1, 2 * r + 1]));
    const running = pgs.map((pg, r) => pg.allReduce(ts[r]!, 'sum'));
    const until = Date.now() + 900; // three timeouts' worth of computation on this thread
    while (Date.now() < until) { /* busy, like a backward */ }
    await Promise.all(running);
    for (const t of ts) assert.deepEqual(arr(t), [3, 4]);
    // a rank that really stays away is still named after the timeout
    await assert.rejects(pgs[0]!.barrier(), /barrier #2 on rank 0 timed out after 0\.3 s waiting for rank\(s\) 1/);
  } finally {
    for (const pg of pgs) pg.destroy();
  }
});

// ZeRO-3 (parameters sharded, gathered per block around its forward and backward) and what each rank holds
// at stages 2 and 3, measured from the cpu backend's live bytes; sharded ZeRO-3 checkpoints of `train t2i`
// (EMAs included), consolidated and resumed at other world sizes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import '../src/index.js';
import { getBackend } from '../src/backends/registry.js';
import { writeSyntheticT2I } from '../src/data/t2i.js';
import { consolidate, readCheckpointMeta } from '../src/distributed/checkpoint.js';
import { ZeroOptimizer } from '../src/distributed/zero.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { MMDiT } from '../src/models/mmdit.js';
import { tensor, randn } from '../src/ops/creation.js';
import { AdamW } from '../src/optim/adamw.js';
import { lavenderflowGroups } from '../src/optim/mup.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { blockwiseForwardBackward } from '../src/train/blockwise.js';
import { runAsync } from '../src/train/coroutine.js';
import { makeTrainOptimizer } from '../src/train/optimizer.js';
import { trainT2I, trainT2IDistributed, type TrainT2IOptions } from '../src/train/train-t2i.js';
import { groups, onRanks, soloRank } from './harness/ranks.js';
import { square, sub } from '../src/ops/elementwise.js';
import { mean } from '../src/ops/reduce.js';
import { tempDirs } from './harness/tmp-dirs.js';

const tmp = tempDirs('lav-zero3-');
const arr = (t: Tensor) => Array.from(t.toArray());

test('ZeRO-3: a released parameter holds no data (a clear error), gather gives it the current values, and 2 and 3 ranks reproduce AdamW exactly', async () => {
  const shapes = [[5, 3], [7], [4, 4]];
  const init = (i: number) => tensor(Float32Array.from({ length: shapes[i]!.reduce((a, b) => a * b, 1) }, (_, k) => Math.cos(k + i)), { shape: shapes[i] });
  const gradFor = (rank: number, step: number, i: number) => tensor(Float32Array.from({ length: shapes[i]!.reduce((a, b) => a * b, 1) }, (_, k) => Math.fround(Math.sin(k * 1.3 + rank * 2.1 + step + i) * (1 + rank))), { shape: shapes[i] });
  for (const N of [2, 3]) {
    const ref = [init(0), init(1), init(2)];
    const opt = new AdamW(ref, { lr: 0.01, weightDecay: 0.1 });
    const pgs = await groups(N);
    try {
      const ranks = pgs.map((pg) => {
        const params = [init(0), init(1), init(2)];
        // unit 1: the third parameter (a "block"); the root unit holds the others
        return { pg, params, zero: new ZeroOptimizer(pg, params, { stage: 3, optimizer: 'adamw', lr: 0.01, weightDecay: 0.1, bucketElements: 16, units: [[params[2]!]] }) };
      });
      for (const r of ranks) r.zero.releaseAll();
      assert.throws(() => ranks[0]!.params[2]!.toArray(), /holds no data here: ZeRO-3 shards this parameter across the ranks and gathers it only around its block's forward and backward/);
      assert.deepEqual(ranks[0]!.zero.layout.buckets.map((b) => b.unit), [0, 0, 1], 'a bucket never spans two units');
      for (let s = 0; s < 3; s++) {
        ref.forEach((p, i) => {
          const acc = new Float64Array(p.size);
          for (let r = 0; r < N; r++) gradFor(r, s, i).toArray().forEach((v, k) => (acc[k]! += v));
          p.setGrad(tensor(Float32Array.from(acc, (v) => v / N), { shape: p.shape }));
        });
        opt.step();
        for (const r of ranks) r.params.forEach((p, i) => p.setGrad(gradFor(r.pg.rank, s, i)));
        await Promise.all(ranks.map((r) => r.zero.step()));
      }
      await Promise.all(ranks.map((r) => r.zero.gatherAll()));
      for (const r of ranks) assert.deepEqual(r.params.map(arr), ref.map(arr), `N=${N} rank ${r.pg.rank}`);
    } finally {
      for (const pg of pgs) pg.destroy();
    }
  }
});

const tinyish = { dim: 64, n_layers: 3, n_double_layers: 2, n_heads: 4, global_conddim: 64, cond_seq_dim: 32, max_seq: 64 };

/** One rank's bytes at a stage and world size, measured as live bytes around each piece of a step. */
async function measured(stage: 2 | 3, N: number) {
  const cpu = getBackend('cpu');
  const live = () => cpu.liveBytes!();
  const start = live();
  const model = new MMDiT(tinyish, { generator: new Generator(1) });
  const spec = { kind: 'adamw' as const, groups: lavenderflowGroups(model.namedParameters(), { lr: 1e-3, width: 64 }), lr: 1e-3, betas: [0.9, 0.95] as [number, number] };
  const opt = makeTrainOptimizer(model, spec, { pg: soloRank(N), zero: stage });
  try {
    opt.releaseAll();
    const weights = live() - start; // parameters (stage 3: their slices only) and master slices
    const m0 = live();
    opt.memoryReport(); // allocates the Adam moments, as the first step would
    const optimizer = live() - m0;
    const g = new Generator(2);
    const x = randn([2, 4, 8, 8], { generator: g }), c = randn([2, 8, 32], { generator: g }), t = tensor([0.3, 0.7]);
    const g0 = live();
    opt.armFinalBackward();
    const head = (v: Tensor) => mean(square(sub(v, x)));
    await runAsync(blockwiseForwardBackward(model.plan(x, t, c), head, { checkpoint: false, units: opt }));
    await new Promise((r) => setImmediate(r)); // the reductions the hooks started
    const gradients = live() - g0; // what stays for the update: the reduced gradient slices
    for (const v of [x, c, t]) v.dispose();
    return { weights, optimizer, gradients, psi: model.numParameters(), buckets: (opt as unknown as { zero: ZeroOptimizer }).zero.buckets.length };
  } finally {
    opt.dispose();
    for (const p of model.parameters()) p.dispose();
  }
}

test('bytes per rank, measured: ZeRO-2 halves optimizer state and gradients from 1 to 2 ranks, ZeRO-3 the parameters too', async () => {
  const near = (half: number, whole: number, buckets: number) => Math.abs(2 * half - whole) <= 8 * 4 * buckets; // padding: < 1 element per bucket and moment
  const rows: Record<string, unknown> = {};
  for (const stage of [2, 3] as const) {
    const one = await measured(stage, 1), two = await measured(stage, 2);
    rows[`zero${stage}`] = { n1: one, n2: two };
    assert.ok(near(two.optimizer, one.optimizer, one.buckets), `stage ${stage}: optimizer state ${two.optimizer} B at N=2 vs ${one.optimizer} B at N=1`);
    assert.ok(near(two.gradients, one.gradients, one.buckets), `stage ${stage}: gradients ${two.gradients} B at N=2 vs ${one.gradients} B at N=1`);
    assert.equal(one.optimizer, 8 * one.psi, 'Adam m and v in float32');
    if (stage === 3) {
      assert.ok(near(two.weights, one.weights, one.buckets), `stage 3: parameters ${two.weights} B at N=2 vs ${one.weights} B at N=1`);
      assert.equal(one.weights, 4 * one.psi, 'stage 3 keeps one float32 copy (the master slices)');
    } else {
      assert.ok(two.weights > 0.7 * one.weights, 'stage 2 keeps whole parameters on every rank');
    }
  }
  console.log(`# bytes per rank (live, MMDiT of ${rows.zero2 ? (rows.zero2 as { n1: { psi: number } }).n1.psi : '?'} parameters) ${JSON.stringify(rows)}`);
});

const preset = { dim: 32, n_layers: 2, n_double_layers: 1, n_heads: 2, global_conddim: 32, cond_seq_dim: 8, max_seq: 4 };
test('train t2i at ZeRO 3 on 2 ranks: sharded checkpoints with their EMAs, consolidated, resume on 1 and 3 ranks and continue the 1-rank curve', async () => {
  const data = tmp();
  writeSyntheticT2I(data, { samples: 36, latentSize: 4, condDim: 8, tokens: 4 });
  const base = (more: Partial<TrainT2IOptions>): TrainT2IOptions => ({ progress: false, log: () => {}, latentSize: 4, tokens: 4, warmup: 2, emaEvery: 1, data, preset, batch: 6, lr: 3e-3, seed: 0, steps: 4, out: tmp(), ...more });
  const whole = base({});
  const ref = trainT2I(whole);
  const dir = tmp();
  await onRanks(2, (pg) => trainT2IDistributed({ ...base({ steps: 2, out: dir }), dist: { pg, zero: 3 } }));
  const ckpt = join(dir, 'checkpoint.safetensors');
  const meta = readCheckpointMeta(ckpt);
  assert.equal(meta.zero?.stage, 3);
  assert.deepEqual(meta.zero?.shards, ['checkpoint.zero-step2-rank0-of-2.safetensors', 'checkpoint.zero-step2-rank1-of-2.safetensors']);
  const shard = loadSafetensors(join(dir, meta.zero!.shards[0]!)).tensors;
  assert.ok(shard['zero.0.ema1'] && shard['zero.0.ema2'], 'the EMAs are sharded like the optimizer state');
  const merged = join(dir, 'merged.safetensors');
  consolidate(ckpt, merged);
  const close = (a: number[], b: number[], what: string) => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= 1e-4 * b[i]!, `${what} step ${i + 3}: ${v} vs ${b[i]}`));
  const one = trainT2I(base({ resume: merged, out: tmp() }));
  close(one.losses, ref.losses.slice(2), 'consolidated, 1 rank');
  const three = await onRanks(3, (pg) => trainT2IDistributed({ ...base({ resume: merged, out: tmp() }), dist: { pg, zero: 3 } }));
  close(three[0]!.losses, ref.losses.slice(2), 'consolidated, 3 ranks at ZeRO 3');
  const again = await onRanks(2, (pg) => trainT2IDistributed({ ...base({ resume: ckpt, out: tmp() }), dist: { pg, zero: 3 } }));
  close(again[0]!.losses, ref.losses.slice(2), 'the shards themselves, 2 ranks');
  // the EMA after resuming through the consolidated file equals the uninterrupted run's
  const out1 = one.checkpoint.replace(/checkpoint\.safetensors$/, 'ema1.safetensors');
  const a = loadSafetensors(out1).tensors, b = loadSafetensors(join(whole.out, 'ema1.safetensors')).tensors;
  let d = 0;
  for (const k of Object.keys(b)) {
    const u = a[k]!.toArray(), v = b[k]!.toArray();
    for (let i = 0; i < u.length; i++) d = Math.max(d, Math.abs(u[i]! - v[i]!));
  }
  assert.ok(d < 1e-5, `EMA after the consolidated resume differs by ${d}`);
});

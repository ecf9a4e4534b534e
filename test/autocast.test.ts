// Automatic mixed precision on the cpu: the policy of ops/autocast.ts emulated by rounding to bfloat16
// where a GPU would store bfloat16 (matmul, conv2d, attention inputs and outputs), float32 for norms,
// softmax and losses, and a short training run that tracks the float32 loss curve.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { MMDiT } from '../src/models/mmdit.js';
import { flowLoss } from '../src/flow/rectified-flow.js';

/** float32 values rounded to bfloat16 precision (round to nearest even), kept float32. */
const round = (t: L.Tensor) => L.cast(L.cast(t, 'bfloat16'), 'float32');
const arr = (t: L.Tensor) => Array.from(t.toArray());

test('autocast is off by default, restores the previous setting, and refuses unknown dtypes', () => {
  assert.equal(L.autocastDtype(), null);
  L.autocast('bfloat16', () => {
    assert.equal(L.autocastDtype(), 'bfloat16');
    L.autocast('float32', () => assert.equal(L.autocastDtype(), null));
    assert.equal(L.autocastDtype(), 'bfloat16');
  });
  assert.equal(L.autocastDtype(), null);
  assert.throws(() => L.autocast('int8' as never, () => 0), /autocast: dtype must be/);
});

test('matmul under autocast rounds its inputs and output to bfloat16 (kept float32 on cpu); gradients follow', () => {
  L.scope(() => {
    const g = new L.Generator(1);
    const a = L.randn([5, 7], { generator: g }).requiresGrad_(), b = L.randn([7, 3], { generator: g }).requiresGrad_();
    const y = L.autocast('bfloat16', () => L.matmul(a, b));
    assert.equal(y.dtype, 'float32');
    const want = round(L.matmul(round(a), round(b)));
    assert.deepEqual(arr(y), arr(want));
    assert.notDeepEqual(arr(y), arr(L.matmul(a, b)), 'the rounding happened');
    // the gradients are the rounded composition's
    const w = L.randn([5, 3], { generator: g });
    L.sum(L.mul(y, w)).backward();
    const [ga, gb] = [a.grad!, b.grad!].map(arr);
    a.setGrad(null); b.setGrad(null);
    L.sum(L.mul(want, w)).backward();
    assert.deepEqual(ga, arr(a.grad!));
    assert.deepEqual(gb, arr(b.grad!));
  });
});

test('conv2d and attention run in bfloat16 under autocast; layer norm, softmax and losses in float32', () => {
  L.scope(() => {
    const g = new L.Generator(2);
    const x = L.randn([2, 3, 6, 6], { generator: g }), w = L.randn([4, 3, 3, 3], { generator: g }), bias = L.randn([4], { generator: g });
    const c = L.autocast('bfloat16', () => L.conv2d(x, w, bias, { padding: 1 }));
    assert.deepEqual(arr(c), arr(round(L.conv2d(round(x), round(w), round(bias), { padding: 1 }))));
    const [q, k, v] = [0, 1, 2].map(() => L.randn([1, 2, 5, 4], { generator: g }));
    const o = L.autocast('bfloat16', () => L.scaledDotProductAttention(q!, k!, v!));
    assert.deepEqual(arr(o), arr(round(L.scaledDotProductAttention(round(q!), round(k!), round(v!)))));
    // float32 ops: unchanged by autocast
    const h = L.randn([3, 8], { generator: g });
    L.autocast('bfloat16', () => {
      assert.deepEqual(arr(L.layerNorm(h, [8])), arr(L.autocast(null, () => L.layerNorm(h, [8]))));
      assert.deepEqual(arr(L.softmax(h)), arr(L.autocast(null, () => L.softmax(h))));
    });
  });
});

test('a bfloat16 input to layer norm is computed in float32 with float32 statistics', () => {
  L.scope(() => {
    const h = L.randn([3, 8], { generator: new L.Generator(3) });
    const y = L.autocast('bfloat16', () => L.layerNorm(L.cast(h, 'bfloat16'), [8]));
    assert.equal(y.dtype, 'float32');
    assert.deepEqual(arr(y), arr(L.layerNorm(round(h), [8])));
  });
});

test('training a small MMDiT in bfloat16 autocast tracks the float32 loss curve', () => {
  const preset = { dim: 32, n_layers: 2, n_double_layers: 1, n_heads: 2, global_conddim: 32, cond_seq_dim: 8, max_seq: 16 };
  const run = (precision: 'float32' | 'bfloat16') => L.scope(() => {
    const gen = new L.Generator(0);
    const model = new MMDiT(preset, { generator: gen });
    const opt = new L.optim.AdamW(model.parameters(), { lr: 1e-2 });
    // one smooth image per batch item (learnable in a few steps), fixed conditioning
    const pattern = L.sin(L.mul(L.reshape(L.arange(0, 4 * 8 * 8), [1, 4, 8, 8]), 0.1));
    const data = L.keep(L.mul(L.expand(pattern, [4, 4, 8, 8]), 1));
    const cond = L.keep(L.randn([4, 4, 8], { generator: new L.Generator(6) }));
    const losses: number[] = [];
    for (let i = 0; i < 25; i++) {
      losses.push(L.scope(() => {
        const { loss } = L.autocast(precision, () => flowLoss((x, t, c: L.Tensor) => model.forward(x, t, c), data, cond, { generator: gen }));
        opt.zeroGrad();
        loss.backward();
        opt.step();
        return loss.item();
      }));
    }
    data.dispose(); cond.dispose(); opt.dispose();
    for (const p of model.parameters()) p.dispose();
    return losses;
  });
  const f32 = run('float32'), bf16 = run('bfloat16');
  const tail = (l: number[]) => l.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(tail(f32) < f32[0]! * 0.9, `float32 training should learn: ${f32[0]} -> ${tail(f32)}`);
  assert.notDeepEqual(bf16, f32, 'the bfloat16 run differs (the rounding is real)');
  assert.ok(Math.abs(tail(bf16) - tail(f32)) <= 0.05 * tail(f32), `bfloat16 final loss ${tail(bf16)} vs float32 ${tail(f32)}`);
});

test('train --precision accepts fp32 and bf16 only', async () => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['bin/lavender.js', 'train', 'mnist', '--precision', 'fp16', '--steps', '1'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--precision expects fp32 or bf16, got 'fp16'/);
});

// What the autograd graph keeps between the forward and the backward, and that keeping less changes no
// gradient: a weight's low-precision copy under autocast is remade in the backward (autograd/remake.ts),
// a layer norm without weight and bias keeps its output instead of its input, and a bf16 input cast up by
// autocast is kept as bf16. (The native-bf16 path of the same is checked over the fake cuda addon in
// cuda-fake-addon.test.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { cpuMemoryStats } from '../src/backends/cpu/index.js';

const round = (t: L.Tensor) => L.cast(L.cast(t, 'bfloat16'), 'float32');
const arr = (t: L.Tensor) => Array.from(t.toArray());
const live = () => cpuMemoryStats().liveBytes;

/**
 * Bytes that stay live once `forward` has run in a scope of its own (as the models run each block) and
 * returned its result: what the graph keeps, beside the float32 result itself.
 */
function keptBytes(forward: () => L.Tensor): number {
  return L.scope(() => {
    const before = live();
    const y = L.scope(forward);
    return live() - before - y.size * 4;
  });
}

test('under autocast a weight\'s bf16 copy is not kept for the backward, and the gradients are unchanged', () => {
  L.scope(() => {
    const g = new L.Generator(1);
    const lin = new L.nn.Linear(256, 1024, { generator: g });
    const x = L.randn([2, 256], { generator: g }).requiresGrad_();
    const weightBytes = 256 * 1024 * 4;
    // the graph keeps x's low copy and small things, not a copy of the 1 MiB weight
    const kept = keptBytes(() => L.autocast('bfloat16', () => lin.forward(x)));
    assert.ok(kept < weightBytes / 4, `the graph kept ${kept} bytes (the weight is ${weightBytes})`);

    const w = L.randn([2, 1024], { generator: g });
    L.sum(L.mul(L.autocast('bfloat16', () => lin.forward(x)), w)).backward();
    const [gx, gw, gb] = [x.grad!, lin.weight.grad!, lin.bias!.grad!].map(arr);
    for (const p of [x, lin.weight, lin.bias!]) p.setGrad(null);
    // the same arithmetic with the rounding spelled out (no autocast, nothing remade)
    const want = L.add(round(L.matmul(round(x), L.transpose(round(lin.weight), 0, 1))), lin.bias!);
    L.sum(L.mul(want, w)).backward();
    assert.deepEqual(gx, arr(x.grad!));
    assert.deepEqual(gw, arr(lin.weight.grad!));
    assert.deepEqual(gb, arr(lin.bias!.grad!));
  });
});

test('a layer norm without weight and bias frees its float32 input once the caller drops it; gradients match the affine form', () => {
  L.scope(() => {
    const g = new L.Generator(3);
    const C = 512, x = L.randn([64, C], { generator: g }).requiresGrad_();
    const before = live();
    // the input is a non-leaf made in the block's scope, as the residual stream is
    const y = L.scope(() => L.layerNorm(L.mul(x, 1.5), [C]));
    // kept: the output (returned) and the per-row statistics; the 128 KiB input is gone
    const kept = live() - before - y.size * 4;
    assert.ok(kept < 64 * C * 4 / 4, `kept ${kept} bytes beside the output`);
    const w = L.randn([64, C], { generator: g });
    L.sum(L.mul(y, w)).backward();
    const gx = x.grad!.toArray();
    x.setGrad(null);
    // the affine form keeps its input; with weight 1 and bias 0 it is the same function
    L.sum(L.mul(L.layerNorm(L.mul(x, 1.5), [C], L.ones([C]), L.zeros([C])), w)).backward();
    const want = x.grad!.toArray();
    let worst = 0;
    for (let i = 0; i < gx.length; i++) worst = Math.max(worst, Math.abs(gx[i]! - want[i]!));
    assert.ok(worst < 1e-5, `largest gradient difference ${worst}`);
    assert.ok(Math.max(...Array.from(want, Math.abs)) > 0.1, 'the gradients are not trivially small');
  });
});

test('under autocast a layer norm keeps a bf16 input as bf16 (half the bytes), with the float32 gradients of its float32 copy', () => {
  L.scope(() => {
    const g = new L.Generator(4);
    const C = 512, x = L.randn([64, C], { generator: g }).requiresGrad_();
    const before = live();
    const y = L.scope(() => L.autocast('bfloat16', () => L.layerNorm(L.cast(L.mul(x, 1.5), 'bfloat16'), [C])));
    assert.equal(y.dtype, 'float32');
    const kept = live() - before - y.size * 4;
    // the bf16 input and the statistics, not the input's float32 copy
    assert.ok(kept >= 64 * C * 2 && kept < 64 * C * 3, `kept ${kept} bytes: the bf16 input is ${64 * C * 2}, a float32 copy ${64 * C * 4}`);
    const w = L.randn([64, C], { generator: g });
    L.sum(L.mul(y, w)).backward();
    const gx = arr(x.grad!);
    x.setGrad(null);
    L.sum(L.mul(L.layerNorm(L.cast(L.cast(L.mul(x, 1.5), 'bfloat16'), 'float32'), [C], L.ones([C])), w)).backward();
    assert.deepEqual(gx, arr(x.grad!));
  });
});

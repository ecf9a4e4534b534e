// adaLN's modulate and gated residual as single ops (ops/composite.ts): the forward and every gradient
// are the composition's float32 bits, and shapes they do not take are named. (The fused cuda kernel is checked against the
// composition in cuda.test on a GPU and for its protocol in cuda-fake-addon.test; the op suite runs it on
// every backend.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';

const bits = (t: L.Tensor) => Array.from(t.toArray());

test('modulate equals x * (1 + scale) + shift composed, forward and gradients, bit for bit', () => {
  L.scope(() => {
    const g = new L.Generator(5);
    const [x, shift, scale] = [[3, 7, 16], [3, 16], [3, 16]].map((s) => L.randn(s, { generator: g }).requiresGrad_());
    const w = L.randn([3, 7, 16], { generator: g });
    const y = L.modulate(x!, shift!, scale!);
    assert.equal(y.gradFn!.op, 'modulate', 'one graph node');
    L.sum(L.mul(y, w)).backward();
    const got = [y, x!.grad!, shift!.grad!, scale!.grad!].map(bits);
    for (const p of [x!, shift!, scale!]) p.setGrad(null);
    const want = L.add(L.mul(x!, L.add(L.unsqueeze(scale!, 1), 1)), L.unsqueeze(shift!, 1));
    L.sum(L.mul(want, w)).backward();
    assert.deepEqual(got, [want, x!.grad!, shift!.grad!, scale!.grad!].map(bits));
    assert.ok(got[3]!.some((v) => Math.abs(v) > 0.1), 'non-trivial gradients');
  });
});

test('modulate names the shapes it does not take', () => {
  L.scope(() => {
    assert.throws(() => L.modulate(L.zeros([2, 3, 4]), L.zeros([2, 5]), L.zeros([2, 4])), /^Error: modulate: expected x \[B, T, D\] and shift, scale \[B, D\], got float32\[2, 3, 4\].*float32\[2, 5\]/);
    assert.throws(() => L.modulate(L.zeros([3, 4]), L.zeros([3, 4]), L.zeros([3, 4])), /modulate: expected x \[B, T, D\]/);
  });
});

test('gatedAdd equals x + gate * y composed, forward and gradients, bit for bit', () => {
  L.scope(() => {
    const g = new L.Generator(6);
    const [x, gate, y] = [[3, 7, 16], [3, 16], [3, 7, 16]].map((s) => L.randn(s, { generator: g }).requiresGrad_());
    const w = L.randn([3, 7, 16], { generator: g });
    const out = L.gatedAdd(x!, gate!, y!);
    assert.equal(out.gradFn!.op, 'gatedAdd', 'one graph node');
    L.sum(L.mul(out, w)).backward();
    const got = [out, x!.grad!, gate!.grad!, y!.grad!].map(bits);
    for (const p of [x!, gate!, y!]) p.setGrad(null);
    const want = L.add(x!, L.mul(L.unsqueeze(gate!, 1), y!));
    L.sum(L.mul(want, w)).backward();
    assert.deepEqual(got, [want, x!.grad!, gate!.grad!, y!.grad!].map(bits));
    assert.throws(() => L.gatedAdd(L.zeros([2, 3, 4]), L.zeros([2, 4]), L.zeros([2, 3, 5])), /^Error: gatedAdd: expected x, y \[B, T, D\] and gate \[B, D\], got float32\[2, 3, 4\]/);
  });
});

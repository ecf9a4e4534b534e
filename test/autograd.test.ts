// Autograd engine behaviour: accumulation, noGrad, detach, requiresGrad, graph freeing, custom rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { record } from '../src/ops/record.js';
import { gradcheck } from './harness/gradcheck.js';

const arr = (t: L.Tensor | null) => Array.from(t!.toArray());

test('gradients accumulate across backward calls until cleared', () => {
  const x = L.tensor([1, 2, 3], { requiresGrad: true });
  L.sum(L.mul(x, x)).backward();
  assert.deepEqual(arr(x.grad), [2, 4, 6]);
  L.sum(L.mul(x, 3)).backward();
  assert.deepEqual(arr(x.grad), [5, 7, 9]);
  x.setGrad(null);
  assert.equal(x.grad, null);
});

test('a tensor used twice receives the sum of both paths', () => {
  const x = L.tensor([2], { requiresGrad: true });
  const y = L.add(L.mul(x, x), L.exp(x));
  y.backward();
  assert.ok(Math.abs(x.grad!.item() - (4 + Math.exp(2))) < 1e-5);
});

test('noGrad records no graph', () => {
  const x = L.tensor([1, 2], { requiresGrad: true });
  const y = L.noGrad(() => L.mul(x, 2));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.gradFn, null);
  assert.throws(() => L.sum(y).backward(), /does not require grad/);
});

test('detach shares storage and cuts the graph', () => {
  const x = L.tensor([1, 2], { requiresGrad: true });
  const d = L.mul(x, 2).detach();
  assert.equal(d.requiresGrad, false);
  const z = L.add(L.mul(d, x), 0);
  L.sum(z).backward();
  assert.deepEqual(arr(x.grad), [2, 4]);
});

test('only leaves that require grad get .grad', () => {
  const a = L.tensor([1, 2], { requiresGrad: true });
  const b = L.tensor([3, 4]);
  const mid = L.mul(a, b);
  L.sum(mid).backward();
  assert.deepEqual(arr(a.grad), [3, 4]);
  assert.equal(b.grad, null);
  assert.equal(mid.grad, null);
});

test('requiresGrad on an integer tensor is refused', () => {
  assert.throws(() => L.tensor([1, 2], { dtype: 'int64', requiresGrad: true }), /only floating-point tensors can require grad/);
});

test('backward on a non-scalar needs an explicit gradient', () => {
  const x = L.tensor([1, 2, 3], { requiresGrad: true });
  const y = L.mul(x, 2);
  assert.throws(() => y.backward(), /backward: called on a non-scalar float32\[3\]/);
  y.backward(L.tensor([1, 0, 1]));
  assert.deepEqual(arr(x.grad), [2, 0, 2]);
});

test('saved tensors are released after backward; a second backward fails clearly', () => {
  const x = L.tensor([1, 2, 3], { requiresGrad: true });
  const e = L.exp(L.mul(x, 2));
  const y = L.sum(e);
  // exp saved its output (an alias of e's storage until backward); sum saves nothing (it needs only the shape)
  assert.equal(e.storage.refCount, 2);
  y.backward();
  assert.equal(e.storage.refCount, 1);
  assert.equal(y.gradFn!.released, true);
  assert.throws(() => y.backward(), /graph through 'sum' was already freed/);
});

test('retainGraph keeps the graph for a second backward', () => {
  const x = L.tensor([1, 2], { requiresGrad: true });
  const y = L.sum(L.square(x));
  y.backward(undefined, { retainGraph: true });
  y.backward();
  assert.deepEqual(arr(x.grad), [4, 8]);
});

test('backward inside a scope keeps leaf gradients and frees everything else', () => {
  const backend = L.getBackend('cpu');
  const w = L.randn([4, 3], { requiresGrad: true });
  const before = backend.liveBuffers();
  L.scope(() => {
    const x = L.randn([5, 4]);
    L.mean(L.square(L.tanh(L.matmul(x, w)))).backward();
  });
  assert.ok(w.grad && !w.grad.isDisposed);
  assert.equal(backend.liveBuffers() - before, 1, 'only w.grad should survive the scope');
});

test('a loss returned from a scope can still run backward', () => {
  const w = L.tensor([1, 2], { requiresGrad: true });
  const loss = L.scope(() => L.sum(L.square(L.mul(w, 3))));
  loss.backward();
  assert.deepEqual(arr(w.grad), [18, 36]);
});

test('gradients flow through views, casts and device moves', () => {
  const x = L.tensor([[1, 2], [3, 4]], { dtype: 'float64', requiresGrad: true });
  const y = L.sum(L.mul(L.cast(L.transpose(x, 0, 1).slice(0, 0, 1), 'float32'), L.tensor([[10, 20]])));
  y.backward();
  assert.equal(x.grad!.dtype, 'float64');
  assert.deepEqual(arr(x.grad), [10, 0, 20, 0]);
});

test('the gradient checker catches a wrong gradient rule', () => {
  // a custom op whose rule is off by a factor of 2: gradcheck must reject it
  const badSquare = (x: L.Tensor) => {
    const y = L.noGrad(() => L.mul(x, x));
    return record(y, 'badSquare', [x], [x], (g, [sx]) => [L.mul(g, sx!)]);
  };
  const r = gradcheck(badSquare, [{ shape: [3], data: [0.5, -1, 2] }]);
  assert.equal(r.ok, false);
  assert.ok(r.worst && Math.abs(r.worst.analytic * 2 - r.worst.numeric) < 1e-4);
  const good = gradcheck((x) => L.mul(x, x), [{ shape: [3], data: [0.5, -1, 2] }]);
  assert.equal(good.ok, true);
});

test('a cast to the same dtype and .to() the same device stay in the graph (gradients flow through them)', () => {
  L.scope(() => {
    const x = L.randn([3, 4]).requiresGrad_();
    L.sum(L.add(L.mul(L.cast(x, 'float32'), 2), L.mul(x.to('cpu'), 3))).backward();
    assert.deepEqual(Array.from(x.grad!.toArray()), new Array(12).fill(5));
  });
});

test('the gradients of a chunked tensor are summed in place into one zero-filled buffer, with the same values', () => {
  L.scope(() => {
    const be = L.getBackend('cpu');
    const g = new L.Generator(8);
    const x = L.randn([4, 12], { generator: g }).requiresGrad_();
    const w = L.randn([4, 2], { generator: g });
    // every chunk used (one twice), one chunk unused, and x itself used too (an accumulator the rules made)
    const run = (alsoDirect: boolean) => {
      x.setGrad(null);
      const cs = L.chunk(x, 6, 1);
      let loss = L.sum(L.mul(L.add(cs[0]!, cs[0]!), w));
      for (const c of cs.slice(1, 5)) loss = L.add(loss, L.sum(L.mul(c, w)));
      if (alsoDirect) loss = L.add(loss, L.sum(L.mul(x, 3)));
      const fill = be.fill.bind(be);
      let fills = 0;
      (be as { fill: typeof be.fill }).fill = (v, value) => { fills++; fill(v, value); };
      try {
        loss.backward();
      } finally {
        (be as { fill: typeof be.fill }).fill = fill;
      }
      return { grad: Array.from(x.grad!.toArray()), fills };
    };
    const wv = Array.from(w.toArray());
    const want = (direct: boolean) => Array.from({ length: 48 }, (_, i) => {
      const [r, col] = [Math.floor(i / 12), i % 12], k = Math.floor(col / 2);
      return Math.fround((k === 0 ? 2 * wv[r * 2 + col % 2]! : k < 5 ? wv[r * 2 + col % 2]! : 0) + (direct ? 3 : 0));
    });
    const a = run(false);
    assert.deepEqual(a.grad, want(false));
    assert.equal(a.fills, 2, 'one zero-filled accumulator (and the loss\'s seed of ones), not one per chunk');
    assert.deepEqual(run(true).grad, want(true));
  });
});

// Autograd memory and bookkeeping: saved tensors are freed as soon as their rule has run (not at the end
// of backward), sampling records no graph at all, and scalar operands allocate no tensor.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { GradNode } from '../src/autograd/node.js';
import { record } from '../src/ops/record.js';
import { DiT } from '../src/models/dit.js';
import { sampleEuler } from '../src/flow/rectified-flow.js';

test("a node's saved tensors are freed right after its rule runs, before the rest of the backward", () => {
  const be = L.getBackend('cpu');
  L.scope(() => {
    const x = L.randn([64, 64]).requiresGrad_();
    // y1 saves a big tensor; the rule of the op applied after it (y2) runs first in the backward
    const big = L.randn([256, 256]);
    const y1 = record(L.mul(x, 2), 'saves-big', [x], [big], (g) => [L.mul(g, 2)]);
    big.dispose(); // the node holds the only reference now
    let liveWhenY2Ran = -1, liveWhenY1Ran = -1;
    const y2 = record(L.add(y1, 1), 'probe2', [y1], [], (g) => { liveWhenY2Ran = be.liveBuffers(); return [g.alias()]; });
    const y3 = record(L.mul(y2, 1), 'probe3', [y2], [], (g) => { liveWhenY1Ran = be.liveBuffers(); return [g.alias()]; });
    void liveWhenY1Ran;
    const loss = L.sum(y3);
    const before = be.liveBuffers();
    loss.backward();
    assert.ok(liveWhenY2Ran >= 0, 'the probe rule ran');
    // after the whole backward the big saved tensor is gone as well (freed when its own rule ran)
    assert.ok(be.liveBuffers() <= before + 1, `live buffers ${be.liveBuffers()} vs ${before} before backward`);
    assert.ok(y1.gradFn!.released, 'the node that saved the big tensor has released it');
  });
});

test('with a scope per layer, activations saved by early layers are freed during the backward of later ones', () => {
  // a chain of 8 layers (each in its own scope, as the models run their blocks), each saving its input:
  // the number of live buffers inside the last-run rule is lower than inside the first-run rule
  const be = L.getBackend('cpu');
  L.scope(() => {
    const w = L.randn([32, 32]).requiresGrad_();
    let h = L.randn([16, 32]);
    const live: number[] = [];
    for (let i = 0; i < 8; i++) {
      h = L.scope(() => {
        const y = L.tanh(L.matmul(h, w));
        return record(L.mul(y, 1), `probe${i}`, [y], [], (g) => { live.push(be.liveBuffers()); return [g.alias()]; });
      });
    }
    L.sum(h).backward();
    assert.equal(live.length, 8);
    // live[0] is the last layer's rule (runs first), live[7] the first layer's
    assert.ok(live[7]! < live[0]!, `live buffers did not fall during the backward: ${live.join(', ')}`);
  });
});

test('sampling a DiT records no autograd node', () => {
  const model = new DiT({ in_channels: 1, input_size: 8, dim: 64, n_layers: 1, n_heads: 4, num_classes: 3 }, { generator: new L.Generator(1) });
  L.scope(() => {
    const z = L.randn([2, 1, 8, 8], { generator: new L.Generator(2) });
    const y = L.tensor([0, 1], { dtype: 'int64' });
    const before = GradNode.created;
    sampleEuler((x, t, c: L.Tensor) => model.forward(x, t, c), z, y, { steps: 2 });
    assert.equal(GradNode.created, before, 'sampling created autograd nodes');
    // the same forward with grad enabled does record (the counter works)
    model.forward(z, L.tensor([0.5, 0.5]), y);
    assert.ok(GradNode.created > before);
  });
});

test('an op with a scalar operand allocates only its output (no 0-d tensor for the scalar)', () => {
  const be = L.getBackend('cpu');
  L.scope(() => {
    const x = L.randn([10]);
    const before = be.liveBuffers();
    const y = L.add(L.mul(x, 0.5), 3);
    assert.equal(be.liveBuffers(), before + 2, 'two outputs, no scalar tensors');
    assert.deepEqual(Array.from(y.toArray()), Array.from(x.toArray(), (v) => Math.fround(Math.fround(v * 0.5) + 3)));
  });
});

test('scalar forms of add/sub/mul/div/pow/maximum/minimum have the gradients of their tensor forms', () => {
  const cases: [string, (t: L.Tensor) => L.Tensor][] = [
    ['t + s', (t) => L.add(t, 1.3)], ['s + t', (t) => L.add(1.3, t)], ['t - s', (t) => L.sub(t, 0.7)], ['s - t', (t) => L.sub(0.7, t)],
    ['t * s', (t) => L.mul(t, -2.5)], ['s * t', (t) => L.mul(-2.5, t)], ['t / s', (t) => L.div(t, 3)], ['s / t', (t) => L.div(3, t)],
    ['t ^ s', (t) => L.pow(t, 1.7)], ['max(t, s)', (t) => L.maximum(t, 1.2)], ['min(s, t)', (t) => L.minimum(1.2, t)],
  ];
  for (const [name, f] of cases) {
    L.scope(() => {
      const data = [0.5, 1.2, 2.0, 3.1];
      const a = L.tensor(data, { requiresGrad: true });
      L.sum(f(a)).backward();
      // the same with the scalar as an explicit float32 tensor (the reference path)
      const b = L.tensor(data, { requiresGrad: true });
      const sTensor = (v: number) => L.tensor([v]);
      const g = name.replace(/[0-9.]+/g, '').trim();
      void g;
      const ref = ((): L.Tensor => {
        switch (name) {
          case 't + s': return L.add(b, sTensor(1.3));
          case 's + t': return L.add(sTensor(1.3), b);
          case 't - s': return L.sub(b, sTensor(0.7));
          case 's - t': return L.sub(sTensor(0.7), b);
          case 't * s': return L.mul(b, sTensor(-2.5));
          case 's * t': return L.mul(sTensor(-2.5), b);
          case 't / s': return L.div(b, sTensor(3));
          case 's / t': return L.div(sTensor(3), b);
          case 't ^ s': return L.pow(b, sTensor(1.7));
          case 'max(t, s)': return L.maximum(b, sTensor(1.2));
          default: return L.minimum(sTensor(1.2), b);
        }
      })();
      L.sum(ref).backward();
      assert.deepEqual(Array.from(f(a).toArray()), Array.from(ref.toArray()), `${name} forward`);
      assert.deepEqual(Array.from(a.grad!.toArray()), Array.from(b.grad!.toArray()), `${name} gradient`);
    });
  }
});

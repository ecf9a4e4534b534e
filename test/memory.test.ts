// Deterministic memory: a 1000-step MLP training loop inside scope() keeps live backend buffers flat.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';

test('1000 training steps of a small MLP run at a flat number of live buffers', () => {
  const backend = L.getBackend('cpu');
  const gen = new L.Generator(7);
  const w1 = L.mul(L.randn([8, 16], { generator: gen }), 0.3).requiresGrad_();
  const b1 = L.zeros([16], { requiresGrad: true });
  const w2 = L.mul(L.randn([16, 1], { generator: gen }), 0.3).requiresGrad_();
  const params = [w1, b1, w2];
  const opt = new L.optim.SGD(params, { lr: 0.05, momentum: 0.9 });
  const x = L.randn([32, 8], { generator: gen });
  const y = L.sum(L.sin(x), 1, true);

  const live: number[] = [];
  let first = 0, last = 0;
  for (let step = 0; step < 1000; step++) {
    const loss = L.scope(() => {
      const h = L.silu(L.add(L.matmul(x, w1), b1));
      const l = L.mseLoss(L.matmul(h, w2), y);
      opt.zeroGrad();
      l.backward();
      opt.step();
      return l.item();
    });
    if (step === 0) first = loss;
    last = loss;
    live.push(backend.liveBuffers());
  }
  // after the first step (which creates gradients and momentum buffers) the count never moves
  const steady = live.slice(2);
  assert.equal(Math.max(...steady), Math.min(...steady), `live buffers drifted: ${Math.min(...steady)}..${Math.max(...steady)}`);
  assert.ok(last < first * 0.5, `the loop should learn (loss ${first} -> ${last})`);
});

test('the cpu backend reuses freed memory instead of allocating new memory', () => {
  const a = L.zeros([4096]);
  const first = a.storage.buf as unknown as { data: Float32Array; addr: number };
  const { data, addr } = first;
  a.dispose();
  const b = L.zeros([4096]);
  const second = b.storage.buf as unknown as { data: Float32Array; addr: number };
  // a heap block (same address) or, without a shared heap, the same pooled array
  if (addr >= 0) assert.equal(second.addr, addr);
  else assert.equal(second.data, data);
});

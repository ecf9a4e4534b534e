// The README's example: a two-layer MLP learns whether a point lies inside the unit circle.
import * as L from '../src/index.js';

L.manualSeed(0);
const x = L.randn([256, 2]);                                      // 256 points in the plane
const y = L.sum(L.square(x), 1, true).lt(1).to('float32');        // 1 inside the unit circle, else 0
const w1 = L.mul(L.randn([2, 32]), 0.5).requiresGrad_(), b1 = L.zeros([32], { requiresGrad: true });
const w2 = L.mul(L.randn([32, 1]), 0.5).requiresGrad_(), b2 = L.zeros([1], { requiresGrad: true });
const opt = new L.optim.SGD([w1, b1, w2, b2], { lr: 0.5, momentum: 0.9 });

for (let step = 0; step <= 300; step++) {
  const [loss, acc] = L.scope(() => {                             // frees the step's intermediates
    const h = L.tanh(L.add(L.matmul(x, w1), b1));
    const p = L.sigmoid(L.add(L.matmul(h, w2), b2));
    const l = L.mseLoss(p, y);
    opt.zeroGrad();
    l.backward();
    opt.step();
    return [l.item(), L.mean(L.eq(L.gt(p, 0.5), L.gt(y, 0.5)).to('float32')).item()];
  });
  if (step % 100 === 0) console.log(`step ${step}  loss ${loss.toFixed(4)}  accuracy ${(acc * 100).toFixed(1)}%`);
}

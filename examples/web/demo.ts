// The WebGPU demo's workload, shared by the browser page (main.ts) and the Node check in
// test/webgpu.test.ts: a forward pass and a few rectified-flow training steps of a tiny DiT.
// Values are read with `read`, which is asynchronous in a browser (backend.readAsync).
import * as L from '../../src/index.js';
import type { Tensor } from '../../src/index.js';

export interface DemoResult {
  device: string;
  params: number;
  forwardShape: number[];
  forwardMeanAbs: number;
  losses: number[];
  trainedMeanAbs: number;
  ms: number;
}

export const DEMO_CONFIG = { in_channels: 1, input_size: 8, patch_size: 2, dim: 64, n_layers: 1, n_heads: 2, num_classes: 10 };

export async function runDemo(device: string, read: (t: Tensor) => Promise<ArrayLike<number>>, steps = 3, log: (s: string) => void = () => {}): Promise<DemoResult> {
  const t0 = performance.now();
  const model = new L.DiT(DEMO_CONFIG, { device, generator: new L.Generator(0) });
  const params = model.parameters();
  const gen = new L.Generator(1);
  const B = 4, S = DEMO_CONFIG.input_size;
  const x = L.keep(L.randn([B, 1, S, S], { device, generator: gen }));
  const y = L.keep(L.tensor([1, 3, 5, 7], { dtype: 'int64' }).to(device));

  const fwd = L.scope(() => L.noGrad(() => model.forward(x, L.full([B], 0.5, { device }), y)));
  const f = await read(fwd);
  const forwardMeanAbs = Array.from(f).reduce((a, v) => a + Math.abs(v), 0) / f.length;
  log(`forward: [${fwd.shape}] mean |v| = ${forwardMeanAbs.toFixed(6)}`);
  const forwardShape = [...fwd.shape];
  fwd.dispose();

  const opt = new L.optim.AdamW(params, { lr: 1e-3 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const loss = L.scope(() => {
      // rectified flow: x_t = (1 - t) x + t z, target velocity z - x
      const t = L.rand([B], { device, generator: gen });
      const z = L.randn(x.shape, { device, generator: gen });
      const te = L.reshape(t, [B, 1, 1, 1]);
      const xt = L.add(L.mul(L.sub(1, te), x), L.mul(te, z));
      const l = L.mean(L.square(L.sub(L.sub(z, x), model.forward(xt, t, y))));
      l.backward();
      return l;
    });
    opt.step();
    model.zeroGrad();
    const v = (await read(loss))[0]!;
    loss.dispose();
    losses.push(v);
    log(`step ${s + 1}: loss ${v.toFixed(6)}`);
  }
  // the final projection starts at zero (as in the release), so the forward is interesting after training
  const after = L.scope(() => L.noGrad(() => model.forward(x, L.full([B], 0.5, { device }), y)));
  const a = await read(after);
  after.dispose();
  const trainedMeanAbs = Array.from(a).reduce((p, v) => p + Math.abs(v), 0) / a.length;
  log(`forward after training: mean |v| = ${trainedMeanAbs.toFixed(6)}`);
  x.dispose();
  y.dispose();
  return { device, params: params.reduce((a, p) => a + p.size, 0), forwardShape, forwardMeanAbs, losses, trainedMeanAbs, ms: performance.now() - t0 };
}

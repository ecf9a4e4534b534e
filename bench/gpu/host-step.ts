// The host side of a cuda training step, measured without a GPU: the cuda backend's TypeScript runs over
// the protocol-checking stand-in addon (test/harness/fake-cuda-addon.cjs, which computes nothing), so the
// time is what lavender spends per step deciding and enqueueing work (ops, autograd, planning, descriptor
// packing, N-API-shaped calls), and the counts are the device calls and synchronising reads per step.
// On the GPU the enqueueing overlaps the kernels; it bounds the step time from below when it is longer.
//
//   node dist/bench/gpu/host-step.js [preset] [batch] [text tokens] [latent]   (default: the 4.78B step in bf16)
//   node dist/bench/gpu/host-step.js dit-mnist [batch]                          (the DiT-MNIST step, fp32)
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const fakePath = fileURLToPath(new URL('../../../test/harness/fake-cuda-addon.cjs', import.meta.url));
process.env.LAVENDER_CUDA_ADDON = fakePath;
const L = await import('../../src/index.js');
const fake = createRequire(import.meta.url)(fakePath) as { fakeCalls(): Record<string, number> };

const [preset = 'lavenderflow-2560-highres', batchArg, tokensArg = '120', latentArg = '32'] = process.argv.slice(2);
let step: () => void, parameters: number, B: number;
if (preset.startsWith('dit-')) {
  // the DiT of `lavender bench train-step --model dit-mnist|dit-cifar`: Adam, plain MSE of the output
  const cfg = L.DIT_PRESETS[preset.slice(4)];
  if (!cfg) throw new Error(`host-step: unknown DiT preset '${preset}' (${Object.keys(L.DIT_PRESETS).map((k) => `dit-${k}`).join(', ')})`);
  B = Number(batchArg ?? 64);
  const m = new L.DiT(cfg, { device: 'cuda' });
  const opt = new L.optim.Adam(m.parameters(), { lr: 1e-4 });
  const x = L.randn([B, cfg.in_channels ?? 1, cfg.input_size ?? 32, cfg.input_size ?? 32], { device: 'cuda' });
  const y = L.tensor(Array.from({ length: B }, (_, i) => i % 10), { dtype: 'int64', device: 'cuda' });
  parameters = m.numParameters();
  step = () => L.scope(() => {
    const loss = L.mean(L.square(m.forward(x, L.rand([B], { device: 'cuda' }), y)));
    opt.zeroGrad();
    loss.backward();
    opt.step();
    loss.item();
  });
} else {
  const cfg = L.MMDIT_PRESETS[preset];
  if (!cfg) throw new Error(`host-step: unknown preset '${preset}' (${Object.keys(L.MMDIT_PRESETS).join(', ')}, dit-mnist, dit-cifar)`);
  B = Number(batchArg ?? 16);
  const [T, R] = [Number(tokensArg), Number(latentArg)];
  const m = new L.MMDiT(cfg, { device: 'cuda', generator: new L.Generator(0) });
  const opt = new L.optim.AdamW(m.parameters(), { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.1 });
  const condDim = m.config.cond_seq_dim;
  parameters = m.numParameters();
  step = () => L.scope(() => {
    const x = L.randn([B, 4, R, R], { device: 'cuda' }), t = L.rand([B], { device: 'cuda' }), c = L.randn([B, T, condDim], { device: 'cuda' });
    const loss = L.mean(L.square(L.autocast('bfloat16', () => m.forward(x, t, c))));
    loss.backward();
    L.optim.clipGradNorm(m.parameters(), 1.0);
    opt.step();
    opt.zeroGrad();
    loss.item();
  });
}
step();
const before = fake.fakeCalls();
const reps = 3, t0 = performance.now(), c0 = process.cpuUsage();
for (let i = 0; i < reps; i++) step();
const wall = (performance.now() - t0) / reps / 1000, cpu = process.cpuUsage(c0).user / 1e6 / reps;
const after = fake.fakeCalls();
const per = Object.fromEntries(Object.keys(after).filter((k) => !k.includes('.path')).map((k) => [k, (after[k]! - (before[k] ?? 0)) / reps]).filter(([, v]) => (v as number) > 0));
console.log(JSON.stringify({ bench: 'host-step', preset, batch: B, parameters, wall_seconds: wall, cpu_seconds: cpu,
  device_calls: Object.entries(per).filter(([k]) => k !== 'alloc' && k !== 'free').reduce((a, [, v]) => a + (v as number), 0), per_step: per }));

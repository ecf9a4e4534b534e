// The cuda backend's TypeScript layer, end to end, on a machine without a GPU: a child process loads a
// stand-in addon (test/harness/fake-cuda-addon.cjs) that computes nothing but checks every call against
// the protocol bindings/addon.cc reads: descriptor layouts consumed exactly, op codes, the elementwise
// path (VEC only for contiguous 16-byte-aligned operands, STRIDED32 only within int32), every operand
// inside a live allocation, no double free. A training step of the MMDiT (float32 and bf16 autocast,
// fused attention forward/backward, SwiGLU, AdamW), a convolution in one chunk, and a DiT through the CLI
// run over it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const env = { ...process.env, LAVENDER_CUDA_ADDON: `${root}test/harness/fake-cuda-addon.cjs` };
const run = (args: string[]) => spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 120_000, env });

test('an MMDiT training step (fp32 and bf16 autocast) and assorted views keep to the addon protocol', () => {
  const script = `
    import * as L from './dist/src/index.js';
    import { createRequire } from 'node:module';
    const fake = createRequire(import.meta.url)(process.env.LAVENDER_CUDA_ADDON);
    const be = L.getBackend('cuda');
    const m = new L.MMDiT({ dim: 64, n_layers: 3, n_double_layers: 2, n_heads: 4, global_conddim: 64, cond_seq_dim: 32, max_seq: 64 },
      { device: 'cuda', generator: new L.Generator(0) });
    const opt = new L.optim.AdamW(m.parameters(), { lr: 1e-3, weightDecay: 0.1 });
    for (const precision of ['float32', 'bfloat16']) L.scope(() => {
      const x = L.randn([2, 4, 8, 8], { device: 'cuda' }), t = L.rand([2], { device: 'cuda' }), c = L.randn([2, 5, 32], { device: 'cuda' });
      const loss = L.mean(L.square(L.autocast(precision, () => m.forward(x, t, c))));
      loss.backward();
      L.optim.clipGradNorm(m.parameters(), 1.0);
      opt.step();
      opt.zeroGrad();
      loss.item();
    });
    L.scope(() => {
      const a = L.randn([7, 9], { device: 'cuda' });
      const s = L.slice(a, 1, 1, 8);                 // an interior view: not 16-byte aligned
      L.add(s, L.transpose(L.randn([7, 7], { device: 'cuda' }), 0, 1)).toArray();
      L.sub(2, s); L.div(3, s); L.pow(2, s); L.gt(0.5, s); L.le(s, 0.1); L.mul(s, 2);
      L.add(a.to('bfloat16'), a);                     // bf16 + float32
      L.where(L.gt(a, 0), a, 0).toArray();
      L.add(L.tensor([1, 2, 3], { dtype: 'int64', device: 'cuda' }), 5).toArray();
      L.gather(a, 1, L.tensor([[0, 8], [1, 2], [3, 3], [0, 0], [1, 1], [2, 2], [4, 4]], { dtype: 'int64', device: 'cuda' })).toArray();
      L.embedding(L.tensor([0, 3], { dtype: 'int64', device: 'cuda' }), a);
      L.full([3, 5], 2, { device: 'cuda', dtype: 'bfloat16' }).to('float32').toArray();
      L.sum(a, 0).toArray(); L.softmax(a, -1); L.layerNorm(a, [9]);
      const rq = L.randn([2, 3, 2, 4], { device: 'cuda', requiresGrad: true });
      L.sum(L.rotary(rq, L.randn([3, 2], { device: 'cuda' }), L.randn([3, 2], { device: 'cuda' }))).backward();  // forward and inverse rotation
    });
    // a differentiable 3x3 convolution over a batch of 64 is one im2col chunk on cuda (the cpu's cache-sized chunk holds 4 items)
    const g0 = fake.fakeCalls().gemm;
    L.scope(() => L.conv2d(L.randn([64, 64, 32, 32], { device: 'cuda' }), L.randn([64, 64, 3, 3], { device: 'cuda', requiresGrad: true })));
    const convGemms = fake.fakeCalls().gemm - g0;
    console.log(JSON.stringify({ calls: fake.fakeCalls(), liveBuffers: be.liveBuffers(), convGemms }));`;
  const r = run(['--input-type=module', '-e', script]);
  assert.equal(r.status, 0, r.stderr);
  const { calls } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { calls: Record<string, number> };
  // the new paths were all exercised, the fused kernels were called
  for (const k of ['binary.path0', 'binary.path1', 'binaryScalar.path0', 'binaryScalar.path1', 'copy.path0', 'fill.path0', 'gemm', 'adamwMulti',
    'attention', 'attentionBackward', 'swiglu', 'swigluBackward', 'modulate', 'gatedAdd', 'rotary', 'layerNorm', 'layerNormBackward', 'layerNormBackward.fromOutput', 'gather', 'where', 'unary']) {
    assert.ok((calls[k] ?? 0) > 0, `${k} was called (calls: ${JSON.stringify(calls)})`);
  }
  assert.equal(calls.alloc, calls.free + JSON.parse(r.stdout.trim().split('\n').at(-1)!).liveBuffers, 'every buffer is freed or still live');
  assert.equal(JSON.parse(r.stdout.trim().split('\n').at(-1)!).convGemms, 1, 'one GEMM for the whole convolution (Backend.convChunkFloats)');
});

test('the DiT-MNIST training step of `lavender bench train-step --backend cuda` keeps to the addon protocol', () => {
  const r = run(['bin/lavender.js', 'bench', 'train-step', '--model', 'dit-mnist', '--batch', '2', '--backend', 'cuda', '--steps', '1', '--warmup', '0', '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /"backend":\s*"cuda"/);
});

test('on a native-bf16 backend the graph keeps no bf16 copy of a weight between the forward and the backward', () => {
  // two Linears of 1024x1024 (no bias) under autocast: the first casts its weight (fp32 input), the second gets the
  // first's bf16 output (a bf16 input: the Linear casts its weight to it). Kept: inputs and outputs only.
  const script = `
    import * as L from './dist/src/index.js';
    import { createRequire } from 'node:module';
    const fake = createRequire(import.meta.url)(process.env.LAVENDER_CUDA_ADDON);
    const g = new L.Generator(0);
    const l1 = new L.nn.Linear(1024, 1024, { device: 'cuda', generator: g, bias: false }), l2 = new L.nn.Linear(1024, 1024, { device: 'cuda', generator: g, bias: false });
    const x = L.randn([4, 1024], { device: 'cuda', requiresGrad: true });
    const result = L.scope(() => {
      const before = fake.memStats().inUse;
      const y = L.scope(() => L.autocast('bfloat16', () => l2.forward(l1.forward(x))));
      const kept = fake.memStats().inUse - before;
      const gemms = fake.fakeCalls().gemm, strided = fake.fakeCalls()['copy.path1'] ?? 0;
      L.sum(L.mul(L.cast(y, 'float32'), L.randn([4, 1024], { device: 'cuda' }))).backward();
      return { kept, dtype: y.dtype, backwardGemms: fake.fakeCalls().gemm - gemms, grads: [l1.weight, l2.weight, x].every((p) => p.grad !== null),
        stridedCopies: (fake.fakeCalls()['copy.path1'] ?? 0) - strided };
    });
    console.log(JSON.stringify(result));`;
  const r = run(['--input-type=module', '-e', script]);
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { kept: number; dtype: string; backwardGemms: number; grads: boolean; stridedCopies: number };
  assert.equal(o.dtype, 'bfloat16');
  assert.ok(o.kept < 1024 * 1024 * 2 / 4, `the graph kept ${o.kept} bytes (one bf16 weight copy is ${1024 * 1024 * 2})`);
  assert.ok(o.backwardGemms >= 4 && o.grads, 'the backward ran through both Linears');
  // the weights' gradients are made in their own layout, so their casts to float32 read contiguously
  assert.equal(o.stridedCopies, 0, 'strided copies in the backward');
});

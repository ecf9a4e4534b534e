// The webgpu kernels meant for real GPUs, checked against the cpu reference on whatever adapter is here
// (lavapipe in CI): the ops of the cross-backend suite whose kernels depend on the profile, again with
// the 'gpu' profile (workgroup-cooperative rows and reductions; backends.test.ts runs the profile the
// adapter picks, 'software' on lavapipe); every matmul tile forced, and one tile over every load path
// (ragged, aligned vec4, transposed, offset); float16 storage and arithmetic (shader-f16); the fused
// attention forward and the fused AdamW step. Few distinct kernels: a cold shader cache compiles each.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { webgpuEntry, type WebGpuBackend } from '../src/backends/webgpu/index.js';
import { TILES } from '../src/backends/webgpu/matmul.js';
import { elementwiseMeta, elementwiseWgsl } from '../src/backends/webgpu/codegen.js';
import { f32ToF16 } from '../src/tensor/dtype.js';
import fc from 'fast-check';
import { compareWithCpu } from './harness/backend-suite.js';
import { OP_CASES } from './harness/op-cases.js';

const probe = webgpuEntry.probe();
const skip = probe.available ? false : `webgpu unavailable: ${probe.reason}`;
const be = probe.available ? (L.getBackend('webgpu') as WebGpuBackend) : null;
const f16 = !!be?.device.f16;

// The ops whose kernels differ between the profiles (reductions and the fused row kernels), through the
// cross-backend comparison with the 'gpu' profile; every other op is the same code in both profiles.
const PROFILE_CASES = ['sum', 'mean', 'max', 'min', 'var', 'argmax', 'softmax', 'logSoftmax', 'layerNorm', 'groupNorm', 'crossEntropy'];
test('[webgpu, gpu profile] reductions and fused row kernels match cpu (forward and backward, random shapes)', { skip }, () => {
  be!.setProfile('gpu');
  const cases = OP_CASES.filter((c) => PROFILE_CASES.includes(c.name));
  assert.equal(cases.length, PROFILE_CASES.length, 'an op case was renamed: update PROFILE_CASES');
  for (const c of cases) {
    fc.assert(fc.property(c.arb, ({ inputs, params }) => compareWithCpu(c, inputs, params, 'webgpu', 1e-4, 1e-5)), { numRuns: 12 });
  }
});

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)));
  return d;
}

/** A [B, R, C] operand on webgpu whose layout is transposed (unit stride on R) when `t`, sliced off offset 0 when `sliced`. */
function operand(B: number, R: number, C: number, t: boolean, sliced: boolean, g: L.Generator): { cpu: L.Tensor; gpu: L.Tensor } {
  const extra = sliced ? 4 : 0;
  const base = L.randn(t ? [B, C + extra, R] : [B, R + extra, C], { generator: g });
  const cut = (x: L.Tensor) => (sliced ? L.slice(x, 1, extra) : x);
  const cpuT = cut(base);
  const gpuT = cut(base.to('webgpu'));
  return t ? { cpu: L.transpose(cpuT, 1, 2), gpu: L.transpose(gpuT, 1, 2) } : { cpu: cpuT, gpu: gpuT };
}

test('webgpu matmul: every tile and the direct kernel match cpu; one tile over every load path (aligned, transposed, ragged, offset)', { skip }, () => {
  const seen = new Set<string>();
  const check = (cfg: string, [B, M, K, N]: readonly number[], [ta, tb, sliced]: readonly boolean[]) => L.scope(() => {
    const g = new L.Generator(M! * 31 + K! * 7 + N!);
    const a = operand(B!, M!, K!, ta!, sliced!, g), b = operand(B!, K!, N!, tb!, sliced!, g);
    const plan = be!.matmulPlan(a.gpu.view(), b.gpu.view());
    if (plan.kind === 'tiled') seen.add(`${plan.a.along}${plan.a.vec ? 4 : 1}/${plan.b.along}${plan.b.vec ? 4 : 1}/${plan.vecOut ? 4 : 1}`);
    const d = maxDiff(L.matmul(a.gpu, b.gpu).toArray(), L.matmul(a.cpu, b.cpu).toArray());
    assert.ok(d < 1e-4, `${cfg} [${B}, ${M}, ${K}] x [${K}, ${N}] (A transposed ${ta}, B transposed ${tb}, sliced ${sliced}): ${d}`);
  });
  try {
    // every tile on an aligned shape with partial tiles (vec4 loads and stores)
    for (const cfg of ['direct', 'direct4', ...Object.keys(TILES), '32x64x8/4x8']) {
      be!.setMatmulConfig(cfg);
      check(cfg, [2, 132, 32, 68], [false, false, false]);
    }
    // the vectorised direct kernel over its other load orientations (A along M, B along K) and a ragged M
    be!.setMatmulConfig('direct4');
    check('direct4', [2, 132, 32, 68], [true, true, true]);
    check('direct4', [1, 33, 16, 8], [false, true, false]);
    // one tile over every load path: vec4 along K (A) and N (B); along M (A transposed) and K (B
    // transposed, as x W^T); scalar (ragged, sliced); vec4 loads with scalar stores (N not a multiple of 4)
    be!.setMatmulConfig('large');
    check('large', [2, 132, 32, 68], [true, true, true]);
    check('large', [3, 33, 17, 65], [false, false, true]);
    check('large', [2, 20, 16, 30], [false, true, false]);
  } finally {
    be!.setMatmulConfig('auto');
  }
  for (const want of ['k4/mn4/4', 'mn4/k4/4', 'k4/k4/1', 'k1/mn1/1']) assert.ok(seen.has(want), `load path ${want} not exercised (saw ${[...seen].join(', ')})`);
});

test('webgpu elementwise: the flat, grid and strided kernels match cpu (dense, broadcast and permuted views up to rank 6)', { skip }, () => {
  const kinds = new Set<string>();
  L.scope(() => {
    const g = new L.Generator(11);
    const cases: [number[], number[] | null, number[]][] = [
      [[6, 5], null, [6, 5]], // dense: flat
      [[2, 3, 4, 5], [0, 2, 1, 3], [2, 4, 3, 5]], // permuted rank 4: grid
      [[3, 1, 5], null, [3, 4, 5]], // broadcast: grid
      [[2, 3, 2, 3, 2, 3], [5, 0, 3, 1, 4, 2], [3, 2, 3, 3, 2, 2]], // permuted rank 6: strided
    ];
    for (const [shape, perm, outShape] of cases) {
      const x = L.randn(shape, { generator: g }), y = L.randn(outShape, { generator: g });
      const xv = perm ? L.permute(x, perm) : L.expand(x, outShape);
      const xg = perm ? L.permute(x.to('webgpu'), perm) : L.expand(x.to('webgpu'), outShape);
      const views = [xg.view(), y.to('webgpu').view(), y.to('webgpu').view()];
      kinds.add(elementwiseMeta(outShape, views).kind);
      assert.deepEqual(Array.from(L.add(L.mul(xg, y.to('webgpu')), 1).toArray()), Array.from(L.add(L.mul(xv, y), 1).toArray()), `shape ${shape} perm ${perm}`);
      assert.deepEqual(Array.from(L.contiguous(xg).toArray()), Array.from(L.contiguous(xv).toArray()));
    }
  });
  assert.deepEqual([...kinds].sort(), ['flat', 'grid', 'strided']);
});

test('webgpu kernels of float32 tensors do not ask for the f16 extension (adapters without shader-f16 reject it)', { skip }, () => {
  const code = elementwiseWgsl({ ins: ['f32', 'f32'], out: 'f32', expr: 'a + b', mode: 'f32' }, 'grid');
  assert.doesNotMatch(code, /enable f16/);
  assert.match(elementwiseWgsl({ ins: ['f16'], out: 'f32', expr: 'a', mode: 'f32' }, 'flat'), /^enable f16;/);
});

test('webgpu matmul: a tile the device cannot run is refused by name', { skip }, () => {
  try {
    be!.setMatmulConfig('512x512x64/8x8');
    assert.throws(() => L.scope(() => L.matmul(L.ones([64, 64], { device: 'webgpu' }), L.ones([64, 64], { device: 'webgpu' }))), /webgpu matmul: tile 512x512x64\/8x8 cannot run on this device: .*exceed/);
    be!.setMatmulConfig('7x7x7/7x7');
    assert.throws(() => L.scope(() => L.matmul(L.ones([8, 8], { device: 'webgpu' }), L.ones([8, 8], { device: 'webgpu' }))), /multiples of 4/);
  } finally {
    be!.setMatmulConfig('auto');
  }
});

test('webgpu float16 (shader-f16): conversions are bit-exact with the cpu, arithmetic is float32 stored as half', { skip: skip || (f16 ? false : 'the adapter has no shader-f16') }, () => {
  L.scope(() => {
    // ties, subnormals, overflow past 65504, NaN and the infinities
    const vals = [0, -0, 1, -1.5, 65504, 65519, 65520, 1e6, -1e6, 5.96e-8, 2.98e-8, 2.99e-8, 6.1e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, NaN, Infinity, -Infinity, 0.1, Math.PI];
    const x = L.tensor(vals);
    const bits = (t: L.Tensor) => Array.from(be!.read(t.contiguous().storage.buf)).slice(0, vals.length);
    assert.deepEqual(bits(x.to('webgpu').to('float16')), vals.map(f32ToF16));
    // odd offsets and lengths go through the copy path of write
    const h = L.zeros([5], { dtype: 'float16', device: 'webgpu' });
    be!.write(h.storage.buf, [0x3c00, 0x4000, 0x4200], 1);
    assert.deepEqual(Array.from(h.to('float32').toArray()), [0, 1, 2, 3, 0]);
    const g = new L.Generator(3);
    const a = L.randn([4, 33], { generator: g }), b = L.randn([33, 9], { generator: g });
    const a16 = a.to('webgpu').to('float16'), b16 = b.to('webgpu').to('float16');
    const ar = a16.to('float32').to('cpu'), br = b16.to('float32').to('cpu'); // the rounded inputs
    const round = (t: L.Tensor) => L.tensor(Array.from(t.toArray())).to('float16').to('float32');
    assert.ok(maxDiff(L.add(L.mul(a16, 2), 1).to('float32').to('cpu').toArray(), round(L.add(L.mul(ar, 2), 1)).toArray()) === 0);
    assert.ok(maxDiff(L.sum(a16, -1).to('float32').to('cpu').toArray(), L.sum(ar, -1).toArray()) < 2e-3);
    assert.ok(maxDiff(L.softmax(a16, -1).to('float32').to('cpu').toArray(), L.softmax(ar, -1).toArray()) < 1e-3);
    assert.ok(maxDiff(L.layerNorm(a16, [33]).to('float32').to('cpu').toArray(), L.layerNorm(ar, [33]).toArray()) < 4e-3);
    for (const cfg of ['direct', 'large']) {
      be!.setMatmulConfig(cfg);
      const m = L.matmul(a16, b16);
      assert.equal(m.dtype, 'float16');
      // f16 products summed in f16 over a K step of the tiled kernels: about 1e-3 relative
      assert.ok(maxDiff(m.to('float32').to('cpu').toArray(), L.matmul(ar, br).toArray()) < 1e-2, cfg);
    }
    be!.setMatmulConfig('auto');
    const r = L.randn([300], { generator: new L.Generator(9), device: 'webgpu', dtype: 'float16' });
    assert.deepEqual(bits(r).slice(0, 20), Array.from(L.randn([300], { generator: new L.Generator(9) }).toArray()).slice(0, 20).map(f32ToF16));
  });
});

test('webgpu refuses float16 without shader-f16 and bfloat16 always, naming the feature', { skip }, () => {
  assert.throws(() => be!.alloc('bfloat16', 4), /webgpu.*bfloat16/);
  if (!f16) assert.throws(() => be!.alloc('float16', 4), /float16 needs an adapter with the 'shader-f16' feature/);
});

/** softmax(scale q k^T + mask) v and the row log-sum-exp, on cpu from primitives. */
function attentionRef(q: L.Tensor, k: L.Tensor, v: L.Tensor, scale: number, causal: boolean): { out: L.Tensor; lse: L.Tensor } {
  let s = L.mul(L.matmul(q, L.transpose(k, -2, -1)), scale);
  if (causal) {
    const [Tq, Tk] = [q.shape[2]!, k.shape[2]!];
    const mask = L.tensor(Array.from({ length: Tq * Tk }, (_, i) => (i % Tk > Math.floor(i / Tk) ? -Infinity : 0))).reshape([Tq, Tk]);
    s = L.add(s, mask);
  }
  const mx = L.max(s, -1, true);
  const lse = L.add(L.log(L.sum(L.exp(L.sub(s, mx)), -1, true)), mx);
  return { out: L.matmul(L.exp(L.sub(s, lse)), v), lse: L.reshape(lse, lse.shape.slice(0, -1)) };
}

test('webgpu fused attention forward matches cpu (causal or not, lse, strided heads, any head dim, float16)', { skip }, () => {
  const attention = be!.fused.attention!;
  const cases = [['gpu', 2, 3, 17, 17, 16, false], ['gpu', 1, 2, 70, 70, 16, true], ['gpu', 2, 1, 5, 130, 5, false], ['gpu', 1, 2, 33, 40, 64, true],
    ['software', 1, 2, 70, 70, 16, true]] as const;
  for (const [profile, B, H, Tq, Tk, D, causal] of cases) {
    be!.setProfile(profile);
    L.scope(() => {
        const g = new L.Generator(B * 100 + Tq + D);
        // q, k, v as the model makes them: [B, T, H, D] permuted to [B, H, T, D] (strided views)
        const make = (T: number) => L.permute(L.randn([B, T, H, D], { generator: g }), [0, 2, 1, 3]);
        const q = make(Tq), k = make(Tk), v = make(Tk);
        const scale = 1 / Math.sqrt(D);
        const want = attentionRef(q, k, v, scale, causal);
        const [qg, kg, vg] = [q, k, v].map((t) => L.permute(L.permute(t, [0, 2, 1, 3]).to('webgpu'), [0, 2, 1, 3]));
        const out = L.zeros([B, H, Tq, D], { device: 'webgpu' }), lse = L.zeros([B, H, Tq], { device: 'webgpu' });
        assert.equal(attention(qg!.view(), kg!.view(), vg!.view(), out.view(), scale, lse.view(), causal), true);
        const where = `${profile} B${B} H${H} Tq${Tq} Tk${Tk} D${D} causal ${causal}`;
        assert.ok(maxDiff(out.toArray(), want.out.contiguous().toArray()) < 1e-5, `${where}: out`);
        assert.ok(maxDiff(lse.toArray(), want.lse.contiguous().toArray()) < 1e-5, `${where}: lse`);
        if (f16 && profile === 'gpu' && D === 16 && !causal) {
          const [q16, k16, v16] = [qg!, kg!, vg!].map((t) => t.to('float16'));
          const o16 = L.zeros([B, H, Tq, D], { device: 'webgpu', dtype: 'float16' });
          assert.equal(attention(q16!.view(), k16!.view(), v16!.view(), o16.view(), scale, null, causal), true);
          const ref = attentionRef(...([q16, k16, v16].map((t) => t!.to('float32').to('cpu')) as [L.Tensor, L.Tensor, L.Tensor]), scale, causal);
          assert.ok(maxDiff(o16.to('float32').toArray(), ref.out.contiguous().toArray()) < 2e-3, `${where}: float16`);
        }
    });
  }
  be!.setProfile('gpu');
  // cases outside the kernel are declined (the caller decomposes), not mis-computed
  L.scope(() => {
    const x = L.randn([2, 4, 3], { device: 'webgpu' });
    assert.equal(attention(x.view(), x.view(), x.view(), x.view(), 1, null, false), false);
  });
});

test('webgpu fused AdamW step matches the torch.optim.AdamW formula over several steps (weight decay, grad scale, low-precision copy)', { skip }, () => {
  const adamw = be!.fused.adamw!;
  L.scope(() => {
    const n = 1000, g = new L.Generator(5);
    const p0 = Array.from(L.randn([n], { generator: g }).toArray());
    const grads = [0, 1, 2].map(() => Array.from(L.randn([n], { generator: g }).toArray()));
    const p = L.tensor(p0).to('webgpu'), m = L.zeros([n], { device: 'webgpu' }), v = L.zeros([n], { device: 'webgpu' });
    const low = f16 ? L.zeros([n], { device: 'webgpu', dtype: 'float16' }) : null;
    const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, gradScale: 0.5 };
    const ref = { p: [...p0], m: new Array<number>(n).fill(0), v: new Array<number>(n).fill(0) };
    grads.forEach((gr, s) => {
      const step = s + 1;
      assert.equal(adamw([{ p: p.view(), g: L.tensor(gr).to('webgpu').view(), m: m.view(), v: v.view(), step, pLow: low?.view() ?? null }], { ...hp, decoupled: true }), true);
      const bc1 = 1 - hp.beta1 ** step, bc2 = Math.sqrt(1 - hp.beta2 ** step);
      for (let i = 0; i < n; i++) {
        const gi = gr[i]! * hp.gradScale;
        ref.m[i] = hp.beta1 * ref.m[i]! + (1 - hp.beta1) * gi;
        ref.v[i] = hp.beta2 * ref.v[i]! + (1 - hp.beta2) * gi * gi;
        ref.p[i] = ref.p[i]! * (1 - hp.lr * hp.weightDecay) - (hp.lr / bc1) * ref.m[i]! / (Math.sqrt(ref.v[i]!) / bc2 + hp.eps);
      }
    });
    assert.ok(maxDiff(p.toArray(), ref.p) < 1e-5, 'p');
    assert.ok(maxDiff(m.toArray(), ref.m) < 1e-5, 'm');
    assert.ok(maxDiff(v.toArray(), ref.v) < 1e-5, 'v');
    if (low) assert.deepEqual(Array.from(be!.read(low.storage.buf)), Array.from(p.toArray(), f32ToF16));
  });
});

// The cuda backend on a machine without a GPU: the addon builds and loads (static cudart), reports the
// missing driver/device cleanly, refuses to create the backend with a clear error, ran its prototype
// check during the build, and lavender works without the addon at all. On a machine with a GPU the
// cross-backend suite (test/backends.test.ts) and the GPU-only checks below run instead; bench/gpu/run.sh
// runs them with LAVENDER_REQUIRE_CUDA=1, so a missing device there fails instead of skipping.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { addonPath, loadAddon, readBuildRecord } from '../src/backends/cuda/addon.js';
import { createCudaBackend, describeProbe, probeCuda, type CudaBackend } from '../src/backends/cuda/index.js';
import { skipUnless } from './harness/require.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync('node', args, { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
/** assert.throws on the error's message (assert.throws with a RegExp matches 'Error: ...'). */
const throwsMsg = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: Error) => { assert.match(e.message, re); return true; });
const hasNvcc = ['nvcc', '/usr/local/cuda/bin/nvcc'].some((c) => spawnSync(c, ['--version']).status === 0);
const { addon } = loadAddon();
const device = addon ? addon.probe() : null;
const hasGpu = !!device && device.code === 0 && device.count > 0;
const gpuSkip = skipUnless('CUDA', hasGpu, addon ? `no CUDA device (${describeProbe(device!) ?? 'probe found none'})` : 'the cuda addon is not built');

/** Whether the dynamic loader finds libnccl.so.2 by itself (ld.so cache or LD_LIBRARY_PATH), as ncclLoad's last resort does. */
function systemNccl(): boolean {
  for (const ldconfig of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    const r = spawnSync(ldconfig, ['-p'], { encoding: 'utf8' });
    if (r.status === 0) return r.stdout.includes('libnccl.so.2');
  }
  return (process.env.LD_LIBRARY_PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'libnccl.so.2')));
}

/** A shared library this process has loaded that is not NCCL (libm), to stand in for a broken libnccl.so.2. */
function someOtherLibrary(): string | null {
  const m = /\s(\/\S*\/libm\.so\.6)$/m.exec(readFileSync('/proc/self/maps', 'utf8'));
  return m ? m[1]! : null;
}

test('the native build ran where nvcc exists, and recorded its prototype check', { skip: !hasNvcc && 'no nvcc on this machine: the install skipped the addon' }, () => {
  const rec = readBuildRecord();
  assert.ok(rec, 'build/native/lavender-build.json is written by scripts/build-native.mjs');
  assert.equal(rec.status, 'built', `native build ${rec.status}: ${rec.reason ?? ''}`);
  assert.ok(addon, `the addon at ${addonPath()} loads`);
  assert.ok(rec.protoCheck);
  for (const part of ['cublas', 'nccl'] as const) {
    assert.match(rec.protoCheck[part], /^(checked \d+ (cuBLAS|NCCL) prototypes and their enum values against \S+|skipped: \S+ not found at build time)/);
  }
  // the record is what the addon itself says was compiled in
  assert.deepEqual(addon.buildInfo().protoCheck, rec.protoCheck);
  assert.equal(addon.buildInfo().cudartVersion >= 12000, true);
});

test('the addon loads and probes without a device cleanly', { skip: !addon && 'addon not built' }, () => {
  const p = addon!.probe();
  assert.equal(typeof p.code, 'number');
  assert.equal(typeof p.message, 'string');
  assert.ok(p.runtimeVersion >= 12000);
  if (!hasGpu) {
    assert.equal(p.count, 0);
    const why = describeProbe(p)!;
    assert.ok(why.length > 0);
    if (p.code === 35) assert.match(why, /^no CUDA driver \(cudaGetDeviceCount returned 35: CUDA driver version is insufficient/);
  }
});

test('probe() gives the reason and lavender info --json reports cuda built/available/reason', () => {
  const pr = probeCuda();
  const r = run(['bin/lavender.js', 'info', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const cuda = JSON.parse(r.stdout).backends.find((b: { name: string }) => b.name === 'cuda');
  const reason = String(cuda.reason);
  assert.deepEqual(cuda, { name: 'cuda', built: !!addon, available: pr.available, reason: pr.reason ?? null });
  if (!addon) assert.match(reason, /^not built/);
  else if (!hasGpu) assert.match(reason, /^no CUDA (driver|device)|^CUDA unavailable/);
});

test('creating the backend without a device throws a clear error naming cuda and the cause', { skip: hasGpu && 'a GPU is present' }, () => {
  assert.throws(() => createCudaBackend(), (e: Error) => /^cuda: (not built|no CUDA driver|no CUDA device|CUDA unavailable)/.test(e.message));
  throwsMsg(() => L.scope(() => L.zeros([2], { device: 'cuda' })), /^cuda: /);
  // the failed creation leaves the rest working
  assert.deepEqual(Array.from(L.scope(() => L.add(L.ones([2]), L.ones([2])).toArray())), [2, 2]);
});

test('addon entry points refuse to run before init and on bad input, without aborting', { skip: (!addon && 'addon not built') || (hasGpu && 'a GPU is present: init would succeed') }, () => {
  throwsMsg(() => addon!.alloc(16), /^cuda: alloc: the cuda device is not initialised/);
  throwsMsg(() => addon!.fill(new Float64Array([1, 4]), 0), /^cuda: fill: the cuda device is not initialised/);
  throwsMsg(() => addon!.memStats(), /^cuda: allocator: the cuda device is not initialised/);
  throwsMsg(() => addon!.init(0, []), /^cuda: no CUDA (driver|device)|^cuda: CUDA unavailable/);
  throwsMsg(() => (addon as unknown as { fill(x: unknown): void }).fill('nope'), /^cuda: /);
  throwsMsg(() => addon!.ncclGroupStart(), /^cuda: ncclGroupStart: NCCL is not loaded/);
});

test('the caching allocator policy passes its host self-test (reuse, OOM release-and-retry, double free)', { skip: !addon && 'addon not built' }, () => {
  assert.equal(addon!.selfTest(), '');
});

test('NCCL loading: a library without the NCCL symbols is named; a missing one lists what was tried, or the system one loads', { skip: !addon && 'addon not built' }, () => {
  const other = someOtherLibrary();
  if (other) {
    // a file called libnccl.so.2 that is some other library: found in the given directory, refused by symbol
    const dir = mkdtempSync(join(tmpdir(), 'lav-nccl-'));
    copyFileSync(other, join(dir, 'libnccl.so.2'));
    throwsMsg(() => addon!.ncclLoad([dir]), /^cuda: NCCL has no symbol ncclGetVersion/);
  }
  // no NCCL in the given directory: the outcome depends only on whether the system has one, decided independently
  if (systemNccl()) {
    const v = addon!.ncclLoad(['/nonexistent-lavender-dir']);
    assert.ok(v.version > 0 && v.path.includes('libnccl'), JSON.stringify(v));
  } else {
    throwsMsg(() => addon!.ncclLoad(['/nonexistent-lavender-dir']), /^cuda: NCCL not found \(tried .*libnccl\.so\.2.*\); install the nvidia-nccl wheel/);
  }
});

test('without the addon (LAVENDER_CUDA_ADDON at a missing path) everything else still works', () => {
  const env = { LAVENDER_CUDA_ADDON: '/nonexistent/lavender_cuda.node' };
  const r = run(['bin/lavender.js', 'info', '--json'], env);
  assert.equal(r.status, 0, r.stderr);
  const cuda = JSON.parse(r.stdout).backends.find((b: { name: string }) => b.name === 'cuda');
  assert.equal(cuda.built, false);
  assert.equal(cuda.available, false);
  assert.match(cuda.reason, /^not built: no native addon at \/nonexistent\/lavender_cuda\.node/);
  const script = `
    import * as L from './dist/src/index.js';
    const y = L.scope(() => L.sum(L.matmul(L.ones([4, 8]), L.ones([8, 2]))).item());
    let msg = '';
    try { L.zeros([1], { device: 'cuda' }); } catch (e) { msg = e.message; }
    console.log(JSON.stringify({ y, msg }));`;
  const s = run(['--input-type=module', '-e', script], env);
  assert.equal(s.status, 0, s.stderr);
  const out = JSON.parse(s.stdout);
  assert.equal(out.y, 64);
  assert.match(out.msg, /^cuda: not built: no native addon at/);
});

// ---- GPU only (run by bench/gpu/run.sh on a machine with a device) ---------------------------------

test('GPU: bf16 matmul, fused attention and AdamW agree with float32/cpu math', { skip: gpuSkip }, () => {
  const be = L.getBackend('cuda') as CudaBackend;
  L.scope(() => {
    const g = new L.Generator(3);
    const a = L.randn([3, 64, 96], { generator: g }), b = L.randn([96, 48], { generator: g });
    const want = L.matmul(a, b).toArray();
    const got = L.matmul(a.to('cuda').to('bfloat16'), b.to('cuda').to('bfloat16')).to('float32').to('cpu').toArray();
    let err = 0, scale = 0;
    for (let i = 0; i < want.length; i++) { err = Math.max(err, Math.abs(got[i]! - want[i]!)); scale = Math.max(scale, Math.abs(want[i]!)); }
    assert.ok(err / scale < 2e-2, `bf16 matmul rel err ${err / scale}`);

    const [B, H, T, D] = [2, 3, 40, 32];
    const q = L.randn([B, H, T, D], { generator: g }), k = L.randn([B, H, T, D], { generator: g }), v = L.randn([B, H, T, D], { generator: g });
    const ref = L.scaledDotProductAttention(q, k, v).toArray();
    const qc = q.to('cuda'), kc = k.to('cuda'), vc = v.to('cuda');
    const out = L.zeros([B, H, T, D], { device: 'cuda' });
    assert.equal(be.fused.attention!(qc.view(), kc.view(), vc.view(), out.view(), 1 / Math.sqrt(D), null, false), true);
    const o = out.to('cpu').toArray();
    for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(o[i]! - ref[i]!) < 1e-4, `attention element ${i}: ${o[i]} vs ${ref[i]}`);

    const p = L.randn([1000], { generator: g }), gr = L.randn([1000], { generator: g });
    const pc = p.to('cuda'), gc = gr.to('cuda'), m = L.zeros([1000], { device: 'cuda' }), vv = L.zeros([1000], { device: 'cuda' });
    assert.equal(be.fused.adamw!([{ p: pc.view(), g: gc.view(), m: m.view(), v: vv.view(), step: 1 }], { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, decoupled: true }), true);
    const pn = pc.to('cpu').toArray(), p0 = p.toArray(), g0 = gr.toArray();
    for (let i = 0; i < 1000; i++) {
      const mm = 0.1 * g0[i]!, v2 = 0.05 * g0[i]! * g0[i]!;
      const expect = p0[i]! * (1 - 1e-3) - (1e-2 / 0.1) * mm / (Math.sqrt(v2) / Math.sqrt(0.05) + 1e-8);
      assert.ok(Math.abs(pn[i]! - expect) < 1e-5, `adamw element ${i}`);
    }
  });
  const before = be.liveBuffers();
  L.scope(() => L.matmul(L.ones([64, 64], { device: 'cuda' }), L.ones([64, 64], { device: 'cuda' })).to('cpu'));
  assert.equal(be.liveBuffers(), before, 'buffers are freed deterministically');
  assert.ok(be.memStats().hits > 0, 'the caching allocator reuses blocks');
});

test('GPU: six fused AdamW steps (changing gradients, a bf16 copy of the weights) follow lavender\'s cpu AdamW step by step', { skip: gpuSkip }, () => {
  const be = L.getBackend('cuda') as CudaBackend;
  L.scope(() => {
    const g = new L.Generator(7), n = 1000;
    const hyper = { lr: 2e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const p0 = L.randn([n], { generator: g });
    const ref = L.keep(L.clone(p0));
    const opt = new L.optim.AdamW([ref], { lr: hyper.lr, betas: [hyper.beta1, hyper.beta2], eps: hyper.eps, weightDecay: hyper.weightDecay });
    const pc = p0.to('cuda'), m = L.zeros([n], { device: 'cuda' }), v = L.zeros([n], { device: 'cuda' });
    const low = L.zeros([n], { device: 'cuda', dtype: 'bfloat16' });
    for (let step = 1; step <= 6; step++) {
      // gradients of changing scale and sign, so bias correction and the moments' history matter
      const gr = L.mul(L.randn([n], { generator: g }), step % 2 ? 1 : -0.3);
      assert.equal(be.fused.adamw!([{ p: pc.view(), g: gr.to('cuda').view(), m: m.view(), v: v.view(), step, pLow: step === 6 ? low.view() : null }], { ...hyper, decoupled: true }), true);
      ref.setGrad(L.clone(gr));
      opt.step();
      const got = pc.to('cpu').toArray(), want = ref.toArray();
      for (let i = 0; i < n; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5 * Math.max(1, Math.abs(want[i]!)), `step ${step}, element ${i}: cuda ${got[i]} vs cpu ${want[i]}`);
    }
    // the bf16 copy is the updated weights rounded to bf16
    assert.deepEqual(Array.from(low.to('cpu').to('float32').toArray()), Array.from(pc.to('bfloat16').to('float32').to('cpu').toArray()));
  });
});

/** Max |a - b| / max |b| over two cpu float arrays. */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let e = 0, s = 0;
  for (let i = 0; i < b.length; i++) { e = Math.max(e, Math.abs(a[i]! - b[i]!)); s = Math.max(s, Math.abs(b[i]!)); }
  return e / (s || 1);
};

test('GPU: the elementwise kernels agree with the cpu on every path (vector, 32-bit strided, generic) and dtype', { skip: gpuSkip }, () => {
  const be = L.getBackend('cuda') as CudaBackend;
  L.scope(() => {
    const g = new L.Generator(5);
    // 1003 elements: a vector body and a scalar tail; a slice at an odd offset: not 16-byte aligned (strided path);
    // a transposed view (strided); float64 and int32 (generic path in double)
    const x = L.randn([17, 59], { generator: g }), y = L.randn([17, 59], { generator: g });
    const views: [string, (t: L.Tensor) => L.Tensor][] = [['dense', (t) => t], ['offset', (t) => L.slice(t, 1, 1, 59)], ['transposed', (t) => L.transpose(t, 0, 1)]];
    for (const [name, f] of views) {
      for (const dtype of ['float32', 'bfloat16', 'float64'] as const) {
        const tol = dtype === 'bfloat16' ? 1e-2 : 1e-6;
        const xc = f(x.to('cuda').to(dtype)), yc = f(y.to('cuda').to(dtype));
        const xs = f(x.to(dtype === 'bfloat16' ? 'float32' : dtype)), ys = f(y.to(dtype === 'bfloat16' ? 'float32' : dtype));
        const cmp = (got: L.Tensor, want: L.Tensor, what: string) => {
          const e = relErr(got.to('float32').to('cpu').toArray(), want.to('float32').toArray());
          assert.ok(e < tol, `${what} ${name} ${dtype}: rel err ${e}`);
        };
        const round = (t: L.Tensor) => (dtype === 'bfloat16' ? t.to('bfloat16').to('float32') : t);
        cmp(L.add(xc, yc), L.add(round(xs), round(ys)), 'add');
        cmp(L.mul(xc, 2.5), L.mul(round(xs), 2.5), 'mul scalar');
        cmp(L.sub(1, xc), L.sub(1, round(xs)), 'rsub scalar');
        cmp(L.exp(xc), L.exp(round(xs)), 'exp');
        cmp(L.where(L.gt(xc, 0), xc, yc), L.where(L.gt(round(xs), 0), round(xs), round(ys)), 'where');
        assert.deepEqual(Array.from(L.lt(xc, 0.25).to('cpu').toArray()), Array.from(L.lt(round(xs), 0.25).toArray()), `lt ${name} ${dtype}`);
        assert.deepEqual(Array.from(L.gt(0.25, xc).to('cpu').toArray()), Array.from(L.gt(0.25, round(xs)).toArray()), `scalar-first gt ${name} ${dtype}`);
      }
    }
    // mixed float32 + bf16 (the residual add under autocast), fill, and int32 math in double
    const mixed = L.add(x.to('cuda'), y.to('cuda').to('bfloat16'));
    assert.equal(mixed.dtype, 'float32');
    assert.ok(relErr(mixed.to('cpu').toArray(), L.add(x, y.to('bfloat16').to('float32')).toArray()) < 1e-6);
    const big = L.tensor([2 ** 24 + 1, -7], { dtype: 'int32' });
    assert.deepEqual(Array.from(L.add(big.to('cuda'), 2).to('cpu').toArray()), [2 ** 24 + 3, -5]);
    assert.deepEqual(Array.from(L.full([5], 3.5, { device: 'cuda', dtype: 'bfloat16' }).to('float32').to('cpu').toArray()), [3.5, 3.5, 3.5, 3.5, 3.5]);
    // SwiGLU fused forward and backward against the composition on the cpu
    const a = L.randn([6, 40], { generator: g, requiresGrad: true }), b = L.randn([6, 40], { generator: g, requiresGrad: true });
    const ac = a.to('cuda').detach().requiresGrad_(), bc = b.to('cuda').detach().requiresGrad_();
    const yc = L.swiglu(ac, bc), ycpu = L.mul(L.silu(a), b);
    assert.ok(relErr(yc.to('cpu').toArray(), ycpu.toArray()) < 1e-6);
    L.sum(L.square(yc)).backward();
    L.sum(L.square(ycpu)).backward();
    assert.ok(relErr(ac.grad!.to('cpu').toArray(), a.grad!.toArray()) < 1e-5, 'swiglu da');
    assert.ok(relErr(bc.grad!.to('cpu').toArray(), b.grad!.toArray()) < 1e-5, 'swiglu db');
    // modulate: the fused kernel against the composition on the cpu, float32 and (autocast's case) float32 x
    // with bf16 shift/scale, whose 1 + scale the composition rounds to bf16 before the float32 multiply
    const mx = L.randn([3, 5, 40], { generator: g, requiresGrad: true });
    const msh = L.randn([3, 40], { generator: g, requiresGrad: true }), msc = L.randn([3, 40], { generator: g, requiresGrad: true });
    const [mxc, mshc, mscc] = [mx, msh, msc].map((t) => t.to('cuda').detach().requiresGrad_());
    const my = L.modulate(mxc!, mshc!, mscc!), mref = L.add(L.mul(mx, L.add(L.unsqueeze(msc, 1), 1)), L.unsqueeze(msh, 1));
    assert.deepEqual(Array.from(my.to('cpu').toArray()), Array.from(mref.toArray()), 'modulate float32: the composition\'s bits');
    L.sum(L.square(my)).backward();
    L.sum(L.square(mref)).backward();
    for (const [dev, host, what] of [[mxc, mx, 'dx'], [mshc, msh, 'dshift'], [mscc, msc, 'dscale']] as const) {
      assert.ok(relErr(dev!.grad!.to('cpu').toArray(), host.grad!.toArray()) < 1e-5, `modulate ${what}`);
    }
    const [shb, scb] = [msh, msc].map((t) => t.detach().to('bfloat16'));
    const myb = L.modulate(mx.detach().to('cuda'), shb!.to('cuda'), scb!.to('cuda'));
    assert.equal(myb.dtype, 'float32');
    const s1 = L.cast(L.cast(L.add(L.unsqueeze(L.cast(scb!, 'float32'), 1), 1), 'bfloat16'), 'float32');
    const mrefb = L.add(L.mul(mx.detach(), s1), L.unsqueeze(L.cast(shb!, 'float32'), 1));
    assert.deepEqual(Array.from(myb.to('cpu').toArray()), Array.from(mrefb.toArray()), 'modulate with bf16 shift/scale: the composition\'s bits');
    // gatedAdd: float32 x with bf16 gate and y (the residual under autocast): gate * y rounded to bf16, then a float32 add
    const gy = L.randn([3, 5, 40], { generator: g }).to('bfloat16');
    const ga = L.gatedAdd(mx.detach().to('cuda'), scb!.to('cuda'), gy.to('cuda'));
    const gref = L.add(mx.detach(), L.cast(L.cast(L.mul(L.unsqueeze(L.cast(scb!, 'float32'), 1), L.cast(gy, 'float32')), 'bfloat16'), 'float32'));
    assert.deepEqual(Array.from(ga.to('cpu').toArray()), Array.from(gref.toArray()), 'gatedAdd with bf16 gate/y: the composition\'s bits');
    // rotary (kernels/cuda/rotary.cu) against the cpu's, forward and its gradient (the inverse rotation)
    const rx = L.randn([2, 5, 3, 8], { generator: g, requiresGrad: true });
    const [rc, rs] = [L.randn([5, 4], { generator: g }), L.randn([5, 4], { generator: g })];
    const rxc = rx.to('cuda').detach().requiresGrad_();
    const ry = L.rotary(rxc, rc.to('cuda'), rs.to('cuda')), ryref = L.rotary(rx, rc, rs);
    assert.deepEqual(Array.from(ry.to('cpu').toArray()), Array.from(ryref.toArray()), 'rotary: the cpu\'s bits');
    const rw = L.randn([2, 5, 3, 8], { generator: g });
    L.sum(L.mul(ry, rw.to('cuda'))).backward();
    L.sum(L.mul(ryref, rw)).backward();
    assert.deepEqual(Array.from(rxc.grad!.to('cpu').toArray()), Array.from(rx.grad!.toArray()), 'rotary gradient');
  });
  assert.equal(be.liveBuffers() >= 0, true);
});

test('GPU: a bad gather index is raised, named, at the next read (no sync of its own) and cleared', { skip: gpuSkip }, () => {
  const be = L.getBackend('cuda') as CudaBackend;
  L.scope(() => {
    const x = L.tensor([1, 2, 3]).to('cuda');
    const idx = L.tensor([0, 7], { dtype: 'int64' }).to('cuda');
    const out = be.alloc('float32', 2);
    be.gather(x.view(), 0, idx.view(), { buf: out, shape: [2], strides: [1], offset: 0 });
    throwsMsg(() => be.read(out), /^cuda: gather: index 7 is out of range for an axis of size 3 \(found by a kernel queued before this cuda read\)/);
    be.free(out);
    assert.deepEqual(Array.from(L.mul(x, 2).to('cpu').toArray()), [2, 4, 6]);
  });
});

test('GPU: the fused attention backward (not yet run on a GPU before) matches the composed one', { skip: gpuSkip }, () => {
  const be = L.getBackend('cuda') as CudaBackend;
  L.scope(() => {
    const g = new L.Generator(9);
    for (const [B, H, Tq, Tk, D, causal] of [[2, 3, 40, 40, 32, false], [1, 2, 33, 70, 64, false], [1, 1, 50, 50, 128, true]] as const) {
      const q = L.randn([B, H, Tq, D], { generator: g }).to('cuda'), k = L.randn([B, H, Tk, D], { generator: g }).to('cuda'), v = L.randn([B, H, Tk, D], { generator: g }).to('cuda');
      const out = L.zeros([B, H, Tq, D], { device: 'cuda' }), lse = L.zeros([B, H, Tq], { device: 'cuda' });
      const scale = 1 / Math.sqrt(D);
      assert.equal(be.fused.attention!(q.view(), k.view(), v.view(), out.view(), scale, lse.view(), causal), true);
      const dout = L.randn([B, H, Tq, D], { generator: g }).to('cuda');
      const [dq, dk, dv] = [q, k, v].map((t) => L.zeros(t.shape, { device: 'cuda' })) as [L.Tensor, L.Tensor, L.Tensor];
      assert.equal(be.fused.attentionBackward!(q.view(), k.view(), v.view(), out.view(), lse.view(), dout.view(), dq.view(), dk.view(), dv.view(), scale, causal), true);
      // the reference: autograd through the composed attention on the cpu
      const [qr, kr, vr] = [q, k, v].map((t) => t.to('cpu').detach().requiresGrad_()) as [L.Tensor, L.Tensor, L.Tensor];
      let s = L.mul(L.matmul(qr, L.transpose(kr, -2, -1)), scale);
      if (causal) s = L.add(s, L.tensor(Array.from({ length: Tq * Tk }, (_, i) => (i % Tk > Math.floor(i / Tk) ? -Infinity : 0)), { shape: [Tq, Tk] }));
      const o = L.matmul(L.softmax(s, -1), vr);
      L.sum(L.mul(o, dout.to('cpu'))).backward();
      for (const [name, got, want] of [['dq', dq, qr], ['dk', dk, kr], ['dv', dv, vr]] as const) {
        const e = relErr(got.to('cpu').toArray(), want.grad!.toArray());
        assert.ok(e < 1e-4, `${name} [${B},${H},${Tq},${Tk},${D}] causal=${causal}: rel err ${e}`);
      }
    }
  });
});

test('GPU: the fused layer norm backward (not yet run on a GPU before) matches the cpu, with and without affine', { skip: !hasGpu && 'no CUDA device' }, () => {
  L.scope(() => {
    const g = new L.Generator(11);
    for (const affine of [false, true]) {
      const x = L.randn([37, 300], { generator: g }), gy = L.randn([37, 300], { generator: g });
      const w = affine ? L.randn([300], { generator: g }) : null, b = affine ? L.randn([300], { generator: g }) : null;
      const grads = (dev: 'cpu' | 'cuda') => {
        const [xd, wd, bd] = [x, w, b].map((t) => (t ? t.to(dev).detach().requiresGrad_() : null));
        L.sum(L.mul(L.layerNorm(xd!, [300], wd, bd), gy.to(dev))).backward();
        return [xd, wd, bd].filter((t): t is L.Tensor => !!t).map((t) => t.grad!.to('cpu').toArray());
      };
      const want = grads('cpu'), got = grads('cuda');
      got.forEach((a, i) => assert.ok(relErr(a, want[i]!) < 1e-4, `layerNorm grad ${i} affine=${affine}: rel err ${relErr(a, want[i]!)}`));
    }
  });
});

test('GPU: multi-tensor AdamW (not yet run on a GPU before) over 50 tensors of odd sizes equals the per-tensor formula', { skip: !hasGpu && 'no CUDA device' }, () => {
  const be = L.getBackend('cuda') as CudaBackend;
  L.scope(() => {
    const g = new L.Generator(13);
    const sizes = Array.from({ length: 50 }, (_, i) => 1 + ((i * 37) % 101));
    const ps = sizes.map((n) => L.randn([n], { generator: g })), gs = sizes.map((n) => L.randn([n], { generator: g }));
    const dev = ps.map((p, i) => ({ p: p.to('cuda'), g: gs[i]!.to('cuda'), m: L.zeros([sizes[i]!], { device: 'cuda' }), v: L.zeros([sizes[i]!], { device: 'cuda' }),
      low: L.zeros([sizes[i]!], { device: 'cuda', dtype: 'bfloat16' }) }));
    const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, decoupled: true };
    assert.equal(be.fused.adamw!(dev.map((d, i) => ({ p: d.p.view(), g: d.g.view(), m: d.m.view(), v: d.v.view(), step: 1 + (i % 3), pLow: i % 2 ? d.low.view() : null })), hp), true);
    dev.forEach((d, i) => {
      const step = 1 + (i % 3), bc1 = 1 - 0.9 ** step, bc2 = Math.sqrt(1 - 0.95 ** step);
      const p0 = ps[i]!.toArray(), g0 = gs[i]!.toArray(), pn = d.p.to('cpu').toArray();
      for (let j = 0; j < sizes[i]!; j++) {
        const m = 0.1 * g0[j]!, v = 0.05 * g0[j]! ** 2;
        const want = p0[j]! * (1 - 1e-3) - (1e-2 / bc1) * m / (Math.sqrt(v) / bc2 + 1e-8);
        assert.ok(Math.abs(pn[j]! - want) < 1e-5, `tensor ${i} element ${j}: ${pn[j]} vs ${want}`);
      }
      if (i % 2) assert.ok(relErr(d.low.to('float32').to('cpu').toArray(), pn) < 1e-2, `bf16 copy of tensor ${i}`);
    });
  });
});

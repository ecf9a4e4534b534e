// The webgpu backend's own checks (the cross-backend suite in backends.test.ts covers the ops): bad input
// gives clear errors naming the backend, the limit and the size; buffers are pooled and released
// deterministically; a lost device fails fast instead of hanging. Skipped with the reason when no WebGPU
// adapter is available here (CI installs Mesa's lavapipe, see .ci/run).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { createWebGpuBackend, webgpuEntry, type WebGpuBackend } from '../src/backends/webgpu/index.js';
import { PRESETS, Trainer } from '../examples/web/trainer.js';

const probe = webgpuEntry.probe();
const skip = probe.available ? false : `webgpu unavailable: ${probe.reason}`;

test('the generated WGSL module matches kernels/wgsl/*.wgsl (run npm run build:wgsl)', async () => {
  const { generate } = (await import(new URL('../../kernels/wgsl/build.mjs', import.meta.url).href)) as { generate: () => string };
  const here = readFileSync(new URL('../../src/backends/webgpu/wgsl.generated.ts', import.meta.url), 'utf8');
  assert.equal(here, generate());
});

test('webgpu probe reports availability without throwing', () => {
  const p = webgpuEntry.probe();
  assert.equal(typeof p.available, 'boolean');
  if (!p.available) assert.match(p.reason ?? '', /webgpu/);
});

test('webgpu is available where CI requires it (LAVENDER_REQUIRE_WEBGPU=1, set by .ci/run)', { skip: process.env.LAVENDER_REQUIRE_WEBGPU !== '1' }, () => {
  assert.ok(probe.available, `webgpu must run in CI: ${probe.reason}`);
});

test('webgpu with no adapter: probe says why, create throws naming the backend', { skip }, () => {
  assert.throws(() => createWebGpuBackend(['adapter=none-such']), /^Error: webgpu: no suitable backends found/);
  // no Vulkan driver at all (an ICD file that does not exist): a clean probe result in a fresh process
  const mod = new URL('../src/backends/webgpu/index.js', import.meta.url).href;
  const dir = mkdtempSync(join(tmpdir(), 'lavender-webgpu-'));
  const script = join(dir, 'probe.mjs');
  writeFileSync(script, `import { webgpuEntry } from '${mod}';\nconsole.log(JSON.stringify(webgpuEntry.probe()));\n`);
  let out: string;
  try {
    out = execFileSync(process.execPath, [script], {
      env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const p = JSON.parse(out.trim().split('\n').pop()!) as { available: boolean; reason?: string };
  assert.equal(p.available, false);
  assert.match(p.reason ?? '', /webgpu: no WebGPU adapter found/);
});

test('webgpu refuses float64 and bfloat16, naming the backend and the dtype', { skip }, () => {
  const be = L.getBackend('webgpu');
  assert.throws(() => be.alloc('float64', 4), /webgpu.*float64.*WGSL has no float64/);
  assert.throws(() => be.alloc('bfloat16', 4), /webgpu.*bfloat16/);
  assert.throws(() => L.zeros([2], { dtype: 'float64', device: 'webgpu' }), /webgpu.*float64/);
});

test('webgpu refuses a buffer larger than maxStorageBufferBindingSize, naming the limit and the size', { skip }, () => {
  const be = L.getBackend('webgpu') as WebGpuBackend;
  const limit = be.device.maxStorageBufferBindingSize;
  const n = Math.floor(limit / 4) + 1;
  const live = be.liveBuffers();
  assert.throws(() => be.alloc('float32', n), (e: Error) => {
    assert.match(e.message, /webgpu/);
    assert.ok(e.message.includes(String(limit)), e.message);
    assert.ok(e.message.includes(String(n)), e.message);
    assert.match(e.message, /maxStorageBufferBindingSize/);
    return true;
  });
  assert.equal(be.liveBuffers(), live, 'nothing leaked by the refusal');
});

test('webgpu: use of a freed buffer and double free are errors', { skip }, () => {
  const be = L.getBackend('webgpu');
  const b = be.alloc('float32', 8);
  be.free(b);
  assert.throws(() => be.read(b), /webgpu read: use of a freed float32 buffer of 8 elements/);
  assert.throws(() => be.write(b, [1]), /webgpu write: use of a freed/);
  assert.throws(() => be.free(b), /webgpu: double free/);
});

test('webgpu: int64 is stored as int32, range-checked on write', { skip }, () => {
  const t = L.tensor([1, -5, 2 ** 31 - 1], { dtype: 'int64' }).to('webgpu');
  assert.deepEqual(Array.from(t.toArray()), [1, -5, 2 ** 31 - 1]);
  assert.throws(() => L.tensor([2 ** 40], { dtype: 'int64' }).to('webgpu'), /webgpu write: int64 value 1099511627776 does not fit/);
});

test('webgpu: an out-of-range gather index is reported at the next read', { skip }, () => {
  const be = L.getBackend('webgpu');
  L.scope(() => {
    const x = L.tensor([1, 2, 3]).to('webgpu');
    const idx = L.tensor([0, 7], { dtype: 'int64' }).to('webgpu');
    const out = be.alloc('float32', 2);
    be.gather(x.view(), 0, idx.view(), { buf: out, shape: [2], strides: [1], offset: 0 });
    assert.throws(() => be.read(out), /webgpu: gather: an index was out of range/);
    be.free(out);
    // the error is reported once; the device stays usable
    assert.deepEqual(Array.from(L.mul(x, 2).toArray()), [2, 4, 6]);
  });
});

test('webgpu buffers are pooled and released deterministically (liveBuffers)', { skip }, () => {
  const be = L.getBackend('webgpu') as WebGpuBackend;
  const before = be.liveBuffers();
  const work = () => L.scope(() => {
    const a = L.randn([64, 64], { device: 'webgpu', generator: new L.Generator(1) });
    const b = L.matmul(a, a);
    L.sum(b).toArray();
    assert.ok(be.liveBuffers() > before);
  });
  work();
  assert.equal(be.liveBuffers(), before, 'every buffer is freed when its scope ends');
  const pooled = be.poolStats().pooledBytes;
  assert.ok(pooled >= 64 * 64 * 4, `freed buffers go back to the pool (pooled ${pooled} bytes)`);
  // the same work again is served from the pool: the pool does not grow
  work();
  assert.equal(be.liveBuffers(), before);
  assert.equal(be.poolStats().pooledBytes, pooled);
  be.trim();
  assert.equal(be.poolStats().pooledBytes, 0);
});

test('webgpu: a lost device gives a clear error, never a hang', { skip }, () => {
  const be = createWebGpuBackend(); // a private device: the shared one stays usable for other tests
  const b = be.alloc('float32', 4);
  be.write(b, [1, 2, 3, 4]);
  assert.deepEqual(Array.from(be.read(b)), [1, 2, 3, 4]);
  be.loseDevice();
  assert.throws(() => be.read(b), /webgpu read: the device was lost \(destroyed\)/);
  assert.throws(() => be.alloc('float32', 4), /webgpu alloc: the device was lost/);
  be.close();
});

test('webgpu (Node): the browser app\'s trainer trains and samples the micro DiT like cpu', { skip }, async () => {
  const g = new L.Generator(4), S = PRESETS.micro!.input_size;
  const x = Float32Array.from(L.rand([4 * S * S], { generator: g }).toArray(), (v) => v * 2 - 1), y = Int32Array.from([3, 1, 4, 1]);
  const run = async (device: string) => {
    const t = new Trainer(device, PRESETS.micro!, { lr: 3e-3, seed: 1 });
    for (let s = 0; s < 2; s++) await t.step(x, y);
    const images = await t.sample([2, 7], 2, 2, 5);
    t.dispose();
    return { losses: t.losses, images };
  };
  const gpu = await run('webgpu'), cpu = await run('cpu');
  gpu.losses.forEach((l, i) => assert.ok(Math.abs(l - cpu.losses[i]!) < 1e-3 * cpu.losses[i]!, `step ${i + 1}: webgpu ${l} vs cpu ${cpu.losses[i]}`));
  assert.equal(gpu.images.length, 2 * S * S);
  let d = 0;
  gpu.images.forEach((v, i) => { d = Math.max(d, Math.abs(v - cpu.images[i]!)); });
  assert.ok(d < 1e-3, `samples differ by ${d}`);
});

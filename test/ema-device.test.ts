// EMAs of the weights kept on another device than the model (`train t2i --ema-device cpu`, PowerEma's
// `device` option): the same averages as EMAs beside the parameters, the same EMA files and checkpoints,
// resumable either way, and none of their bytes on the training device.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { webgpuEntry } from '../src/backends/webgpu/index.js';
import { writeSyntheticT2I } from '../src/data/t2i.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { trainT2I, trainT2IDistributed, type TrainT2IOptions } from '../src/train/train-t2i.js';
import type { ZeroStage } from '../src/distributed/zero.js';
import { onRanks } from './harness/ranks.js';
import { cpuReferenceBackend } from '../src/backends/cpu/index.js';
import { skipUnless } from './harness/require.js';
import { scaledMs } from './harness/load.js';
import { tempDirs } from './harness/tmp-dirs.js';

const { PowerEma } = L.optim;
L.registerBackendInstance(cpuReferenceBackend);
const tmp = tempDirs('lav-ema-device-');
const root = fileURLToPath(new URL('../../', import.meta.url));

test('PowerEma({device}): averages on that device, equal to the EMA beside the parameters; one parameter\'s temporaries at a time', () => {
  const gen = new L.Generator(3);
  const shapes = [[64, 32], [32], [16, 64], [7]];
  for (const paramDevice of ['cpu', 'cpu-reference']) {
    const params = shapes.map((s) => L.randn(s, { generator: gen, device: paramDevice }));
    const pb = L.getBackend(paramDevice), hb = L.getBackend('cpu'); // (cpu and cpu-reference share one buffer pool)
    const host = new PowerEma(params, { gamma: 6.94, every: 2, at: 1, device: 'cpu' });
    const plain = new PowerEma(params, { gamma: 6.94, every: 2, at: 1 });
    try {
      assert.deepEqual(host.ema.map((e) => [e.device, e.dtype]), shapes.map(() => ['cpu', 'float32']));
      assert.deepEqual(plain.ema.map((e) => e.device), shapes.map(() => paramDevice));
      const ref = params.map((p) => Array.from(p.toArray()));
      for (let step = 1; step <= 7; step++) {
        // new weights each step; the averages must follow the formula (so they are copies, not the parameters)
        params.forEach((p, i) => p.assign(L.tensor(ref[i]!.map((_, j) => Math.sin(step * 7 + j + i)), { shape: p.shape, device: paramDevice })));
        const liveHost = hb.liveBuffers(), liveParam = pb.liveBuffers();
        hb.resetPeakBytes!();
        const hostBase = hb.liveBytes!();
        const applied = host.update(step);
        assert.equal(plain.update(step), applied);
        assert.equal(applied, step % 2 === 1);
        assert.equal(hb.liveBuffers(), liveHost, 'an update frees what it made');
        assert.equal(pb.liveBuffers(), liveParam);
        if (applied && paramDevice !== 'cpu') {
          // one parameter at a time on the host: its copy and the update's 3 temporaries (the largest is 64 x 32 float32)
          const extra = hb.peakBytes!() - hostBase;
          assert.ok(extra <= 4 * 64 * 32 * 4 + 1024, `the host held ${extra} B more during the update`);
        }
        if (applied) {
          const b = L.optim.powerEmaBeta(step, 6.94, 2);
          params.forEach((p, i) => {
            const now = Array.from(p.toArray());
            ref[i] = ref[i]!.map((e, j) => Math.fround(Math.fround(b * e) + Math.fround((1 - b) * now[j]!)));
          });
        }
        host.ema.forEach((e, i) => {
          const h = e.toArray(), q = plain.ema[i]!.toArray();
          assert.deepEqual(Array.from(h), Array.from(q), `${paramDevice} step ${step} parameter ${i}: host average vs the average beside the parameters`);
          h.forEach((v, j) => assert.ok(Math.abs(v - ref[i]![j]!) <= 1e-6, `step ${step} parameter ${i}[${j}]: ${v} vs ${ref[i]![j]}`));
        });
      }
      // state round trip across the devices, and copyTo back onto the parameters' device
      const other = new PowerEma(params, { gamma: 6.94, every: 2, at: 1, device: 'cpu' });
      other.loadStateDict(plain.stateDict());
      assert.deepEqual(Array.from(other.ema[0]!.toArray()), Array.from(host.ema[0]!.toArray()));
      other.dispose();
      const target = shapes.map((s) => L.zeros(s, { device: paramDevice }));
      host.copyTo(target);
      assert.deepEqual(Array.from(target[2]!.toArray()), Array.from(plain.ema[2]!.toArray()));
      for (const t of target) t.dispose();
    } finally {
      host.dispose();
      plain.dispose();
      for (const p of params) p.dispose();
    }
  }
});

test('PowerEma on the parameters\' device: an update holds one parameter\'s temporaries at a time, not every parameter\'s', () => {
  const cpu = L.getBackend('cpu');
  const params = Array.from({ length: 6 }, (_, i) => L.full([128, 64], i));
  const ema = new PowerEma(params, { gamma: 1 });
  try {
    const base = cpu.liveBytes!();
    cpu.resetPeakBytes!();
    ema.update(2);
    const extra = cpu.peakBytes!() - base;
    assert.ok(extra <= 3 * 128 * 64 * 4 + 1024, `the update held ${extra} B beyond the parameters and averages (6 parameters of 32 KiB)`);
    assert.equal(cpu.liveBytes!(), base);
  } finally {
    ema.dispose();
    for (const p of params) p.dispose();
  }
});

// ---- train t2i on webgpu with the EMAs on cpu against on webgpu ----

const probe = webgpuEntry.probe();
const webgpuSkip = skipUnless('WEBGPU', probe.available, `webgpu unavailable: ${probe.reason}`);
const preset = { dim: 32, n_layers: 2, n_double_layers: 1, n_heads: 2, global_conddim: 32, cond_seq_dim: 8, max_seq: 4 };
let shards: string | null = null;
const data = () => {
  if (!shards) {
    shards = tmp();
    writeSyntheticT2I(shards, { samples: 16, latentSize: 4, condDim: 8, tokens: 4 });
  }
  return shards;
};
const t2i = (more: Partial<TrainT2IOptions>): TrainT2IOptions => ({
  progress: false, log: () => {}, latentSize: 4, tokens: 4, warmup: 2, emaEvery: 1, data: data(), preset, steps: 3, batch: 4, lr: 3e-3, seed: 0, out: tmp(), backend: 'webgpu', ...more,
});

/** name -> values of every tensor of a safetensors file. */
function values(file: string): Map<string, Float32Array> {
  const { tensors } = loadSafetensors(file, { device: 'cpu' });
  const out = new Map<string, Float32Array>();
  for (const [k, t] of Object.entries(tensors)) {
    out.set(k, t.toArray() as Float32Array);
    t.dispose();
  }
  return out;
}

function assertSameFile(a: string, b: string, what: string, tol = 0): void {
  const x = values(a), y = values(b);
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort(), `${what}: different tensors`);
  for (const [k, u] of x) {
    const v = y.get(k)!;
    for (let i = 0; i < u.length; i++) assert.ok(Math.abs(u[i]! - v[i]!) <= tol, `${what}: ${k}[${i}] ${u[i]} vs ${v[i]}`);
  }
}

test('train t2i on webgpu, --ema-every 1: EMAs on cpu give the same ema1/ema2 files and checkpoint as EMAs on webgpu; a resume may move them', { skip: webgpuSkip }, () => {
  const onGpu = t2i({}), onHost = t2i({ emaDevice: 'cpu' });
  const a = trainT2I(onGpu), b = trainT2I(onHost);
  assert.deepEqual(b.losses, a.losses, 'where the EMAs live does not change training');
  // the same float32 arithmetic on both sides (mul, mul, add): equal up to float32 noise, bitwise here
  for (const f of ['ema1.safetensors', 'ema2.safetensors', 'checkpoint.safetensors']) assertSameFile(join(onHost.out, f), join(onGpu.out, f), f);
  const ema1 = values(join(onHost.out, 'ema1.safetensors')), last = values(join(onHost.out, 'checkpoint.safetensors'));
  assert.ok([...ema1].some(([k, u]) => u.some((x, i) => x !== last.get(k)![i])), 'the EMA is not the final weights');
  // resume: trained with the EMAs on webgpu, continued with them on cpu, and the other way round (not refused)
  for (const [first, then] of [[undefined, 'cpu'], ['cpu', undefined]] as const) {
    const part = t2i({ steps: 2, emaDevice: first });
    trainT2I(part);
    const resumed = t2i({ resume: join(part.out, 'checkpoint.safetensors'), emaDevice: then });
    const r = trainT2I(resumed);
    assert.equal(r.losses.length, 1);
    for (const f of ['ema1.safetensors', 'ema2.safetensors']) assertSameFile(join(resumed.out, f), join(onGpu.out, f), `${f} resumed ${first ?? 'webgpu'} -> ${then ?? 'webgpu'}`, 1e-6);
  }
});

test('train t2i on webgpu over 2 ranks, ZeRO 3: EMAs of this rank\'s master slices on cpu give the same files and shard checkpoints as on webgpu', { skip: webgpuSkip }, async () => {
  for (const zero of [3] as ZeroStage[]) {
    const outs: Record<string, string> = {};
    for (const emaDevice of [undefined, 'cpu']) {
      const out = (outs[emaDevice ?? 'webgpu'] = tmp());
      await onRanks(2, (pg) => trainT2IDistributed({ ...t2i({ out, emaDevice }), dist: { pg, zero } }));
    }
    // the EMA files, the checkpoint and each rank's shard (which holds that rank's EMA slices)
    const files = readdirSync(outs.cpu!).filter((f) => f.endsWith('.safetensors')).sort();
    assert.deepEqual(files, readdirSync(outs.webgpu!).filter((f) => f.endsWith('.safetensors')).sort());
    assert.ok(files.length >= 5 && files.includes('ema1.safetensors'), files.join(', '));
    console.log(`# ZeRO ${zero}: ${files.join(", ")}`);
    for (const f of files) assertSameFile(join(outs.cpu!, f), join(outs.webgpu!, f), `ZeRO ${zero} ${f}`);
  }
});

test('train t2i --ema-device: an unknown or meta device is refused, naming the flag', () => {
  assert.throws(() => trainT2I(t2i({ backend: 'cpu', emaDevice: 'nowhere' })), /^Error: train t2i: --ema-device nowhere: unknown device 'nowhere'/);
  assert.throws(() => trainT2I(t2i({ backend: 'cpu', emaDevice: 'meta' })), /^Error: train t2i: --ema-device meta holds no data/);
});

// ---- the cuda backend over the stand-in addon: the EMA bytes stay off the device ----

test('train t2i --backend cuda (stand-in addon) with --ema-device cpu: the device holds none of the EMAs\' bytes', () => {
  const script = `
    import { createRequire } from 'node:module';
    import { mkdtempSync } from 'node:fs';
    import { tmpdir } from 'node:os';
    import { readdirSync } from 'node:fs';
import { join } from 'node:path';
    import * as L from './dist/src/index.js';
    import { writeSyntheticT2I } from './dist/src/data/t2i.js';
    import { trainT2I } from './dist/src/train/train-t2i.js';
    const fake = createRequire(import.meta.url)(process.env.LAVENDER_CUDA_ADDON);
    const dir = (p) => mkdtempSync(join(tmpdir(), p));
    const data = dir('lav-ema-cuda-data-');
    writeSyntheticT2I(data, { samples: 8, latentSize: 4, condDim: 8, tokens: 4 });
    const preset = ${JSON.stringify(preset)};
    const inUse = {};
    for (const emaDevice of [undefined, 'cpu']) {
      const seen = [], start = fake.memStats().inUse; // (a finished run leaves its model's parameters and gradients)
      trainT2I({ progress: false, log: () => {}, latentSize: 4, tokens: 4, warmup: 2, emaEvery: 1, data, preset, steps: 2, batch: 2, lr: 1e-3, seed: 0,
        out: dir('lav-ema-cuda-'), backend: 'cuda', emaDevice, onStep: () => void seen.push(fake.memStats().inUse - start) });
      inUse[emaDevice ?? 'cuda'] = seen;
    }
    const m = new L.MMDiT(preset, { device: 'cpu' });
    console.log(JSON.stringify({ inUse, paramBytes: m.parameters().reduce((s, p) => s + p.size * 4, 0) }));`;
  const env = { ...process.env, LAVENDER_CUDA_ADDON: `${root}test/harness/fake-cuda-addon.cjs` };
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: scaledMs(120_000), env });
  assert.equal(r.status, 0, r.stderr);
  const { inUse, paramBytes } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { inUse: { cuda: number[]; cpu: number[] }; paramBytes: number };
  assert.ok(paramBytes > 0);
  // after each step (EMAs updated) the device holds parameters, gradients, AdamW's m and v: 4 float32 copies,
  // and with the EMAs on it two more
  for (let s = 0; s < 2; s++) {
    assert.equal(inUse.cpu[s], 4 * paramBytes, `step ${s + 1}, EMAs on cpu: ${JSON.stringify(inUse)}`);
    assert.equal(inUse.cuda[s], 6 * paramBytes, `step ${s + 1}, EMAs on cuda: ${JSON.stringify(inUse)}`);
  }
});

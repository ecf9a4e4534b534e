// `lavender info --model ... --ranks N --zero S --batch B --tokens T`: the bytes per rank and per step it
// predicts by tracing one rank's step on the meta device, checked against the same step run for real on
// the cpu (live bytes) and against the bytes a real 2-rank run's CPU transport sends per step.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import '../src/index.js';
import { writeSyntheticT2I } from '../src/data/t2i.js';
import type { CpuProcessGroup } from '../src/distributed/process-group.js';
import type { ZeroStage } from '../src/distributed/zero.js';
import { planMemory, type PlanOptions } from '../src/train/memory-plan.js';
import { trainT2IDistributed } from '../src/train/train-t2i.js';
import { onRanks } from './harness/ranks.js';
import { scaledMs } from './harness/load.js';
import { tempDirs } from './harness/tmp-dirs.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = tempDirs('lav-plan-');

const within = (predicted: number, measured: number, what: string) =>
  assert.ok(Math.abs(predicted - measured) <= 0.1 * Math.abs(measured), `${what}: predicted ${predicted} B, measured ${measured} B`);

test('the meta trace predicts the live bytes of the same step on the cpu (weights, gradients, optimizer state, EMAs, activations, peak; within 10%; fp32 and bf16)', async () => {
  const cases: Omit<PlanOptions, 'device'>[] = [
    { model: 'mmdit-tiny', ranks: 2, zero: 2, batch: 4, tokens: 8, latentSize: 8 },
    { model: 'mmdit-tiny', ranks: 2, zero: 3, batch: 4, tokens: 8, latentSize: 8, checkpointActivations: true, gradAccum: 2 },
    { model: 'dit-mnist', ranks: 1, zero: 0, batch: 1 },
    // autocast as the cpu emulates it (float32 tensors rounded to bf16; the 'gpu' paths are checked below)
    { model: 'mmdit-tiny', ranks: 1, zero: 0, batch: 4, tokens: 8, latentSize: 8, precision: 'bfloat16' },
    { model: 'mmdit-tiny', ranks: 2, zero: 3, batch: 4, tokens: 8, latentSize: 8, precision: 'bfloat16', checkpointActivations: true },
  ];
  for (const c of cases) {
    const predicted = await planMemory({ ...c, device: 'meta' }), measured = await planMemory({ ...c, device: 'cpu' });
    for (const k of Object.keys(measured.bytes_per_rank) as (keyof typeof measured.bytes_per_rank)[]) {
      within(predicted.bytes_per_rank[k], measured.bytes_per_rank[k], `${c.model} zero ${c.zero}: ${k}`);
    }
    assert.ok(measured.bytes_per_rank.activations > 0);
    // train t2i's two float32 EMAs of what they follow: whole parameters at ZeRO 0, this rank's (padded) slices at 1-3
    if (c.model.startsWith('mmdit')) {
      const follow = c.zero === 0 ? predicted.parameters * 4 : (predicted.parameters * 4) / c.ranks;
      assert.ok(predicted.bytes_per_rank.ema >= 2 * follow && predicted.bytes_per_rank.ema <= 2 * follow + 4096, `EMA bytes ${predicted.bytes_per_rank.ema} vs 2 x ${follow}`);
      assert.deepEqual(predicted.emas, { count: 2, device: 'meta', bytes: predicted.bytes_per_rank.ema });
    } else assert.equal(predicted.bytes_per_rank.ema, 0, 'train mnist|cifar keep no EMAs');
    console.log(`# ${c.model} ZeRO ${c.zero} x${c.ranks}: predicted ${JSON.stringify(predicted.bytes_per_rank)}, measured ${JSON.stringify(measured.bytes_per_rank)}`);
  }
});

test('--ema-device cpu: the EMAs are host memory, not in the device\'s bytes or peak; bf16 autocast as a GPU keeps less than float32', async () => {
  const base = { model: 'mmdit-tiny', ranks: 2, zero: 2 as ZeroStage, batch: 32, tokens: 8, latentSize: 8, as: 'gpu' };
  for (const precision of ['float32', 'bfloat16'] as const) {
    const dev = await planMemory({ ...base, precision }), host = await planMemory({ ...base, precision, emaDevice: 'cpu' });
    assert.ok(dev.bytes_per_rank.ema > 0);
    assert.deepEqual([host.bytes_per_rank.ema, host.host_bytes_per_rank.ema, host.emas.device], [0, dev.bytes_per_rank.ema, 'cpu']);
    assert.equal(dev.host_bytes_per_rank.ema, 0);
    assert.equal(host.bytes_per_rank.peak, dev.bytes_per_rank.peak - dev.bytes_per_rank.ema);
    assert.equal(host.autocast, precision);
  }
  const f32 = await planMemory(base), bf16 = await planMemory({ ...base, precision: 'bfloat16' });
  assert.ok(bf16.bytes_per_rank.activations < 0.85 * f32.bytes_per_rank.activations, `activations: bf16 ${bf16.bytes_per_rank.activations} B, fp32 ${f32.bytes_per_rank.activations} B`);
  await assert.rejects(planMemory({ model: 'dit-mnist', ranks: 1, zero: 0, batch: 1, emaDevice: 'cpu' }), /^Error: info: --ema-device applies to MMDiT presets/);
  await assert.rejects(planMemory({ ...base, precision: 'fp16' as never }), /^Error: info: --precision expects fp32 or bf16, got 'fp16'/);
});

test('as a GPU computes: the meta prediction (cuda\'s kernel paths) equals the peak of train t2i over the stand-in cuda addon (fp32, bf16; EMAs on cuda and on cpu; within 2%)', () => {
  const script = `
    import { createRequire } from 'node:module';
    import { mkdtempSync } from 'node:fs';
    import { tmpdir } from 'node:os';
    import { join } from 'node:path';
    import './dist/src/index.js';
    import { writeSyntheticT2I } from './dist/src/data/t2i.js';
    import { trainT2I } from './dist/src/train/train-t2i.js';
    import { planMemory } from './dist/src/train/memory-plan.js';
    const fake = createRequire(import.meta.url)(process.env.LAVENDER_CUDA_ADDON);
    const dir = (p) => mkdtempSync(join(tmpdir(), p));
    const data = dir('lav-plan-cuda-');
    writeSyntheticT2I(data, { samples: 16, latentSize: 8, condDim: 32, tokens: 8 });
    const out = [];
    for (const precision of ['float32', 'bfloat16']) for (const emaDevice of [undefined, 'cpu']) {
      // batch 16: the step's activations, not the update, set the peak
      const o = { batch: 16, tokens: 8, latentSize: 8, precision, emaDevice };
      const plan = await planMemory({ model: 'mmdit-tiny', ranks: 1, zero: 0, as: 'gpu', ...o });
      const start = fake.memStats().inUse;
      fake.fakeResetPeak();
      trainT2I({ data, preset: 'mmdit-tiny', steps: 2, lr: 1e-4, seed: 0, emaEvery: 1, out: dir('lav-plan-cuda-run-'), backend: 'cuda', progress: false, save: false, log: () => {}, ...o });
      out.push({ precision, ema: emaDevice ?? 'cuda', predicted: plan.bytes_per_rank.peak, measured: fake.memStats().peak - start });
    }
    console.log(JSON.stringify(out));`;
  const env = { ...process.env, LAVENDER_CUDA_ADDON: `${root}test/harness/fake-cuda-addon.cjs` };
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: scaledMs(120_000), env });
  assert.equal(r.status, 0, r.stderr);
  const rows = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { precision: string; ema: string; predicted: number; measured: number }[];
  assert.equal(rows.length, 4);
  for (const x of rows) {
    assert.ok(Math.abs(x.predicted - x.measured) <= 0.02 * x.measured, `${x.precision}, EMAs on ${x.ema}: predicted ${x.predicted} B, measured ${x.measured} B`);
    console.log(`# ${x.precision}, EMAs on ${x.ema}: predicted peak ${x.predicted} B, measured on the stand-in cuda addon ${x.measured} B`);
  }
  const at = (p: string, e: string) => rows.find((x) => x.precision === p && x.ema === e)!.measured;
  assert.ok(at('bfloat16', 'cuda') < at('float32', 'cuda') && at('float32', 'cpu') < at('float32', 'cuda'));
});

test('bytes sent per step: the prediction equals what each rank of a real 2-rank train t2i step sends (ZeRO 0, 2, 3)', async () => {
  const data = tmp();
  writeSyntheticT2I(data, { samples: 16, latentSize: 8, condDim: 32, tokens: 8 });
  for (const zero of [0, 2, 3] as ZeroStage[]) {
    const perStep = await onRanks(2, async (pg) => {
      const transport = (pg as CpuProcessGroup).transport;
      const at: number[] = [];
      await trainT2IDistributed({
        progress: false, log: () => {}, data, preset: 'mmdit-tiny', latentSize: 8, tokens: 8, warmup: 2, emaEvery: 1, steps: 3, batch: 4, lr: 1e-3, seed: 0, out: tmp(),
        dist: { pg, zero }, onStep: () => void at.push(transport.bytesSent),
      });
      return at[2]! - at[1]!; // the third step alone
    });
    const plan = await planMemory({ model: 'mmdit-tiny', ranks: 2, zero, batch: 4, tokens: 8, latentSize: 8 });
    for (const sent of perStep) within(plan.bytes_sent_per_step.total, sent, `zero ${zero} bytes sent`);
    console.log(`# ZeRO ${zero}: predicted ${plan.bytes_sent_per_step.total} B sent per rank per step, measured ${perStep.join(', ')}`);
  }
});

test('lavender info --model P --ranks N --zero S --batch B --tokens T prints the plan (JSON), and refuses a batch the ranks cannot split', () => {
  const run = (args: string[]) => spawnSync(process.execPath, ['bin/lavender.js', 'info', '--model', ...args], { cwd: root, encoding: 'utf8', timeout: scaledMs(60_000) });
  const r = run(['mmdit-tiny', '--ranks', '2', '--zero', '3', '--batch', '4', '--tokens', '8', '--latent-size', '8', '--checkpoint-activations', '--grad-accum', '2', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.parameters, 488128);
  assert.deepEqual([j.plan.ranks, j.plan.zero, j.plan.batch_per_rank, j.plan.micro_batches, j.plan.checkpoint_activations], [2, 3, 2, 2, true]);
  assert.deepEqual(j.plan.sequence, { text: 16, image: 16 });
  assert.equal(j.plan.bytes_per_rank.weights, 488128 * 4 / 2, 'ZeRO-3 over 2 ranks: half the float32 parameters');
  const text = run(['lavenderflow-2560-highres', '--ranks', '64', '--zero', '3', '--batch', '64', '--checkpoint-activations']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /traced on the meta device as a GPU computes it: ZeRO 3 over 64 ranks, 1 sample\(s\) per rank x 1 micro-batch\(es\) of 72 text \+ 256 image tokens, activations checkpointed/);
  assert.match(text.stdout, /per rank: weights [\d.]+ MiB, gradients .*; peak [\d.]+ GiB\n  sent per rank per step: [\d.]+ GiB/);
  const bf16 = run(['lavenderflow-2560-highres', '--ranks', '1', '--zero', '0', '--batch', '16', '--tokens', '120', '--precision', 'bf16', '--ema-device', 'cpu']);
  assert.equal(bf16.status, 0, bf16.stderr);
  assert.match(bf16.stdout, /\(bf16 autocast \(bf16 matmuls and attention\); float32 parameters, gradients, master slices and Adam moments\)/);
  assert.match(bf16.stdout, /optimizer state 35\.62 GiB, 2 EMAs 0 \(35\.62 GiB on cpu\), activations [\d.]+ GiB; peak [\d.]+ GiB on the device, and 35\.62 GiB of host memory/);
  const js = JSON.parse(run(['mmdit-tiny', '--ranks', '1', '--zero', '0', '--batch', '2', '--tokens', '8', '--latent-size', '8', '--precision', 'bf16', '--json']).stdout);
  assert.deepEqual([js.plan.autocast, js.plan.emas.count, js.plan.emas.bytes, js.plan.bytes_per_rank.ema, js.plan.host_bytes_per_rank.ema], ['bfloat16', 2, 2 * 488128 * 4, 2 * 488128 * 4, 0]);
  const bad = run(['mmdit-tiny', '--ranks', '2', '--batch', '3']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--batch 3 must be a positive multiple of --ranks 2/);
});

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

test('the meta trace predicts the live bytes of the same step on the cpu (weights, gradients, optimizer state, activations, peak; within 10%)', async () => {
  const cases: Omit<PlanOptions, 'device'>[] = [
    { model: 'mmdit-tiny', ranks: 2, zero: 2, batch: 4, tokens: 8, latentSize: 8 },
    { model: 'mmdit-tiny', ranks: 2, zero: 3, batch: 4, tokens: 8, latentSize: 8, checkpointActivations: true, gradAccum: 2 },
    { model: 'dit-mnist', ranks: 1, zero: 0, batch: 1 },
  ];
  for (const c of cases) {
    const predicted = await planMemory({ ...c, device: 'meta' }), measured = await planMemory({ ...c, device: 'cpu' });
    for (const k of Object.keys(measured.bytes_per_rank) as (keyof typeof measured.bytes_per_rank)[]) {
      within(predicted.bytes_per_rank[k], measured.bytes_per_rank[k], `${c.model} zero ${c.zero}: ${k}`);
    }
    assert.ok(measured.bytes_per_rank.activations > 0);
    console.log(`# ${c.model} ZeRO ${c.zero} x${c.ranks}: predicted ${JSON.stringify(predicted.bytes_per_rank)}, measured ${JSON.stringify(measured.bytes_per_rank)}`);
  }
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
  assert.match(text.stdout, /traced on the meta device: ZeRO 3 over 64 ranks, 1 sample\(s\) per rank x 1 micro-batch\(es\) of 72 text \+ 256 image tokens, activations checkpointed/);
  assert.match(text.stdout, /per rank: weights [\d.]+ MiB, gradients .*; peak [\d.]+ GiB\n  sent per rank per step: [\d.]+ GiB/);
  const bad = run(['mmdit-tiny', '--ranks', '2', '--batch', '3']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--batch 3 must be a positive multiple of --ranks 2/);
});

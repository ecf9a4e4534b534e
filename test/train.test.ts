// Training loop, checkpoints and sampling on a tiny DiT and a generated dataset.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import '../src/index.js';
import type { ImageDataset } from '../src/data/loader.js';
import { decodePng } from '../src/io/png.js';
import { trainDiT } from '../src/train/train-dit.js';

const tiny = { in_channels: 1, input_size: 8, dim: 64, n_layers: 1, n_heads: 2, multiple_of: 32 };

function fakeDataset(n = 40): ImageDataset {
  const images = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 10;
    for (let p = 0; p < 64; p++) images[i * 64 + p] = Math.sin(i * 0.7 + p * 0.3) * 0.9;
  }
  return { images, labels, n, channels: 1, height: 8, width: 8 };
}

const quiet = { progress: false, log: () => {}, sampleRows: 0 } as const;
const tmp = () => mkdtempSync(join(tmpdir(), 'lav-train-'));

test('resuming from a checkpoint continues the loss curve exactly', () => {
  const dataset = fakeDataset();
  const whole = trainDiT({ ...quiet, dataset, model: tiny, steps: 6, batch: 8, lr: 1e-3, seed: 3, out: tmp() });
  const dir = tmp();
  const first = trainDiT({ ...quiet, dataset, model: tiny, steps: 3, batch: 8, lr: 1e-3, seed: 3, out: dir });
  const rest = trainDiT({ ...quiet, dataset, model: tiny, steps: 6, batch: 8, lr: 1e-3, seed: 3, out: dir, resume: join(dir, 'checkpoint.safetensors') });
  assert.deepEqual([...first.losses, ...rest.losses], whole.losses);
  assert.equal(new Set(whole.losses).size, 6, 'losses should differ step to step');
});

test('lrSchedule linear: lr_scale 1 - s/N logged per step, the losses as a constant lr until the first decayed update, resumed runs on the same schedule', () => {
  const dataset = fakeDataset();
  const base = { ...quiet, dataset, model: tiny, steps: 4, batch: 8, lr: 3e-3, seed: 5 } as const;
  const out = tmp();
  const linear = trainDiT({ ...base, out, lrSchedule: 'linear' });
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(metrics.map((m) => m.lr_scale), [1, 0.75, 0.5, 0.25]);
  const constantOut = tmp();
  const constant = trainDiT({ ...base, out: constantOut });
  assert.ok(!readFileSync(join(constantOut, 'metrics.jsonl'), 'utf8').includes('lr_scale'), 'a constant lr logs no lr_scale');
  // the loss of step s is computed before update s: equal for two steps (both updates at full lr), then apart
  assert.deepEqual(linear.losses.slice(0, 2), constant.losses.slice(0, 2));
  assert.notDeepEqual(linear.losses.slice(2), constant.losses.slice(2));
  // the scale is a function of the step and --steps (the total): a run resumed at step 2 of 4 takes 0.5, 0.25
  const dir = tmp();
  trainDiT({ ...base, steps: 2, out: dir, lrSchedule: 'linear' });
  trainDiT({ ...base, out: dir, lrSchedule: 'linear', resume: join(dir, 'checkpoint.safetensors') });
  const resumed = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(resumed.map((m) => [m.step, m.lr_scale]), [[1, 1], [2, 0.5], [3, 0.5], [4, 0.25]]);
  // an interrupted run (stopped in step 3, after the checkpoint of step 2) resumed with the same --steps
  // continues the uninterrupted one exactly
  const cut = tmp();
  assert.throws(() => trainDiT({ ...base, out: cut, lrSchedule: 'linear', checkpointEvery: 2, onStep: ({ step }) => {
    if (step === 3) throw new Error('interrupted');
  } }), /interrupted/);
  const rest = trainDiT({ ...base, out: cut, lrSchedule: 'linear', resume: join(cut, 'checkpoint.safetensors') });
  assert.deepEqual(rest.losses, linear.losses.slice(2));
});

test('training writes metrics.jsonl, a checkpoint and a sample grid; the loss falls', () => {
  const out = tmp();
  const r = trainDiT({ ...quiet, dataset: fakeDataset(), model: tiny, steps: 30, batch: 8, lr: 3e-3, seed: 1, out, sampleRows: 1, sampleSteps: 3 });
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 30);
  assert.deepEqual(lines.map((l) => l.step), Array.from({ length: 30 }, (_, i) => i + 1));
  assert.equal(lines[0].t_bins.length, 10);
  const early = r.losses.slice(0, 5).reduce((a, b) => a + b) / 5, late = r.losses.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(late < early * 0.8, `loss should fall: ${early} -> ${late}`);
  assert.ok(existsSync(join(out, 'checkpoint.safetensors')));
  const png = decodePng(readFileSync(join(out, 'samples.png')));
  assert.equal(png.width, 10 * (8 + 2) + 2);
  assert.ok(readFileSync(join(out, 'samples.gif')).subarray(0, 6).toString() === 'GIF89a');
});

test('train --lr-schedule accepts constant and linear only (before any data is read)', async () => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['bin/lavender.js', 'train', 'mnist', '--lr-schedule', 'cosine', '--steps', '1', '--out', join(tmp(), 'run')], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--lr-schedule expects constant or linear, got 'cosine'/);
});

test('bad inputs: wrong image size, unknown preset, broken checkpoint', () => {
  assert.throws(() => trainDiT({ ...quiet, dataset: fakeDataset(), model: 'mnist', steps: 1, batch: 2, lr: 1e-3, seed: 0, out: tmp() }), /images are 1x8x8 but the model expects 1x32x32/);
  assert.throws(() => trainDiT({ ...quiet, dataset: fakeDataset(), model: 'imagenet', steps: 1, batch: 2, lr: 1e-3, seed: 0, out: tmp() }), /unknown model preset 'imagenet'/);
  const bad = join(tmp(), 'bad.safetensors');
  writeFileSync(bad, new Uint8Array([1, 2, 3]));
  assert.throws(() => trainDiT({ ...quiet, dataset: fakeDataset(), model: tiny, steps: 2, batch: 2, lr: 1e-3, seed: 0, out: tmp(), resume: bad }), /bad\.safetensors/);
});

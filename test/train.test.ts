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

test('bad inputs: wrong image size, unknown preset, broken checkpoint', () => {
  assert.throws(() => trainDiT({ ...quiet, dataset: fakeDataset(), model: 'mnist', steps: 1, batch: 2, lr: 1e-3, seed: 0, out: tmp() }), /images are 1x8x8 but the model expects 1x32x32/);
  assert.throws(() => trainDiT({ ...quiet, dataset: fakeDataset(), model: 'imagenet', steps: 1, batch: 2, lr: 1e-3, seed: 0, out: tmp() }), /unknown model preset 'imagenet'/);
  const bad = join(tmp(), 'bad.safetensors');
  writeFileSync(bad, new Uint8Array([1, 2, 3]));
  assert.throws(() => trainDiT({ ...quiet, dataset: fakeDataset(), model: tiny, steps: 2, batch: 2, lr: 1e-3, seed: 0, out: tmp(), resume: bad }), /bad\.safetensors/);
});

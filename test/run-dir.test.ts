// Run directories and resumes, through the library's training loops on a tiny DiT and MMDiT: a non-empty
// --out is refused with every file left as it was (hashes), --overwrite leaves nothing stale, a resume
// appends to metrics.jsonl, refuses too few steps, changed settings and another model (one line naming
// both), and checkpoints and EMA files say what model they hold. Output paths are checked up front.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import '../src/index.js';
import type { ImageDataset } from '../src/data/loader.js';
import { writeSyntheticT2I } from '../src/data/t2i.js';
import { prepareOutputDir, prepareOutputFile } from '../src/io/output-path.js';
import { readSafetensorsMetadata } from '../src/io/safetensors.js';
import { inferModelKind, readCheckpointMeta, readModelSpec } from '../src/optim/checkpoint-meta.js';
import { trainDiT, modelFromCheckpoint } from '../src/train/train-dit.js';
import { trainT2I } from '../src/train/train-t2i.js';
import { sampleMMDiT } from '../src/train/sample-mmdit.js';
import { estimateSamplingSeconds, planSampling } from '../src/train/sampling-plan.js';
import { Progress } from '../src/train/progress.js';
import { scaledMs } from './harness/load.js';
import { tempDirs } from './harness/tmp-dirs.js';

const tmp = tempDirs('lav-run-');

const tiny = { in_channels: 1, input_size: 8, dim: 64, n_layers: 1, n_heads: 2, multiple_of: 32 };
function fakeDataset(n = 24): ImageDataset {
  const images = new Float32Array(n * 64), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 10;
    for (let p = 0; p < 64; p++) images[i * 64 + p] = Math.sin(i * 0.7 + p * 0.3) * 0.9;
  }
  return { images, labels, n, channels: 1, height: 8, width: 8 };
}
const dit = (out: string, more: Record<string, unknown> = {}) =>
  trainDiT({ progress: false, log: () => {}, sampleRows: 0, dataset: fakeDataset(), model: tiny, steps: 3, batch: 4, lr: 1e-3, seed: 1, out, ...more });

/** name -> sha256 of every file in dir: the proof that a refusal changed nothing. */
function hashes(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}
const steps = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);

test('a new run refuses a non-empty --out and changes nothing; --overwrite removes the old run files only', () => {
  const out = tmp();
  dit(out);
  writeFileSync(join(out, 'samples.png'), 'an old grid'); // left by an earlier, longer run
  writeFileSync(join(out, 'notes.txt'), 'mine');
  const before = hashes(out);
  assert.throws(() => dit(out, { steps: 2 }), (e: Error) => {
    assert.match(e.message, /^--out .* is not empty \(checkpoint\.safetensors, metrics\.jsonl, notes\.txt, samples\.png\); a new run would overwrite it\. Resume it with --resume .*checkpoint\.safetensors, pass --overwrite/);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
  assert.deepEqual(hashes(out), before, 'nothing in the directory changed');
  dit(out, { steps: 2, overwrite: true });
  assert.deepEqual(readdirSync(out).sort(), ['checkpoint.safetensors', 'metrics.jsonl', 'notes.txt']);
  assert.deepEqual(steps(out), [1, 2]);
  assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');
  assert.throws(() => dit(out, { overwrite: true, resume: join(out, 'checkpoint.safetensors') }), /--resume and --overwrite exclude each other/);
});

test('a resume appends to metrics.jsonl, dropping lines past the checkpoint (steps an interrupted run will redo)', () => {
  const out = tmp();
  dit(out, { steps: 2 });
  writeFileSync(join(out, 'metrics.jsonl'), `${readFileSync(join(out, 'metrics.jsonl'), 'utf8')}{"step":3,"loss":9}\n{"step":4,"lo`);
  dit(out, { steps: 4, resume: join(out, 'checkpoint.safetensors') });
  assert.deepEqual(steps(out), [1, 2, 3, 4]);
  assert.notEqual(JSON.parse(readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n')[2]!).loss, 9);
});

test('resume refusals (too few steps, changed batch or lr, another model) leave every file as it was', () => {
  const out = tmp();
  dit(out, { steps: 3 });
  const ckpt = join(out, 'checkpoint.safetensors');
  const before = hashes(out);
  assert.throws(() => dit(out, { steps: 2, resume: ckpt }), /--steps 2 does not go beyond the checkpoint's step 3, so nothing would be trained/);
  assert.throws(() => dit(out, { steps: 3, resume: ckpt }), /--steps 3 does not go beyond the checkpoint's step 3/);
  assert.throws(() => dit(out, { steps: 5, batch: 8, resume: ckpt }), /was trained with --batch 4, this run asks for --batch 8; .* pass --allow-changes/);
  assert.throws(() => dit(out, { steps: 5, lr: 2e-3, resume: ckpt }), /was trained with --lr 0\.001, this run asks for --lr 0\.002/);
  assert.throws(() => dit(out, { steps: 5, model: { ...tiny, n_layers: 2 }, resume: ckpt }), /holds DiT \(dim 64, 1 layers, 1x8x8 images\), but this run trains DiT \(dim 64, 2 layers, 1x8x8 images\) \(n_layers 1 vs 2\)/);
  assert.deepEqual(hashes(out), before);
  // allowed explicitly: the new batch is recorded
  dit(out, { steps: 4, batch: 8, resume: ckpt, allowChanges: true });
  assert.equal(readCheckpointMeta(ckpt).batch, 8);
});

test('checkpoints and EMA files name their model; the wrong one is a one-line error naming both', () => {
  const ditOut = tmp();
  dit(ditOut, { steps: 1 });
  const ditCkpt = join(ditOut, 'checkpoint.safetensors');
  assert.deepEqual({ ...readModelSpec(ditCkpt).spec, config: undefined }, { kind: 'dit', config: undefined, preset: undefined });
  const data = tmp();
  writeSyntheticT2I(data, { samples: 16, latentSize: 8, condDim: 32, tokens: 4 });
  const t2iOut = tmp();
  trainT2I({ progress: false, log: () => {}, data, preset: 'mmdit-tiny', steps: 1, batch: 2, lr: 1e-2, seed: 0, out: t2iOut, latentSize: 8, tokens: 4, emaEvery: 1 });
  const t2iCkpt = join(t2iOut, 'checkpoint.safetensors');
  for (const f of ['checkpoint.safetensors', 'ema1.safetensors', 'ema2.safetensors']) {
    const { spec, meta } = readModelSpec(join(t2iOut, f));
    assert.equal(spec?.kind, 'mmdit', f);
    assert.equal(spec?.preset, 'mmdit-tiny', f);
    assert.equal(meta?.latent_size, 8, f);
  }
  const oneLine = (re: RegExp) => (e: Error) => (assert.match(e.message, re), assert.ok(!e.message.includes('\n'), e.message), true);
  assert.throws(() => dit(tmp(), { resume: t2iCkpt }), oneLine(/checkpoint .*checkpoint\.safetensors holds an MMDiT 'mmdit-tiny', but this run trains a DiT \(dim 64/));
  assert.throws(() => trainT2I({ progress: false, log: () => {}, data, preset: 'mmdit-tiny', steps: 3, batch: 2, lr: 1e-2, seed: 0, out: tmp(), latentSize: 8, tokens: 4, resume: ditCkpt }),
    oneLine(/holds a DiT \(dim 64, 1 layers, 1x8x8 images\), but train t2i trains an MMDiT 'mmdit-tiny'/));
  assert.throws(() => modelFromCheckpoint(t2iCkpt), oneLine(/holds an MMDiT 'mmdit-tiny', but `sample` \(--model dit\) draws from a DiT/));
  const cond = join(t2iOut, 'cond.safetensors');
  assert.throws(() => sampleMMDiT({ checkpoint: ditCkpt, cond, out: join(tmp(), 'x.safetensors') }), oneLine(/holds a DiT .*, but sample --model mmdit draws from an MMDiT/));
  // an EMA file samples as it is: config and latent size from its metadata, conditions from the run
  const lat = sampleMMDiT({ checkpoint: join(t2iOut, 'ema1.safetensors'), cond, out: join(tmp(), 'lat.safetensors'), steps: 1 });
  assert.deepEqual([...lat.shape], [4, 4, 8, 8]);
  assert.throws(() => sampleMMDiT({ checkpoint: t2iCkpt, cond, out: join(tmp(), 'x.safetensors'), latentSize: 32 }), /--latent-size 32 needs 256 image tokens but the model has 64 positions \(max_seq\); it was trained at 8/);
});

test('checkpoints written before the kind was stored are recognised by their config keys', () => {
  assert.equal(inferModelKind({ in_channels: 1, input_size: 32, dim: 64, n_layers: 6, n_heads: 4, num_classes: 10 }), 'dit');
  assert.equal(inferModelKind({ dim: 64, n_layers: 3, n_heads: 4, global_conddim: 64, max_seq: 64, out_channels: 4 }), 'mmdit');
  assert.equal(inferModelKind({ dim: 64 }), undefined);
  // an old DiT checkpoint: its metadata without kind/preset still samples and is still refused by t2i
  const out = tmp();
  dit(out, { steps: 1 });
  const ckpt = join(out, 'checkpoint.safetensors');
  const meta = JSON.parse(readSafetensorsMetadata(ckpt).lavender!);
  delete meta.kind;
  delete meta.preset;
  const bytes = readFileSync(ckpt);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  header.__metadata__.lavender = JSON.stringify(meta);
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(text.length));
  const old = join(out, 'old.safetensors');
  writeFileSync(old, Buffer.concat([head, Buffer.from(text), bytes.subarray(8 + n)]));
  assert.equal(readModelSpec(old).spec?.kind, 'dit');
  assert.equal(modelFromCheckpoint(old).config.dim, 64);
});

test('output paths: a file where a directory is wanted, a file as parent, /sys and /proc fail with one line naming the flag', () => {
  const dir = tmp();
  const file = join(dir, 'README.md');
  writeFileSync(file, 'x');
  assert.throws(() => prepareOutputDir(file), /^Error: --out .*README\.md: exists and is not a directory$/);
  assert.throws(() => prepareOutputDir(join(file, 'run')), /--out .*README\.md\/run: .*README\.md is a file, not a directory/);
  assert.throws(() => prepareOutputFile(dir, '--gif'), /^Error: --gif .*: is a directory, expected a file name$/);
  assert.throws(() => prepareOutputDir('/sys/lavender-x'), /^Error: --out \/sys\/lavender-x: cannot create the directory \/sys\/lavender-x \((EPERM|EACCES|EROFS|ENOENT): /);
  // /proc is where Node's recursive mkdir loops forever: checked in a child with a deadline, so a regression
  // fails this test instead of hanging the suite
  const probe = `import { prepareOutputDir } from ${JSON.stringify(new URL('../src/io/output-path.js', import.meta.url).href)};
    const t0 = performance.now();
    try { prepareOutputDir('/proc/lavender-x/y'); console.log('no error'); } catch (e) { console.log(JSON.stringify({ ms: performance.now() - t0, message: e.message })); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', timeout: scaledMs(30_000) });
  assert.equal(r.signal, null, 'prepareOutputDir under /proc did not return (killed at the deadline)');
  const { ms, message } = JSON.parse(r.stdout);
  assert.equal(message, '--out /proc/lavender-x/y: cannot create the directory /proc/lavender-x (ENOENT: this file system does not allow creating it)');
  console.log(`prepareOutputDir('/proc/lavender-x/y') failed after ${ms.toFixed(2)} ms`);
  const nested = join(dir, 'a', 'b', 'c');
  assert.equal(prepareOutputDir(nested), nested);
  mkdirSync(join(nested, 'd'));
  assert.deepEqual(readdirSync(nested), ['d'], 'the write probe is removed');
});

test('the end-of-run sample grid: default for real runs, off for short ones unless asked for', () => {
  assert.deepEqual(planSampling({ steps: 1300 }), { rows: 4, steps: 50 });
  assert.equal(planSampling({ steps: 4 }).rows, 0);
  assert.match(planSampling({ steps: 4 }).skipped!, /under 100 steps/);
  assert.equal(planSampling({ steps: 4, sampleRows: 1, sampleSteps: 3 }).rows, 1);
  assert.equal(planSampling({ steps: 1300, sampleRows: 0 }).rows, 0);
  // 40 images x 50 steps x 2 (CFG) forward passes at a third of a 1.2 s training step per 32 images: 50 s
  assert.ok(Math.abs(estimateSamplingSeconds({ rows: 4, steps: 50 }, 10, 1.2, 32) - 50) < 1e-9);
  const lines: string[] = [];
  const stream = { isTTY: false, write: (l: string) => lines.push(l) } as unknown as NodeJS.WriteStream;
  const p = new Progress(10, 0, stream, (per) => ({ seconds: estimateSamplingSeconds({ rows: 4, steps: 50 }, 10, per, 32), what: 'sampling' }));
  p.update(10, 'loss 1');
  assert.match(lines[0]!, /^step 10\/10 .* loss 1 .* eta 0s \+ sampling ~\d+s\n$/);
});

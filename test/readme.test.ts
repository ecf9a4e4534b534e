// Every command in the README's "The command" block, run as a user copying it would: in order, in a fresh
// directory laid out like the clone (its files linked in), `npx lavender` being this checkout's bin. Where the
// defaults take minutes, SMALL sets smaller sizes (replacing the README's value or adding the flag); nothing
// else is changed. Then the CLI's refusals on the runs those commands made: a repeated run, too few steps,
// wrong-model checkpoints, output paths that cannot work — each one line, with every file's hash unchanged.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import '../src/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { trainT2I } from '../src/train/train-t2i.js';
import { childEnv } from './harness/children.js';
import { freePort } from './harness/process-groups.js';
import { scaledMs, scaledSeconds } from './harness/load.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const clone = mkdtempSync(join(tmpdir(), 'lav-readme-'));
for (const f of ['bin', 'dist', 'node_modules', 'test', 'package.json', 'README.md']) symlinkSync(join(root, f), join(clone, f));
after(() => rmSync(clone, { recursive: true, force: true }));

/** Smaller sizes for the README lines whose defaults take minutes (keys: the line after `npx lavender `). */
const SMALL: Record<string, Record<string, string>> = {
  'train mnist': { steps: '2', batch: '4' },
  'train mnist --steps 60 --batch 64 --out runs/quick': { steps: '2', batch: '4' },
  'train mnist --steps 120 --resume runs/quick/checkpoint.safetensors --out runs/quick': { steps: '3' },
  'sample --checkpoint runs/mnist/checkpoint.safetensors --out grid.png --cfg 4': { steps: '2', rows: '1' },
  'make-shards --synthetic-t2i --out shards --cond-dim 32': { samples: '16' },
  'train t2i --data shards --preset mmdit-tiny --latent-size 8 --tokens 8': { steps: '2', batch: '2' },
  'sample --model mmdit --checkpoint runs/t2i/ema1.safetensors --cond runs/t2i/cond.safetensors --out latents.safetensors': { steps: '2' },
  'coord-check': { widths: '16,32', steps: '2' },
  'mup-sweep --synthetic --widths 64,128 --lrs 2^-12..2^-8 --steps 60 --out runs/mup-sweep': { widths: '32,64', lrs: '2^-9..2^-8', steps: '2', batch: '2', samples: '16', layers: '1' },
  'train mnist --nproc 2 --zero 2 --out runs/mnist-zero2': { steps: '2', batch: '4' },
  'train t2i --data shards --preset mmdit-tiny --latent-size 8 --tokens 8 --nproc 2 --zero 3 --grad-accum 2 --checkpoint-activations --out runs/t2i-zero3': { steps: '2', batch: '2' },
  'launch --nproc 2 node bin/lavender.js train mnist --zero 1 --out runs/mnist-launch': { steps: '2', batch: '4' },
  'bench matmul --size 1024 --backend cpu --json': { size: '128', runs: '2' },
  'bench train-step --model dit-mnist --batch 64 --json': { batch: '2', steps: '1', warmup: '0' },
};

function readmeCommands(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = /## The command\n[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'README.md has a "## The command" section with a ```sh block');
  return block.split('\n').map((l) => l.replace(/\s+#\s.*$/, '').trim()).filter(Boolean);
}

function withSmallSizes(args: string[], small: Record<string, string> = {}): string[] {
  const out = [...args];
  for (const [flag, value] of Object.entries(small)) {
    const i = out.indexOf(`--${flag}`);
    if (i >= 0) out[i + 1] = value;
    else out.push(`--${flag}`, value);
  }
  return out;
}

let port = '0';
before(async () => {
  port = String(await freePort());
});

const lavender = (args: string[]) => {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(root, 'bin', 'lavender.js'), ...args], {
    cwd: clone, encoding: 'utf8', timeout: scaledMs(300_000),
    env: childEnv({ ...process.env, MASTER_PORT: port, LAVENDER_DIST_TIMEOUT: scaledSeconds(60) }), // --nproc ranks die with their launcher
  });
  return { ...r, ms: Date.now() - t0 };
};

const hashes = (dir: string) => Object.fromEntries(readdirSync(join(clone, dir)).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(clone, dir, f))).digest('hex')]));

test('every command in the README runs as written (smaller sizes where the defaults take minutes)', () => {
  const lines = readmeCommands();
  assert.ok(lines.length >= 10, `found ${lines.length} commands`);
  const used = new Set<string>();
  const outputs: Record<string, string> = {};
  for (const line of lines) {
    assert.match(line, /^npx lavender /, 'every line is a lavender command');
    const rest = line.slice('npx lavender '.length);
    if (SMALL[rest]) used.add(rest);
    const r = lavender(withSmallSizes(rest.split(/\s+/), SMALL[rest]));
    assert.equal(r.status, 0, `\`${line}\` failed (${r.signal ?? `exit ${r.status}`}):\n${r.stderr}`);
    outputs[rest] = r.stdout;
  }
  assert.deepEqual([...Object.keys(SMALL)].filter((k) => !used.has(k)), [], 'every SMALL entry matches a README line');
  // what the README says they produce
  assert.equal(JSON.parse(outputs['info --json']!).version, JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  for (const f of ['runs/mnist/checkpoint.safetensors', 'runs/mnist/metrics.jsonl', 'grid.png', 'forward.safetensors', 'shards/index.json',
    'runs/t2i/checkpoint.safetensors', 'runs/t2i/ema1.safetensors', 'runs/t2i/ema2.safetensors', 'runs/t2i/cond.safetensors', 'latents.safetensors',
    'runs/coord-check/coord-check.png', 'runs/mup-sweep/sweep.jsonl', 'runs/mup-sweep/sweep.png', 'runs/mup-sweep/summary.md', 'runs/mnist-zero2/checkpoint.safetensors', 'runs/mnist-launch/checkpoint.safetensors']) {
    assert.ok(existsSync(join(clone, f)), `${f} was written`);
  }
  const steps = readFileSync(join(clone, 'runs/quick/metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.deepEqual(steps, [1, 2, 3], 'the resumed run appended to metrics.jsonl');
  assert.deepEqual([...loadSafetensors(join(clone, 'latents.safetensors')).tensors.latents!.shape], [4, 4, 8, 8]);
  assert.equal(JSON.parse(outputs['bench matmul --size 1024 --backend cpu --json']!).op, 'matmul');
  // `train t2i --nproc 2 --zero 3 --grad-accum 2 --checkpoint-activations --batch 2` is one rank's `--batch 4`
  // (the CLI's defaults: lr 1e-2, warm-up 100, EMA every 16, seed 0)
  const one = trainT2I({ progress: false, log: () => {}, data: join(clone, 'shards'), preset: 'mmdit-tiny', latentSize: 8, tokens: 8, batch: 4, steps: 2, lr: 1e-2, seed: 0, out: join(clone, 'runs/t2i-one-rank') });
  const zero3 = readFileSync(join(clone, 'runs/t2i-zero3/metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
  assert.equal(zero3.length, 2);
  zero3.forEach((v, i) => assert.ok(Math.abs(v - one.losses[i]!) <= 1e-4 * one.losses[i]!, `t2i --nproc 2 --zero 3 step ${i + 1}: loss ${v} vs ${one.losses[i]} on one rank`));
  const a = loadSafetensors(join(clone, 'runs/t2i-zero3/checkpoint.safetensors')).tensors, b = loadSafetensors(one.checkpoint).tensors;
  for (const [k, t] of Object.entries(b)) {
    if (!k.startsWith('model.')) continue;
    const u = a[k]!.toArray(), v = t.toArray();
    u.forEach((x, i) => assert.ok(Math.abs(x - v[i]!) <= 1e-5, `t2i --nproc 2 --zero 3: ${k}[${i}] ${x} vs ${v[i]} on one rank`));
  }
});

/** A refused command: exit 1, one line on stderr naming the command, nothing on stdout. */
function refused(args: string[], re: RegExp): void {
  const r = lavender(args);
  assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, re);
}

test('refusals on those runs: a repeated run, too few steps, wrong-model checkpoints; nothing changed', () => {
  const quick = hashes('runs/quick'), t2i = hashes('runs/t2i'), mnist = hashes('runs/mnist');
  refused(['train', 'mnist', '--steps', '2', '--batch', '4', '--out', 'runs/quick'],
    /^lavender train mnist: --out runs\/quick is not empty \(checkpoint\.safetensors, metrics\.jsonl\); a new run would overwrite it\. Resume it with --resume runs\/quick\/checkpoint\.safetensors, pass --overwrite to replace it, or choose another --out$/);
  refused(['train', 'mnist', '--steps', '2', '--resume', 'runs/quick/checkpoint.safetensors', '--out', 'runs/quick'],
    /--steps 2 does not go beyond the checkpoint's step 3, so nothing would be trained/);
  refused(['train', 'mnist', '--steps', '5', '--batch', '8', '--resume', 'runs/quick/checkpoint.safetensors', '--out', 'runs/quick'],
    /was trained with --batch 4, this run asks for --batch 8;.*--allow-changes/);
  refused(['train', 'mnist', '--resume', 'runs/t2i/checkpoint.safetensors', '--out', 'runs/other'],
    /^lavender train mnist: checkpoint runs\/t2i\/checkpoint\.safetensors holds an MMDiT 'mmdit-tiny', but train mnist trains a DiT 'mnist'$/);
  refused(['sample', '--checkpoint', 'runs/t2i/checkpoint.safetensors'], /holds an MMDiT 'mmdit-tiny', but `sample` \(--model dit\) draws from a DiT$/);
  refused(['sample', '--model', 'mmdit', '--checkpoint', 'runs/mnist/checkpoint.safetensors', '--cond', 'runs/t2i/cond.safetensors', '--out', 'x.safetensors'],
    /holds a DiT 'mnist', but sample --model mmdit draws from an MMDiT$/);
  refused(['train', 't2i', '--data', 'shards', '--resume', 'runs/mnist/checkpoint.safetensors', '--out', 'runs/other'], /holds a DiT 'mnist', but train t2i trains an MMDiT/);
  assert.deepEqual(hashes('runs/quick'), quick);
  assert.deepEqual(hashes('runs/t2i'), t2i);
  assert.deepEqual(hashes('runs/mnist'), mnist);
  // --overwrite replaces the run; the stale files of the old one are gone
  const r = lavender(['train', 'mnist', '--steps', '1', '--batch', '4', '--out', 'runs/quick', '--overwrite']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(clone, 'runs/quick/metrics.jsonl'), 'utf8').trim().split('\n').length, 1);
});

test('output paths that cannot work fail at once with one line naming the flag: /proc (no hang), /sys, a file', () => {
  const r = lavender(['train', 'mnist', '--out', '/proc/lavender-x']);
  assert.equal(r.signal, null, 'killed at the deadline: --out /proc/... hung');
  console.log(`train mnist --out /proc/lavender-x exited after ${r.ms} ms (process start included)`);
  assert.equal(r.stderr.trim(), 'lavender train mnist: --out /proc/lavender-x: cannot create the directory /proc/lavender-x (ENOENT: this file system does not allow creating it)');
  refused(['train', 'mnist', '--out', '/sys/lavender-x'], /^lavender train mnist: --out \/sys\/lavender-x: cannot create the directory \/sys\/lavender-x \((EPERM|EACCES|EROFS)/);
  refused(['train', 't2i', '--data', 'shards', '--out', 'README.md'], /^lavender train t2i: --out README\.md: exists and is not a directory$/);
  refused(['sample', '--checkpoint', 'runs/mnist/checkpoint.safetensors', '--out', 'runs'], /^lavender sample: --out runs: is a directory, expected a file name$/);
  refused(['coord-check', '--out', 'README.md/x'], /--out README\.md\/x: .*README\.md is a file, not a directory/);
});

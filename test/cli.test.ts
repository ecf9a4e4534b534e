// The lavender command and the README example, run as a user would run them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { scaledMs } from './harness/load.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = (args: string[]) => spawnSync('node', args, { cwd: root, encoding: 'utf8', timeout: scaledMs(120_000) });

test('lavender info --json lists every backend with built/available/reason', () => {
  const r = run(['bin/lavender.js', 'info', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.match(info.version, /^\d+\.\d+\.\d+$/);
  const names = info.backends.map((b: { name: string }) => b.name);
  assert.deepEqual(names.slice(0, 3), ['cpu', 'webgpu', 'cuda']);
  for (const b of info.backends) {
    assert.equal(typeof b.built, 'boolean');
    assert.equal(typeof b.available, 'boolean');
    if (!b.available) assert.ok(typeof b.reason === 'string' && b.reason.length > 0, `${b.name} needs a reason`);
  }
  assert.equal(info.backends[0].available, true);
});

test('lavender bench matmul --json prints one line with op, size, backend and gflops', () => {
  const r = run(['bin/lavender.js', 'bench', 'matmul', '--size', '64', '--backend', 'cpu', '--runs', '3', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const j = JSON.parse(lines[0]!);
  assert.equal(j.op, 'matmul');
  assert.equal(j.size, 64);
  assert.equal(j.backend, 'cpu');
  assert.ok(j.gflops > 0 && Number.isFinite(j.gflops));
});

test('bad command-line input gets a clear message and a non-zero exit', () => {
  const r1 = run(['bin/lavender.js', 'bench', 'matmul', '--size', 'big']);
  assert.notEqual(r1.status, 0);
  assert.match(r1.stderr, /--size expects a positive integer, got 'big'/);
  const r2 = run(['bin/lavender.js', 'frobnicate']);
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /unknown command 'frobnicate'/);
  const r3 = run(['bin/lavender.js', 'bench', 'matmul', '--size', '8', '--backend', 'tpu']);
  assert.notEqual(r3.status, 0);
  assert.match(r3.stderr, /unknown device 'tpu'/);
});

test('the README example trains the MLP to > 90% accuracy', () => {
  const r = run(['dist/examples/tiny-mlp.js']);
  assert.equal(r.status, 0, r.stderr);
  const last = r.stdout.trim().split('\n').pop()!;
  const acc = Number(/accuracy ([\d.]+)%/.exec(last)?.[1]);
  assert.ok(acc > 90, last);
});

test('every command rejects unknown flags (naming the closest valid one) and value flags without a value', () => {
  const r1 = run(['bin/lavender.js', 'train', 'mnist', '--step', '5']);
  assert.equal(r1.status, 1);
  assert.match(r1.stderr, /train mnist: unknown flag --step \(did you mean --steps\?\)/);
  const r2 = run(['bin/lavender.js', 'train', 'mnist', '--epochs', '3']);
  assert.match(r2.stderr, /unknown flag --epochs; valid flags: --steps/);
  const r3 = run(['bin/lavender.js', 'train', 'mnist', '--steps', '--batch', '4']);
  assert.match(r3.stderr, /--steps expects a value, got the flag --batch/);
  const r4 = run(['bin/lavender.js', 'info', '--json=yes']);
  assert.match(r4.stderr, /--json is a switch and takes no value/);
  const r5 = run(['bin/lavender.js', 'sample', '--model', 'mmdit', '--rows', '2']);
  assert.match(r5.stderr, /--rows applies to --model dit only/);
  const r6 = run(['bin/lavender.js', 'trian', 'mnist']);
  assert.equal(r6.status, 2);
  assert.match(r6.stderr, /unknown command 'trian' \(did you mean 'train'\?\)/);
  for (const r of [r1, r2, r3, r4, r5]) assert.equal(r.stdout, '', 'nothing ran');
});

test('train t2i --no-save: a benchmark run writes metrics but no checkpoint, EMA files or periodic checkpoints, and ends with its throughput', () => {
  const d = mkdtempSync(join(tmpdir(), 'lav-nosave-'));
  try {
    const shards = join(d, 'shards'), out = join(d, 'run');
    assert.equal(run(['bin/lavender.js', 'make-shards', '--synthetic-t2i', '--out', shards, '--samples', '8', '--latent-size', '8', '--cond-dim', '32', '--tokens', '8']).status, 0);
    const r = run(['bin/lavender.js', 'train', 't2i', '--data', shards, '--preset', 'mmdit-tiny', '--latent-size', '8', '--tokens', '8', '--batch', '4', '--steps', '3',
      '--checkpoint-every', '1', '--no-save', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['cond.safetensors', 'metrics.jsonl']);
    assert.match(r.stdout + r.stderr, /done: 3 steps, .*[\d,]+ tokens\/s, peak memory [\d.]+ GiB; not saved/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

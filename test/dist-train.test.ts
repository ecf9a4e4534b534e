// `lavender train mnist` with data parallelism, run as a user would: 2 ranks (ZeRO 0, 1, 2) against 1 rank
// on the same seed and global batch; the memory report; sharded checkpoints (clear error at another world size,
// consolidation, resume); a killed or stuck rank; disagreeing ranks. Every child process has a deadline.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import '../src/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { spawnChild } from './harness/children.js';
import { scaledMs, scaledSeconds } from './harness/load.js';
import { tempDirs } from './harness/tmp-dirs.js';
import { freePort } from './harness/process-groups.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = tempDirs('lav-dist-');
// a constant lr: mnist's default linear decay depends on --steps, and the resume tests stop a run early
const base = ['train', 'mnist', '--seed', '7', '--sample-rows', '0', '--lr-schedule', 'constant'];

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

function start(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<Result> } {
  const t0 = Date.now();
  // the collective/rendezvous timeout of --nproc runs scales with the load too (60 s on an idle machine)
  // killed at its deadline, when this test process exits, and by its orphan guard if this process dies
  const child = spawnChild(process.execPath, ['bin/lavender.js', ...args], { cwd: root, env: { ...process.env, LAVENDER_DIST_TIMEOUT: scaledSeconds(60), ...env }, deadlineMs: scaledMs(240_000) });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Result>((res) => child.on('exit', (code, signal) => res({ code, signal, stdout, stderr, ms: Date.now() - t0 })));
  return { child, done };
}
const run = (args: string[], env?: NodeJS.ProcessEnv) => start(args, env).done;

const losses = (dir: string): number[] => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss);
const memoryReports = (stderr: string) => stderr.split('\n').filter((l) => l.includes('memory-json ')).map((l) => JSON.parse(l.slice(l.indexOf('memory-json ') + 12)));

function assertClose(a: number[], b: number[], what: string): void {
  assert.equal(a.length, b.length, what);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) / Math.abs(b[i]!) < 1e-4, `${what}: step ${i + 1}: ${v} vs ${b[i]}`));
}

function maxParamDiff(a: string, b: string): number {
  const x = loadSafetensors(a).tensors, y = loadSafetensors(b).tensors;
  let max = 0;
  for (const [k, t] of Object.entries(x)) {
    if (!k.startsWith('model.')) continue;
    const u = t.toArray(), v = y[k]!.toArray();
    for (let i = 0; i < u.length; i++) max = Math.max(max, Math.abs(u[i]! - v[i]!));
  }
  for (const t of [...Object.values(x), ...Object.values(y)]) t.dispose();
  return max;
}

let baseline: { dir: string; losses: number[] } | null = null;
async function baselineRun() {
  if (!baseline) {
    const dir = tmp();
    const r = await run([...base, '--steps', '4', '--batch', '8', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    baseline = { dir, losses: losses(dir) };
  }
  return baseline;
}

test('train mnist --nproc 2 --zero 0|1|2: per-step losses and final parameters match the 1-rank run; ZeRO-2 halves the optimizer state', async () => {
  const ref = await baselineRun();
  const summary: Record<string, unknown> = {};
  for (const zero of ['0', '1', '2']) {
    const dir = tmp();
    const r = await run([...base, '--steps', '4', '--batch', '8', '--out', dir, '--nproc', '2', '--zero', zero]);
    assert.equal(r.code, 0, r.stderr);
    const l = losses(dir);
    assertClose(l, ref.losses, `zero ${zero}`);
    const d = maxParamDiff(join(dir, 'checkpoint.safetensors'), join(ref.dir, 'checkpoint.safetensors'));
    assert.ok(d < 1e-5, `zero ${zero}: final parameters differ by up to ${d}`);
    summary[`zero${zero}`] = { maxRelLoss: Math.max(...l.map((v, i) => Math.abs(v - ref.losses[i]!) / ref.losses[i]!)), maxParamDiff: d };
    const reps = memoryReports(r.stderr);
    assert.deepEqual(reps.map((m) => m.rank).sort(), [0, 1], 'every rank prints its memory report');
    if (zero === '2') {
      const one = await run([...base, '--steps', '1', '--batch', '2', '--out', tmp(), '--zero', '2']);
      assert.equal(one.code, 0, one.stderr);
      const [m1] = memoryReports(one.stderr);
      for (const m of reps) {
        assert.equal(m.measured.optimizer_state * 2, m1.measured.optimizer_state, 'optimizer state per rank at N = 2 is half of N = 1');
        assert.equal(m.measured.gradients * 2, m1.measured.gradients);
        assert.equal(m.formula_bf16.total, 2 * m.parameters + (14 * m.parameters) / 2);
      }
      summary.memory = { n1: m1.measured, n2: reps[0].measured, formula_n2: reps[0].formula_bf16 };
    }
  }
  console.log(`# dist-train summary ${JSON.stringify(summary)}`);
});

test('sharded checkpoints: another world size is a clear error (file untouched); consolidated or same-size resumes continue the 1-rank curve', async () => {
  const ref = await baselineRun();
  const dir = tmp();
  const first = await run([...base, '--steps', '2', '--batch', '8', '--out', dir, '--nproc', '2', '--zero', '2']);
  assert.equal(first.code, 0, first.stderr);
  const ckpt = join(dir, 'checkpoint.safetensors');
  const hash = () => createHash('sha256').update(readFileSync(ckpt)).digest('hex');
  const before = hash();
  const out1 = tmp();
  const bad = await run([...base, '--steps', '4', '--batch', '8', '--out', out1, '--resume', ckpt]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /holds ZeRO stage 2 optimizer state sharded over 2 ranks, but this run has 1 rank\(s\)\. Consolidate it first: `lavender consolidate/);
  assert.ok(!existsSync(join(out1, 'checkpoint.safetensors')));
  // at the same world size but stage 0 (full optimizer state): refused on both ranks too
  const port = await freePort();
  const out0 = tmp();
  const both = await Promise.all([0, 1].map((r) => run([...base, '--steps', '4', '--batch', '8', '--out', out0, '--resume', ckpt, '--zero', '0'], rankEnv(r, 2, port, scaledSeconds(30)))));
  for (const r of both) {
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /sharded over 2 ranks, but this run uses ZeRO stage 0, which keeps the full optimizer state\. Consolidate it first/);
  }
  assert.ok(!existsSync(join(out0, 'checkpoint.safetensors')));
  assert.equal(hash(), before);
  // consolidate, then resume on 1 rank; and resume the shards on 2 ranks directly
  const merged = join(dir, 'merged.safetensors');
  const c = await run(['consolidate', ckpt, '--out', merged]);
  assert.equal(c.code, 0, c.stderr);
  const [one, two] = await Promise.all([
    (async () => {
      const out = tmp();
      const r = await run([...base, '--steps', '4', '--batch', '8', '--out', out, '--resume', merged]);
      assert.equal(r.code, 0, r.stderr);
      return losses(out);
    })(),
    (async () => {
      const out = tmp();
      const r = await run([...base, '--steps', '4', '--batch', '8', '--out', out, '--resume', ckpt, '--nproc', '2', '--zero', '1']);
      assert.equal(r.code, 0, r.stderr);
      return losses(out);
    })(),
  ]);
  assertClose(one, ref.losses.slice(2), 'consolidated, 1 rank');
  assertClose(two, ref.losses.slice(2), 'sharded, 2 ranks');
});

const rankEnv = (rank: number, worldSize: number, port: number, timeout = scaledSeconds(60)) => ({ RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_WORLD_SIZE: String(worldSize), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), LAVENDER_DIST_TIMEOUT: timeout });

async function untilStep(dir: string, ms = scaledMs(120_000)): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (existsSync(join(dir, 'metrics.jsonl')) && readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no step finished');
}

test('a killed rank, and a stuck rank, make the other exit non-zero within the collective timeout, naming it', async () => {
  for (const how of ['SIGKILL', 'SIGSTOP'] as const) {
    const port = await freePort();
    const dir = tmp();
    const args = [...base, '--steps', '200', '--batch', '8', '--out', dir];
    const r0 = start(args, rankEnv(0, 2, port, '4'));
    const r1 = start(args, rankEnv(1, 2, port, '4'));
    try {
      await untilStep(dir);
      const t0 = Date.now();
      r1.child.kill(how);
      const res = await r0.done;
      const waited = Date.now() - t0;
      assert.notEqual(res.code, 0);
      if (how === 'SIGKILL') assert.match(res.stderr, /rank 1 closed its connection/);
      else assert.match(res.stderr, /timed out after 4 s waiting for rank\(s\) 1/);
      assert.ok(waited < 4000 + scaledMs(8000), `${how}: rank 0 took ${waited} ms to give up`);
      console.log(`# ${how} of rank 1: rank 0 exited with code ${res.code} after ${waited} ms: ${res.stderr.trim().split('\n').at(-1)}`);
    } finally {
      r0.child.kill('SIGKILL');
      r1.child.kill('SIGKILL');
      await Promise.all([r0.done, r1.done]);
    }
  }
});

test('disagreeing ranks (config, world size), an indivisible batch and a port in use fail with clear errors on every rank', async () => {
  const dir = tmp();
  const port = await freePort();
  const [a, b] = await Promise.all([
    run([...base, '--steps', '2', '--batch', '8', '--out', dir, '--lr', '0.001'], rankEnv(0, 2, port, scaledSeconds(20))),
    run([...base, '--steps', '2', '--batch', '8', '--out', dir, '--lr', '0.002'], rankEnv(1, 2, port, scaledSeconds(20))),
  ]);
  for (const r of [a, b]) {
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /configurations disagree: rank 1's run configuration .* lr: 0\.002 vs 0\.001/);
  }
  const port2 = await freePort();
  const [c, d] = await Promise.all([
    run([...base, '--steps', '2', '--batch', '8', '--out', dir], rankEnv(0, 2, port2, scaledSeconds(20))),
    run([...base, '--steps', '2', '--batch', '8', '--out', dir], rankEnv(1, 3, port2, scaledSeconds(20))),
  ]);
  for (const r of [c, d]) {
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /world sizes disagree: rank 1 was started with WORLD_SIZE 3 but rank 0 with 2/);
  }
  assert.ok(!existsSync(join(dir, 'checkpoint.safetensors')));
  const odd = await run([...base, '--steps', '2', '--batch', '7', '--out', tmp(), '--nproc', '2']);
  assert.notEqual(odd.code, 0);
  assert.match(odd.stderr, /global batch 7 is not divisible by the number of ranks 2/);
  const busy: Server = createServer();
  const p3 = await new Promise<number>((res) => busy.listen({ host: '127.0.0.1', port: 0 }, () => res((busy.address() as { port: number }).port)));
  try {
    const inUse = await run([...base, '--steps', '2', '--batch', '8', '--out', tmp(), '--nproc', '2', '--master-port', String(p3)]);
    assert.notEqual(inUse.code, 0);
    assert.match(inUse.stderr, /MASTER_PORT \d+ on 127\.0\.0\.1 is already in use/);
  } finally {
    busy.close();
  }
});

// `lavender train t2i` data-parallel as a user runs it, in real processes over the CPU transport: two
// "nodes" on this machine (two `lavender launch --nnodes 2 --node-rank 0|1 --nproc 2`) equal one rank;
// a rank stopped mid-step makes every rank exit non-zero naming it, the last checkpoint stays intact and
// resumes at another world size; the removed --rank/--world-size flags are refused with the way to go.
// Every child process has a deadline; the rank timeouts scale with the machine's load.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import '../src/index.js';
import { writeSyntheticT2I } from '../src/data/t2i.js';
import { consolidate, readCheckpointMeta } from '../src/distributed/checkpoint.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { trainT2I } from '../src/train/train-t2i.js';
import { childEnv, spawnChild } from './harness/children.js';
import { freePort } from './harness/ranks.js';
import { scaledMs, scaledSeconds } from './harness/load.js';
import { tempDirs } from './harness/tmp-dirs.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = tempDirs('lav-t2i-launch-');

interface Result { code: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }
function start(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<Result> } {
  const t0 = Date.now();
  // killed at its deadline, when this test process exits, and by its orphan guard if this process dies
  const child = spawnChild(process.execPath, ['bin/lavender.js', ...args], { cwd: root, env: { ...process.env, LAVENDER_DIST_TIMEOUT: scaledSeconds(60), ...env }, deadlineMs: scaledMs(240_000) });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdout!.on('data', () => {});
  const done = new Promise<Result>((res) => child.on('exit', (code, signal) => res({ code, signal, stderr, ms: Date.now() - t0 })));
  return { child, done };
}

// the tiny preset at the CLI's recipe defaults, and the same run through the library for comparison
let shards: string | null = null;
const data = () => {
  if (!shards) {
    shards = tmp();
    writeSyntheticT2I(shards, { samples: 24, latentSize: 8, condDim: 32, tokens: 8 });
  }
  return shards;
};
const cli = (out: string, more: string[] = []) => ['train', 't2i', '--data', data(), '--preset', 'mmdit-tiny', '--latent-size', '8', '--tokens', '8', '--batch', '4', '--lr', '0.003', '--warmup', '2', '--ema-every', '1', '--out', out, ...more];
const library = (steps: number) => trainT2I({ progress: false, log: () => {}, data: data(), preset: 'mmdit-tiny', latentSize: 8, tokens: 8, batch: 4, lr: 3e-3, warmup: 2, emaEvery: 1, seed: 0, steps, out: tmp() });
const losses = (dir: string): number[] => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss);
const closeLosses = (got: number[], want: number[], what: string) => {
  assert.equal(got.length, want.length, what);
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) <= 1e-4 * want[i]!, `${what}: step ${i + 1}: ${v} vs ${want[i]}`));
};
function maxParamDiff(a: string, b: string): number {
  const x = loadSafetensors(a).tensors, y = loadSafetensors(b).tensors;
  let m = 0;
  for (const [k, t] of Object.entries(x)) {
    if (!k.startsWith('model.')) continue;
    const u = t.toArray(), v = y[k]!.toArray();
    for (let i = 0; i < u.length; i++) m = Math.max(m, Math.abs(u[i]! - v[i]!));
  }
  return m;
}

/** This machine's first non-loopback IPv4 address (a second "node" must reach node 0 there). */
function externalAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

test('two "nodes" on this machine (lavender launch --nnodes 2 --node-rank 0|1 --nproc 2, ZeRO 3) train t2i like one rank', async (t) => {
  const addr = externalAddress();
  if (!addr) {
    t.skip('no non-loopback IPv4 interface here: a multi-node launch needs node 0 reachable at a real address');
    return;
  }
  const ref = library(2);
  const out = tmp();
  const port = String(await freePort());
  const nodes = [0, 1].map((r) => start(['launch', '--nnodes', '2', '--node-rank', String(r), '--nproc', '2', '--master-addr', addr, '--master-port', port, '--', process.execPath, 'bin/lavender.js', ...cli(out, ['--steps', '2', '--zero', '3'])]));
  const res = await Promise.all(nodes.map((n) => n.done));
  for (const r of res) assert.equal(r.code, 0, r.stderr);
  assert.match(res[0]!.stderr, /global batch 4 over 4 rank\(s\) \(1 each\), ZeRO stage 3/);
  closeLosses(losses(out), ref.losses, '2 nodes x 2 ranks');
  const d = maxParamDiff(join(out, 'checkpoint.safetensors'), ref.checkpoint);
  assert.ok(d < 1e-5, `final weights differ by up to ${d}`);
  console.log(`# 2 nodes x 2 ranks (ZeRO 3): losses ${JSON.stringify(losses(out))} vs 1 rank ${JSON.stringify(ref.losses)}, weights within ${d}`);
});

const rankEnv = (rank: number, port: string, timeout: string) => ({ RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: '2', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, LAVENDER_DIST_TIMEOUT: timeout });

/** sha256 of the checkpoint and the shards its metadata names, with its step. */
function snapshot(dir: string): { step: number; hash: string } | null {
  const main = join(dir, 'checkpoint.safetensors');
  if (!existsSync(main)) return null;
  try {
    const meta = readCheckpointMeta(main);
    const h = createHash('sha256').update(readFileSync(main));
    for (const s of meta.zero?.shards ?? []) h.update(readFileSync(join(dir, s)));
    return { step: meta.step, hash: h.digest('hex') };
  } catch {
    return null; // between the shards and the main file of a save
  }
}

test('a rank stopped mid-step (SIGSTOP): every rank exits non-zero naming it, the last checkpoint is intact, and it resumes at another world size', async () => {
  const out = tmp();
  const port = String(await freePort());
  const timeout = '4';
  const args = cli(out, ['--steps', '60', '--zero', '2', '--checkpoint-every', '2']);
  const r0 = start(args, rankEnv(0, port, timeout)), r1 = start(args, rankEnv(1, port, timeout));
  const seen = new Map<number, string>();
  try {
    // record every checkpoint as it lands; stop rank 1 once a checkpoint exists and the run is past it
    const t0 = Date.now();
    for (;;) {
      const s = snapshot(out);
      if (s) seen.set(s.step, s.hash);
      const done = existsSync(join(out, 'metrics.jsonl')) ? readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').filter(Boolean).length : 0;
      if (seen.size && done >= 3) break;
      assert.ok(Date.now() - t0 < scaledMs(120_000), 'the run did not reach step 3');
      await new Promise((r) => setTimeout(r, 50));
    }
    const stoppedAt = Date.now();
    r1.child.kill('SIGSTOP');
    const a = await r0.done;
    const waited = Date.now() - stoppedAt;
    assert.notEqual(a.code, 0);
    assert.match(a.stderr, /on rank 0 timed out after 4 s waiting for rank\(s\) 1 \(stuck or dead/);
    assert.ok(waited < 4000 + scaledMs(10_000), `rank 0 gave up after ${waited} ms`);
    r1.child.kill('SIGCONT'); // the stopped rank resumes into an aborted group and exits too, with the reason
    const b = await r1.done;
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /rank 0 aborted the group: .*waiting for rank\(s\) 1|rank 0 closed its connection|timed out after 4 s waiting for rank\(s\) 0/);
    console.log(`# SIGSTOP of rank 1: rank 0 exited ${a.code} after ${waited} ms; rank 1 after SIGCONT exited ${b.code}: ${b.stderr.trim().split('\n').at(-1)}`);
  } finally {
    r0.child.kill('SIGKILL');
    r1.child.kill('SIGCONT');
    r1.child.kill('SIGKILL');
    await Promise.all([r0.done, r1.done]);
  }
  const last = snapshot(out);
  assert.ok(last, 'a checkpoint is there');
  assert.equal(last!.hash, seen.get(last!.step) ?? last!.hash, `the step-${last!.step} checkpoint changed after it was written`);
  assert.ok(seen.has(last!.step) || last!.step > Math.max(...seen.keys()), 'the checkpoint is one the run wrote');
  // resume it at world size 1 (consolidated) and continue the 1-rank curve
  const merged = join(out, 'merged.safetensors');
  consolidate(join(out, 'checkpoint.safetensors'), merged);
  const S = last!.step;
  const ref = library(S + 2);
  const resumed = tmp();
  const r = spawnSync(process.execPath, ['bin/lavender.js', ...cli(resumed, ['--steps', String(S + 2), '--resume', merged])], { cwd: root, env: childEnv(), encoding: 'utf8', timeout: scaledMs(120_000) });
  assert.equal(r.status, 0, r.stderr);
  closeLosses(losses(resumed), ref.losses.slice(S), `resumed at step ${S} on 1 rank`);
});

test('train t2i --rank/--world-size are refused (they trained W independent models), pointing at --nproc and the launchers', () => {
  const r = spawnSync(process.execPath, ['bin/lavender.js', ...cli(tmp(), ['--rank', '0', '--world-size', '2'])], { cwd: root, env: childEnv(), encoding: 'utf8', timeout: scaledMs(60_000) });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--rank\/--world-size are gone: they split the data without averaging the gradients \(W independent models\)\. Data parallelism goes through the process group: --nproc N/);
});

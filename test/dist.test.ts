// Process groups (CPU transport over loopback), rendezvous checks, timeouts, ZeRO stages 0/1/2 against a
// single-process optimizer, the launcher. Ranks run in this process (as concurrent async tasks, each with its
// own sockets) except for the launcher tests, which start real processes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import '../src/index.js';
import { tensor } from '../src/ops/creation.js';
import { AdamW } from '../src/optim/adamw.js';
import { SGD } from '../src/optim/sgd.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { initProcessGroup, readDistEnv } from '../src/distributed/process-group.js';
import { envOf, freePort, groups } from './harness/process-groups.js';
import { ShardedGenerator } from '../src/distributed/random.js';
import { ZeroOptimizer, type ZeroStage } from '../src/distributed/zero.js';
import { Generator } from '../src/tensor/random.js';
import { randn } from '../src/ops/creation.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { checkPortFree } from '../src/cli/launch.js';
import { childEnv, spawnChild } from './harness/children.js';
import { scaledMs } from './harness/load.js';
import { CpuTransport, listenMesh } from '../src/distributed/cpu-transport.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

const arr = (t: Tensor) => Array.from(t.toArray());

test('collectives on 3 ranks: allReduce sum/avg, reduceScatter, allGather, broadcast, barrier; identical bits everywhere', async () => {
  const pgs = await groups(3);
  try {
    const vals = (r: number) => Float32Array.from({ length: 7 }, (_, i) => Math.fround(Math.sin(r * 7 + i) * 1e3 + 0.1 * r));
    const ts = pgs.map((pg) => tensor(vals(pg.rank)));
    await Promise.all(pgs.map((pg, r) => pg.allReduce(ts[r]!, 'sum')));
    const expect = Array.from({ length: 7 }, (_, i) => Math.fround(vals(0)[i]! + vals(1)[i]! + vals(2)[i]!));
    for (const t of ts) assert.deepEqual(arr(t), expect);
    const avg = pgs.map((pg) => tensor(vals(pg.rank)));
    await Promise.all(pgs.map((pg, r) => pg.allReduce(avg[r]!, 'avg')));
    for (const t of avg) assert.deepEqual(arr(t), arr(avg[0]!));
    assert.ok(Math.abs(arr(avg[0]!)[3]! - expect[3]! / 3) < 1e-3);
    // reduceScatter: rank r gets chunk r of the sum
    const big = pgs.map((pg) => tensor(Float32Array.from({ length: 6 }, (_, i) => i + 10 * pg.rank)));
    const outs = pgs.map(() => tensor(new Float32Array(2)));
    await Promise.all(pgs.map((pg, r) => pg.reduceScatter(outs[r]!, big[r]!, 'sum')));
    assert.deepEqual(outs.map(arr), [[30, 33], [36, 39], [42, 45]]);
    const gathered = pgs.map(() => tensor(new Float32Array(6)));
    await Promise.all(pgs.map((pg, r) => pg.allGather(gathered[r]!, outs[r]!)));
    for (const g of gathered) assert.deepEqual(arr(g), [30, 33, 36, 39, 42, 45]);
    const b = pgs.map((pg) => tensor([pg.rank, pg.rank * 2]));
    await Promise.all(pgs.map((pg, r) => pg.broadcast(b[r]!, 2)));
    for (const t of b) assert.deepEqual(arr(t), [2, 4]);
    await Promise.all(pgs.map((pg) => pg.barrier()));
  } finally {
    for (const pg of pgs) pg.destroy();
  }
});

test('rendezvous: mismatched world sizes and configs fail on every rank with the reason; a port in use is named', async () => {
  const port = await freePort();
  const ws = await Promise.allSettled([
    initProcessGroup({ env: envOf(0, 2, port), config: { a: 1 }, timeoutMs: scaledMs(5000) }),
    initProcessGroup({ env: envOf(1, 3, port), config: { a: 1 }, timeoutMs: scaledMs(5000) }),
  ]);
  for (const r of ws) {
    assert.equal(r.status, 'rejected');
    assert.match(String((r as PromiseRejectedResult).reason.message), /world sizes disagree: rank 1 was started with WORLD_SIZE 3 but rank 0 with 2/);
  }
  const port2 = await freePort();
  const cfg = await Promise.allSettled([
    initProcessGroup({ env: envOf(0, 2, port2), config: { lr: 0.001, batch: 32 }, timeoutMs: scaledMs(5000) }),
    initProcessGroup({ env: envOf(1, 2, port2), config: { lr: 0.002, batch: 32 }, timeoutMs: scaledMs(5000) }),
  ]);
  for (const r of cfg) {
    assert.equal(r.status, 'rejected');
    assert.match(String((r as PromiseRejectedResult).reason.message), /configurations disagree: rank 1.*lr: 0\.002 vs 0\.001/);
  }
  const busy: Server = createServer();
  const port3 = await new Promise<number>((res) => busy.listen({ host: '127.0.0.1', port: 0 }, () => res((busy.address() as { port: number }).port)));
  try {
    await assert.rejects(initProcessGroup({ env: envOf(0, 2, port3), timeoutMs: 2000 }), /MASTER_PORT \d+ on 127\.0\.0\.1 is already in use/);
    await assert.rejects(checkPortFree('127.0.0.1', port3), /already in use/);
  } finally {
    busy.close();
  }
  // a rank that never arrives: the rendezvous times out naming it
  const port4 = await freePort();
  const t0 = Date.now();
  await assert.rejects(initProcessGroup({ env: envOf(0, 2, port4), timeoutMs: 500 }), /missing rank\(s\) 1/);
  assert.ok(Date.now() - t0 < 4000);
});

test('a rank that dials before this one has finished its rendezvous is not lost (its first collective neither)', async () => {
  // rank 1 connects and starts a barrier while rank 0 has not yet called connect() on its listening mesh:
  // the connection used to be dropped, and rank 0 then waited out its timeout for a peer already there
  const [m0, m1] = await Promise.all([listenMesh('127.0.0.1'), listenMesh('127.0.0.1')]);
  const addresses = [m0.address, m1.address];
  const made: CpuTransport[] = [];
  try {
    const t1 = await CpuTransport.connect(1, addresses, m1.server, 'nonce', scaledMs(5000));
    made.push(t1);
    const barrier1 = t1.barrier();
    barrier1.catch(() => {}); // reported through Promise.all below
    await new Promise((r) => setTimeout(r, 200)); // the hello and the barrier frame are waiting at rank 0
    const t0 = await CpuTransport.connect(0, addresses, m0.server, 'nonce', scaledMs(5000));
    made.push(t0);
    await Promise.all([t0.barrier(), barrier1]);
  } finally {
    for (const t of made) t.destroy(); // a failure must not leave sockets that keep this file's process alive
    m0.server.close();
    m1.server.close();
  }
});

test('a stuck rank times the collective out naming it; a dead rank is detected at once; wrong call order is an error', async () => {
  const [a, b] = await groups(2, 400);
  try {
    const t0 = Date.now();
    await assert.rejects(a!.allReduce(tensor([1, 2, 3])), /allReduce #1 on rank 0 timed out after 0\.4 s waiting for rank\(s\) 1/);
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    // the other rank learns why instead of waiting out its own timeout
    await assert.rejects(b!.allReduce(tensor([1, 2, 3])), /rank 0 aborted the group.*timed out|aborted earlier/);
  } finally {
    a!.destroy();
    b!.destroy();
  }

  const [c, d] = await groups(2, 20_000);
  try {
  const t1 = Date.now();
  const pending = c!.allGather(tensor(new Float32Array(4)), tensor([1, 2]));
  setTimeout(() => d!.destroy(), 50);
  await assert.rejects(pending, /rank 1 closed its connection/);
  assert.ok(Date.now() - t1 < 3000);
  await assert.rejects(c!.barrier(), /aborted earlier/);
  } finally {
    c!.destroy();
    d!.destroy();
  }

  const [e, f] = await groups(2, 5000);
  try {
    const r = await Promise.allSettled([e!.allReduce(tensor([1, 2])), f!.allGather(tensor(new Float32Array(4)), tensor([1, 2]))]);
    assert.ok(r.some((x) => x.status === 'rejected' && /out of order/.test(String(x.reason.message))), JSON.stringify(r.map((x) => x.status === 'rejected' ? x.reason.message : 'ok')));
  } finally {
    e!.destroy();
    f!.destroy();
  }
});

/** Per-rank gradients of a 2-parameter toy problem, deterministic. */
const shapes = [[5, 3], [7]];
const init = (i: number) => tensor(Float32Array.from({ length: shapes[i]!.reduce((a, b) => a * b, 1) }, (_, k) => Math.cos(k + i)), { shape: shapes[i] });
const gradFor = (rank: number, step: number, i: number) => tensor(Float32Array.from({ length: shapes[i]!.reduce((a, b) => a * b, 1) }, (_, k) => Math.fround(Math.sin(k * 1.3 + rank * 2.1 + step + i) * (1 + rank))), { shape: shapes[i] });

async function zeroRun(N: number, stage: ZeroStage, steps: number, maxGradNorm?: number, eps?: number) {
  const pgs = await groups(N);
  try {
    const ranks = pgs.map((pg) => {
      const params = [init(0), init(1)];
      return { pg, params, opt: new ZeroOptimizer(pg, params, { stage, optimizer: 'adamw', lr: 0.01, weightDecay: 0.1, bucketElements: 16, eps }) };
    });
    const norms: (number | null)[] = [];
    for (let s = 0; s < steps; s++) {
      for (const r of ranks) r.params.forEach((p, i) => p.setGrad(gradFor(r.pg.rank, s, i)));
      const res = await Promise.all(ranks.map((r) => r.opt.step({ maxGradNorm })));
      norms.push(res[0]!.gradNorm);
    }
    return { params: ranks.map((r) => r.params.map(arr)), reports: ranks.map((r) => r.opt.memoryReport()), norms };
  } finally {
    for (const pg of pgs) pg.destroy();
  }
}

/** The gradient every rank ends with: the average of the ranks' gradients (float64 sum, one rounding). */
function averaged(N: number, s: number, i: number): Tensor {
  const acc = new Float64Array(shapes[i]!.reduce((a, b) => a * b, 1));
  for (let r = 0; r < N; r++) gradFor(r, s, i).toArray().forEach((v, k) => (acc[k]! += v));
  return tensor(Float32Array.from(acc, (v) => v / N), { shape: shapes[i] });
}

function reference(N: number, steps: number, maxGradNorm?: number, eps?: number) {
  const params = [init(0), init(1)];
  const opt = new AdamW(params, { lr: 0.01, weightDecay: 0.1, eps });
  const norms: number[] = [];
  for (let s = 0; s < steps; s++) {
    params.forEach((p, i) => p.setGrad(averaged(N, s, i)));
    if (maxGradNorm !== undefined) norms.push(clipGradNorm(params, maxGradNorm));
    opt.step();
  }
  return { params: params.map(arr), norms };
}

test('ZeRO stages 0, 1, 2 on 2 and 3 ranks reproduce single-process AdamW on the averaged gradients (buckets, padding, clipping)', async () => {
  for (const N of [2, 3]) {
    const ref = reference(N, 3);
    for (const stage of [0, 1, 2] as const) {
      const run = await zeroRun(N, stage, 3);
      for (const p of run.params) assert.deepEqual(p, ref.params, `N=${N} stage ${stage}: parameters must equal the reference exactly`);
    }
  }
  // clipping: the global norm over slices equals clipGradNorm's, and the clipped updates agree
  const ref = reference(2, 3, 0.5);
  for (const stage of [0, 1, 2] as const) {
    const run = await zeroRun(2, stage, 3, 0.5);
    run.norms.forEach((n, i) => assert.ok(Math.abs(n! - ref.norms[i]!) < 1e-5 * ref.norms[i]!, `stage ${stage} norm ${n} vs ${ref.norms[i]}`));
    for (const p of run.params) p.forEach((vals, i) => vals.forEach((v, k) => assert.ok(Math.abs(v - ref.params[i]![k]!) < 1e-6, `stage ${stage} param ${i}[${k}]`)));
  }
});

test('ZeRO stages 0, 1, 2 on 3 ranks where averaging vs summing shows: Adam in its linear regime (eps 10) with clipping on some steps', async () => {
  // With eps >> sqrt(v) the update is about lr * m / eps, linear in the gradient like SGD, so gradients
  // summed over the 3 ranks instead of averaged triple it; the clipping threshold sits between the steps'
  // norms so some steps are clipped (the reported norm then shows a sum) and some are not (the update does).
  const steps = 4, maxNorm = 1.9, eps = 10;
  const ref = reference(3, steps, maxNorm, eps);
  assert.ok(ref.norms.some((n) => n > maxNorm) && ref.norms.some((n) => n < maxNorm), `both clipping branches: norms ${ref.norms}`);
  const plain = reference(3, steps, undefined, eps);
  for (const stage of [0, 1, 2] as const) {
    for (const [clip, want] of [[maxNorm, ref], [undefined, plain]] as const) {
      const run = await zeroRun(3, stage, steps, clip, eps);
      if (clip) run.norms.forEach((n, i) => assert.ok(Math.abs(n! - want.norms[i]!) < 1e-5 * want.norms[i]!, `stage ${stage} step ${i + 1}: norm ${n} vs ${want.norms[i]}`));
      for (const p of run.params) p.forEach((vals, i) => vals.forEach((v, k) => assert.ok(Math.abs(v - want.params[i]![k]!) < 1e-6, `stage ${stage}, clip ${clip}: param ${i}[${k}] ${v} vs ${want.params[i]![k]}`)));
    }
  }
  // the check has teeth: the update moves parameters by far more than the tolerance
  assert.ok(Math.abs(plain.params[0]![0]! - init(0).toArray()[0]!) > 1e-3);
});

test('data parallel SGD (momentum, weight decay, clipping) on 3 ranks over allReduce avg equals single-process SGD exactly', async () => {
  const steps = 3, maxNorm = 1.9;
  const sgd = (params: Tensor[]) => new SGD(params, { lr: 0.05, momentum: 0.9, weightDecay: 0.01 });
  // reference: one process, averaged gradients
  const refParams = [init(0), init(1)];
  const refOpt = sgd(refParams);
  const refNorms: number[] = [];
  for (let s = 0; s < steps; s++) {
    refParams.forEach((p, i) => p.setGrad(averaged(3, s, i)));
    refNorms.push(clipGradNorm(refParams, maxNorm));
    refOpt.step();
  }
  assert.ok(refNorms.some((n) => n > maxNorm) && refNorms.some((n) => n < maxNorm), `both clipping branches: norms ${refNorms}`);
  const pgs = await groups(3);
  try {
    const ranks = pgs.map((pg) => { const params = [init(0), init(1)]; return { pg, params, opt: sgd(params) }; });
    for (let s = 0; s < steps; s++) {
      await Promise.all(ranks.map(async (r) => {
        for (const [i, p] of r.params.entries()) {
          const g = gradFor(r.pg.rank, s, i);
          await r.pg.allReduce(g, 'avg');
          p.setGrad(g);
        }
        const n = clipGradNorm(r.params, maxNorm);
        assert.equal(n, refNorms[s], `rank ${r.pg.rank} step ${s + 1}: norm`);
        r.opt.step();
      }));
    }
    for (const r of ranks) assert.deepEqual(r.params.map(arr), refParams.map(arr), `rank ${r.pg.rank}: parameters`);
  } finally {
    for (const pg of pgs) pg.destroy();
  }
});

/** Established TCP connections whose server side is 127.0.0.1:port (Linux /proc/net/tcp); null where that file is missing. */
function acceptedConnections(port: number): number | null {
  try {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    return readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((l) => {
      const f = l.trim().split(/\s+/);
      return f[1]?.endsWith(`:${hex}`) && f[3] === '01';
    }).length;
  } catch {
    return null;
  }
}

/** Ranks of a WORLD_SIZE-3 group as real processes: each joins, prints 'ready', then all-reduces until it fails (exit 3). */
function startRanks(ranks: number[], port: number, timeoutMs: number) {
  const script = `
    import './dist/src/index.js';
    import { initProcessGroup, readDistEnv } from './dist/src/distributed/process-group.js';
    import { tensor } from './dist/src/ops/creation.js';
    try {
      const pg = await initProcessGroup({ env: readDistEnv(), timeoutMs: ${timeoutMs} });
      console.log('ready');
      for (;;) { await pg.allReduce(tensor([1, 2, 3]), 'sum'); await new Promise((r) => setTimeout(r, 20)); }
    } catch (e) { console.error('failed: ' + e.message); process.exit(3); }`;
  return ranks.map((rank) => {
    const env = { ...process.env, RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: '3', LOCAL_WORLD_SIZE: '3', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
    // they all-reduce forever unless a peer fails: killed at the deadline, when this test process exits, or by their orphan guard if it dies
    const c = spawnChild(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env, deadlineMs: scaledMs(90_000) });
    let out = '', err = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (err += d));
    const done = new Promise<{ code: number | null; err: string; at: number }>((res) => c.on('exit', (code) => res({ code, err, at: Date.now() })));
    return { c, done, ready: () => out.includes('ready') };
  });
}

async function until(what: string, ok: () => boolean, ms = scaledMs(60_000)): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    assert.ok(Date.now() - t0 < ms, `timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('killing rank 0, which hosts the rendezvous store: during training the others fail at once naming it; during the rendezvous too', async () => {
  // 3 ranks running collectives; SIGKILL rank 0
  const kids = startRanks([0, 1, 2], await freePort(), scaledMs(20_000));
  try {
    await until('the 3 ranks are through the rendezvous', () => kids.every((k) => k.ready()));
    const killedAt = Date.now();
    kids[0]!.c.kill('SIGKILL');
    for (const k of kids.slice(1)) {
      const r = await k.done;
      assert.equal(r.code, 3, r.err);
      assert.match(r.err, /failed: .*rank 0 closed its connection/);
      assert.ok(r.at - killedAt < scaledMs(10_000), `a surviving rank took ${r.at - killedAt} ms to notice`);
    }
  } finally {
    for (const k of kids) k.c.kill('SIGKILL');
    await Promise.all(kids.map((k) => k.done));
  }
  // ranks 0 and 1 of 3 have joined the store, rank 2 never comes; SIGKILL rank 0: rank 1 fails at once, not at its 30 s timeout
  const port = await freePort();
  const early = startRanks([0, 1], port, scaledMs(30_000));
  try {
    const conns = () => acceptedConnections(port);
    if (conns() === null) await new Promise((r) => setTimeout(r, 3000));
    else await until('ranks 0 and 1 are connected to the store', () => conns()! >= 2);
    const killedAt = Date.now();
    early[0]!.c.kill('SIGKILL');
    const r = await early[1]!.done;
    assert.equal(r.code, 3, r.err);
    assert.match(r.err, /failed: rendezvous: the store at 127\.0\.0\.1:\d+ \(hosted by rank 0\) closed the connection before every rank had joined/);
    assert.ok(r.at - killedAt < scaledMs(10_000), `rank 1 took ${r.at - killedAt} ms to notice (its rendezvous timeout is 3x that)`);
  } finally {
    for (const k of early) k.c.kill('SIGKILL');
    await Promise.all(early.map((k) => k.done));
  }
});

test('memory report: ZeRO-2 optimizer state and gradients per rank halve from 1 to 2 ranks; the formula is 2Ψ + 14Ψ/N', async () => {
  const one = (await zeroRun(1, 2, 1)).reports[0]!;
  const two = (await zeroRun(2, 2, 1)).reports;
  // 2 buckets (15 and 7 elements at bucketElements 16): at N = 2 padded to 16 and 8, each rank owns 8 + 4
  assert.equal(one.measured.optimizer_state, 22 * 8);
  for (const r of two) {
    assert.equal(r.measured.optimizer_state, 12 * 8);
    assert.equal(r.measured.master_weights, 12 * 4);
    assert.equal(r.measured.gradients, 12 * 4);
    assert.equal(r.formula_bf16.total, 2 * 22 + Math.ceil(2 * 22 / 2) + Math.ceil(4 * 22 / 2) + Math.ceil(8 * 22 / 2));
  }
  const stage0 = (await zeroRun(2, 0, 1)).reports[0]!;
  assert.equal(stage0.measured.optimizer_state, 22 * 8, 'stage 0 keeps the full Adam state on every rank');
});

test('ShardedGenerator: rank r draws rows r*B/N.. of the global draw and advances like the global generator', () => {
  const g = new Generator(11);
  const full = arr(randn([4, 3], { generator: g }));
  const parts = [0, 1].map((r) => {
    const s = new ShardedGenerator(11, r, 2);
    const v = arr(randn([2, 3], { generator: s }));
    assert.equal(s.offset, g.offset);
    return v;
  });
  assert.deepEqual([...parts[0]!, ...parts[1]!], full);
});

test('readDistEnv: torchrun variables, SLURM variables under srun, and clear errors', () => {
  assert.deepEqual(readDistEnv({ RANK: '3', LOCAL_RANK: '1', WORLD_SIZE: '4', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '1234' }), { rank: 3, localRank: 1, worldSize: 4, localWorldSize: 2, masterAddr: '10.0.0.1', masterPort: 1234, source: 'torchrun' });
  const s = readDistEnv({ SLURM_PROCID: '5', SLURM_LOCALID: '1', SLURM_NTASKS: '8', SLURM_NTASKS_PER_NODE: '4', SLURM_NNODES: '2', MASTER_ADDR: 'node1', SLURM_JOB_ID: '777' });
  assert.deepEqual(s, { rank: 5, localRank: 1, worldSize: 8, localWorldSize: 4, masterAddr: 'node1', masterPort: 20777, source: 'slurm' });
  assert.equal(readDistEnv({ SLURM_PROCID: '0', SLURM_STEP_NUM_TASKS: '2', SLURM_STEP_TASKS_PER_NODE: '2(x1)' }).localWorldSize, 2);
  assert.equal(readDistEnv({}).worldSize, 1);
  assert.throws(() => readDistEnv({ WORLD_SIZE: '2', RANK: '2' }), /RANK 2 is not below WORLD_SIZE 2/);
  assert.throws(() => readDistEnv({ WORLD_SIZE: 'two' }), /WORLD_SIZE must be an integer/);
  assert.throws(() => readDistEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '4', SLURM_NNODES: '2' }), /set MASTER_ADDR/);
});

test('lavender launch: children get torchrun\'s environment; one failing rank stops the others and fails the launch', async () => {
  const port = await freePort();
  const ok = spawnSync('node', ['bin/lavender.js', 'launch', '--nproc', '2', '--master-port', String(port), 'node', '-e',
    'const e = process.env; console.log(JSON.stringify([e.RANK, e.LOCAL_RANK, e.WORLD_SIZE, e.LOCAL_WORLD_SIZE, e.MASTER_ADDR, e.MASTER_PORT]))'], { cwd: root, env: childEnv(), encoding: 'utf8', timeout: 60_000 });
  assert.equal(ok.status, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n').map((l) => JSON.parse(l)).sort();
  assert.deepEqual(lines, [['0', '0', '2', '2', '127.0.0.1', String(port)], ['1', '1', '2', '2', '127.0.0.1', String(port)]]);
  const t0 = Date.now();
  const bad = await new Promise<{ code: number | null; stderr: string }>((res) => {
    const c = spawnChild('node', ['bin/lavender.js', 'launch', '--nproc', '2', '--master-port', String(port), 'node', '-e',
      'if (process.env.RANK === "1") setTimeout(() => process.exit(3), 300); else setTimeout(() => {}, 60000)'], { cwd: root, deadlineMs: scaledMs(90_000) });
    let stderr = '';
    c.stderr!.on('data', (d) => (stderr += d));
    c.on('exit', (code) => res({ code, stderr }));
  });
  assert.equal(bad.code, 3);
  assert.match(bad.stderr, /rank 1 \(pid \d+\) exited with code 3; stopping the other ranks/);
  assert.ok(Date.now() - t0 < 20_000, 'the sleeping rank must have been stopped');
  const busy: Server = createServer();
  const p2 = await new Promise<number>((res) => busy.listen({ host: '127.0.0.1', port: 0 }, () => res((busy.address() as { port: number }).port)));
  const inUse = await new Promise<{ code: number | null; stderr: string }>((res) => {
    const c = spawnChild('node', ['bin/lavender.js', 'launch', '--nproc', '2', '--master-port', String(p2), 'node', '-e', '0'], { cwd: root, deadlineMs: scaledMs(90_000) });
    let stderr = '';
    c.stderr!.on('data', (d) => (stderr += d));
    c.on('exit', (code) => res({ code, stderr }));
  });
  busy.close();
  assert.notEqual(inUse.code, 0);
  assert.match(inUse.stderr, /MASTER_PORT \d+ on 127\.0\.0\.1 is already in use/);
});

test('NCCL process group: rank 0\'s unique id reaches every rank through the rendezvous store (fake NCCL API)', async () => {
  const { initNcclProcessGroup } = await import('../src/distributed/nccl.js');
  const port = await freePort();
  const inits: [number, string, number][] = [];
  const fake = (rank: number) => ({
    getUniqueId: () => Uint8Array.from({ length: 128 }, (_, i) => (i * 7 + 3) & 255),
    commInitRank: (n: number, id: Uint8Array, r: number) => {
      inits.push([n, Buffer.from(id).toString('hex'), r]);
      return { rank };
    },
    allReduce: () => {}, reduceScatter: () => {}, allGather: () => {}, broadcast: () => {},
    synchronize: async () => {}, commDestroy: () => {},
  });
  const pgs = await Promise.all([0, 1].map((r) => initNcclProcessGroup(envOf(r, 2, port), {}, 'h', 5000, fake(r))));
  const id = Buffer.from(Uint8Array.from({ length: 128 }, (_, i) => (i * 7 + 3) & 255)).toString('hex');
  assert.deepEqual(inits.sort((a, b) => a[2] - b[2]), [[2, id, 0], [2, id, 1]]);
  assert.deepEqual(pgs.map((p) => [p.rank, p.worldSize, p.backend]), [[0, 2, 'nccl'], [1, 2, 'nccl']]);
  for (const p of pgs) p.destroy();
});

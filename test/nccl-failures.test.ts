// The NCCL process group's failure handling, with a fake NCCL (no GPU here) whose collectives complete
// only when every rank has enqueued them: a collective is polled through stream markers without blocking
// the thread, a stalled peer times out naming it, a dead peer (its control connection closes) and an
// asynchronous NCCL error fail at once, the communicator is aborted (ncclCommAbort) and the other ranks
// learn why. The real bindings (markers, ncclCommAbort, ncclCommGetAsyncError) run in bench/gpu/run.sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../src/index.js';
import { tensor } from '../src/ops/creation.js';
import { initNcclProcessGroup, type NcclApi } from '../src/distributed/nccl.js';
import type { ProcessGroup } from '../src/distributed/process-group.js';
import { envOf, freePort } from './harness/ranks.js';
import { scaledMs } from './harness/load.js';

interface FakeComm { rank: number; enqueued: number; aborted: boolean; destroyed: boolean; asyncError: string | null }

/** N ranks' fake NCCL: collective k completes when every rank has enqueued its k-th collective. */
function fabric(N: number) {
  const comms: FakeComm[] = [];
  const api = (_rank: number): NcclApi => ({
    device: 'cpu',
    getUniqueId: () => new Uint8Array(128).fill(7),
    commInitRank: (_n, _id, r) => {
      const c: FakeComm = { rank: r, enqueued: 0, aborted: false, destroyed: false, asyncError: null };
      comms[r] = c;
      return c;
    },
    allReduce: (c) => void (c as FakeComm).enqueued++,
    reduceScatter: (c) => void (c as FakeComm).enqueued++,
    allGather: (c) => void (c as FakeComm).enqueued++,
    broadcast: (c) => void (c as FakeComm).enqueued++,
    synchronize: async () => {},
    fence: (c) => ({ k: (c as FakeComm).enqueued }),
    query: (c, f) => {
      if ((c as FakeComm).aborted) throw new Error('query on an aborted communicator');
      return comms.length === N && comms.every((o) => o.enqueued >= (f as { k: number }).k);
    },
    asyncError: (c) => (c as FakeComm).asyncError,
    commAbort: (c) => void ((c as FakeComm).aborted = true),
    commDestroy: (c) => void ((c as FakeComm).destroyed = true),
  });
  return { comms, api };
}

async function ncclGroups(N: number, timeoutMs: number) {
  const port = await freePort();
  const f = fabric(N);
  const pgs = await Promise.all([...Array(N).keys()].map((r) => initNcclProcessGroup(envOf(r, N, port), {}, 'h', timeoutMs, f.api(r))));
  return { pgs, comms: f.comms };
}

const one = () => tensor([1, 2, 3]);

test('NCCL (fake): collectives complete by polling markers; a stalled rank times out naming it, the communicator is aborted and the others are told', async () => {
  const timeout = scaledMs(600);
  const { pgs, comms } = await ncclGroups(2, timeout);
  const [a, b] = pgs as [ProcessGroup, ProcessGroup];
  try {
    await Promise.all([a.allReduce(one()), b.allReduce(one())]);
    const t0 = Date.now();
    // rank 1 stalls: it never enqueues collective #2
    await assert.rejects(a.allReduce(one()), /lavender dist: allReduce #2 on rank 0 timed out after [\d.]+ s waiting for rank\(s\) 1 \(stuck or dead; LAVENDER_DIST_TIMEOUT sets the limit\); the NCCL communicator was aborted/);
    const waited = Date.now() - t0;
    assert.ok(waited >= timeout * 0.9 && waited < timeout + scaledMs(2000), `gave up after ${waited} ms (timeout ${timeout})`);
    assert.equal(comms[0]!.aborted, true, 'ncclCommAbort on the rank that timed out');
    await new Promise((r) => setTimeout(r, 100));
    // rank 1 learns of it over the control mesh: its next collective fails at once and aborts its communicator
    const t1 = Date.now();
    await assert.rejects(b.allGather(tensor(new Float32Array(6)), one()), /allGather #2 on rank 1 failed: rank 0 aborted the group: .*timed out/);
    assert.ok(Date.now() - t1 < scaledMs(1000));
    assert.equal(comms[1]!.aborted, true);
    await assert.rejects(a.barrier(), /aborted earlier/);
  } finally {
    for (const pg of pgs) pg.destroy();
  }
});

test('NCCL (fake): a dead rank (its connection closes) fails the waiting collective at once naming it; an asynchronous NCCL error is named', async () => {
  const { pgs, comms } = await ncclGroups(2, scaledMs(20_000));
  try {
    const t0 = Date.now();
    const pending = pgs[0]!.reduceScatter(tensor(new Float32Array(2)), tensor(new Float32Array(4)));
    setTimeout(() => pgs[1]!.destroy(), 50); // rank 1's process goes away
    await assert.rejects(pending, /reduceScatter #1 on rank 0 failed: rank 1 closed its connection \(the process died or exited\); the NCCL communicator was aborted/);
    assert.ok(Date.now() - t0 < scaledMs(3000), `took ${Date.now() - t0} ms`);
    assert.equal(comms[0]!.aborted, true);
  } finally {
    for (const pg of pgs) pg.destroy();
  }
  const second = await ncclGroups(2, scaledMs(20_000));
  try {
    const pending = second.pgs[0]!.allReduce(one());
    second.comms[0]!.asyncError = 'remote process exited or there was a network error (ncclResult 6)';
    await assert.rejects(pending, /allReduce #1 on rank 0 failed: NCCL reported remote process exited or there was a network error \(ncclResult 6\)/);
    assert.equal(second.comms[0]!.aborted, true);
  } finally {
    for (const pg of second.pgs) pg.destroy();
  }
});

// Ranks of a process group inside this process (concurrent async tasks, each with its own sockets over
// loopback): data-parallel runs without the cost of starting processes.
import { createServer } from 'node:net';
import { initProcessGroup, type DistEnv, type ProcessGroup } from '../../src/distributed/process-group.js';
import { scaledMs } from './load.js';

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export const envOf = (rank: number, worldSize: number, port: number): DistEnv => ({ rank, localRank: rank, worldSize, localWorldSize: worldSize, masterAddr: '127.0.0.1', masterPort: port, source: 'torchrun' });

/** N connected process groups (one per rank). */
export async function groups(N: number, timeoutMs = scaledMs(30_000), config: Record<string, unknown> = { test: 1 }): Promise<ProcessGroup[]> {
  const port = await freePort();
  return Promise.all([...Array(N).keys()].map((r) => initProcessGroup({ env: envOf(r, N, port), config, timeoutMs })));
}

/** Run fn on N in-process ranks; the groups are destroyed afterwards. */
export async function onRanks<T>(N: number, fn: (pg: ProcessGroup) => Promise<T>): Promise<T[]> {
  const pgs = await groups(N);
  try {
    return await Promise.all(pgs.map(fn));
  } finally {
    for (const pg of pgs) pg.destroy();
  }
}

/**
 * Rank 0 of a world of N whose other ranks do not exist: collectives return at once (reductions keep
 * this rank's values, gathers leave the output as it is). For measuring what one rank holds, not values.
 */
export function soloRank(N: number): ProcessGroup {
  const done = () => Promise.resolve();
  return { rank: 0, worldSize: N, backend: 'cpu', allReduce: done, reduceScatter: done, allGather: done, broadcast: done, barrier: done, destroy: () => {} };
}

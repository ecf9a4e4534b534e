// Ranks of a process group inside this process (concurrent async tasks, each with its own sockets over
// loopback): data-parallel runs without the cost of starting processes.
import type { ProcessGroup } from '../../src/distributed/process-group.js';
import { scaledMs } from './load.js';
import { groups as joined } from './process-groups.js';

export { envOf, freePort } from './process-groups.js';

/** N connected process groups (one per rank); a longer default timeout than process-groups.ts for training runs. */
export function groups(N: number, timeoutMs = scaledMs(30_000), config: Record<string, unknown> = { test: 1 }): Promise<ProcessGroup[]> {
  return joined(N, timeoutMs, config);
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

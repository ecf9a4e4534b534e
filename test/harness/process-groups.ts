// In-process CPU process groups for the distributed tests: every rank is an async task with its own sockets.
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

/** N ranks joined in one group (rendezvous on a free port). */
export async function groups(N: number, timeoutMs = scaledMs(10_000), config: Record<string, unknown> = { test: 1 }): Promise<ProcessGroup[]> {
  const port = await freePort();
  return Promise.all([...Array(N).keys()].map((r) => initProcessGroup({ env: envOf(r, N, port), config, timeoutMs })));
}

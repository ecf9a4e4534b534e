// In-process CPU process groups for the distributed tests: every rank is an async task with its own sockets.
import { freeLoopbackPort } from '../../src/distributed/free-port.js';
import { initProcessGroup, type DistEnv, type ProcessGroup } from '../../src/distributed/process-group.js';
import { scaledMs } from './load.js';

/** A free loopback port for a rendezvous (src/distributed/free-port.ts). */
export { freeLoopbackPort as freePort };

export const envOf = (rank: number, worldSize: number, port: number): DistEnv => ({ rank, localRank: rank, worldSize, localWorldSize: worldSize, masterAddr: '127.0.0.1', masterPort: port, source: 'torchrun' });

/** N ranks joined in one group (rendezvous on a free port). */
export async function groups(N: number, timeoutMs = scaledMs(10_000), config: Record<string, unknown> = { test: 1 }): Promise<ProcessGroup[]> {
  const port = await freeLoopbackPort();
  return Promise.all([...Array(N).keys()].map((r) => initProcessGroup({ env: envOf(r, N, port), config, timeoutMs })));
}

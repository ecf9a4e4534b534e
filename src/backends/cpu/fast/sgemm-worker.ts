/**
 * Worker thread for the wasm sgemm (see ./sgemm.ts). It instantiates the kernel module on the shared
 * WebAssembly.Memory it is given and then pulls tasks of each job the main thread publishes.
 */
import { workerData } from 'node:worker_threads';
import { _workerLoop, type SgemmWorkerData } from './sgemm.js';

const data = workerData as SgemmWorkerData | null | undefined;
if (data && data.lavenderSgemm) _workerLoop(data);

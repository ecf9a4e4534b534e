/**
 * Worker thread of the cpu kernels (see ./kernels.ts): instantiates the kernel module on the shared heap
 * it is given and pulls tasks of each job the publishing thread opens; sleeps in Atomics.wait when idle.
 */
import { workerData } from 'node:worker_threads';
import { _workerLoop, type KernelWorkerData } from './kernels.js';

const data = workerData as KernelWorkerData | null | undefined;
if (data && data.lavenderKernels) _workerLoop(data);

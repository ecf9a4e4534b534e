// A worker process of `lavender mup-sweep --nproc N` (started by sweep-pool.ts with an IPC channel): it
// trains the points the parent sends, one at a time, and reports each step and each result. The result file
// is written here, atomically, before the parent hears of it. When the parent goes away the worker exits
// (after the run in progress, which still records its result).
import '../index.js';
import { pointKey, runSweepPoint, type SweepPoint, type SweepSettings } from '../train/sweep-run.js';

export type WorkerRequest = { type: 'run'; settings: SweepSettings; point: SweepPoint; runsDir: string };
export type WorkerReply =
  | { type: 'step'; key: string; step: number; loss: number }
  | { type: 'done'; result: ReturnType<typeof runSweepPoint> }
  | { type: 'error'; key: string; message: string };

const send = (m: WorkerReply) => process.send?.(m);

process.on('message', (m: WorkerRequest) => {
  if (m.type !== 'run') return;
  const key = pointKey(m.point);
  try {
    const result = runSweepPoint(m.settings, m.point, m.runsDir, (step, loss) => send({ type: 'step', key, step, loss }));
    send({ type: 'done', result });
  } catch (e) {
    send({ type: 'error', key, message: (e as Error).message });
  }
});
process.on('disconnect', () => process.exit(0));

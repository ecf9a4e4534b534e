// `mup-sweep --nproc N`: the sweep's runs spread over N local worker processes (sweep-worker.ts). The runs are
// independent, so a worker just takes the next point when it is free (the widest, slowest points first).
// Workers write their results; this process rewrites sweep.jsonl. When a worker dies (killed, crashed) or a
// run fails, no new runs are handed out, the other workers finish the runs they are on (their results are
// kept), and the sweep ends with an error naming the worker and its run: running the command again
// continues with what is left. Each worker gets cores / N matmul threads unless LAVENDER_THREADS is set.
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { recordFinished, type SweepEvent, type SweepPlan } from '../train/mup-sweep.js';
import { pointKey, type SweepPoint } from '../train/sweep-run.js';
import type { WorkerReply, WorkerRequest } from './sweep-worker.js';

const WORKER = fileURLToPath(new URL('./sweep-worker.js', import.meta.url));

interface Slot {
  index: number;
  child: ChildProcess;
  point: SweepPoint | null;
  released: boolean;
}

export function runSweepPool(plan: SweepPlan, nproc: number, onEvent?: (e: SweepEvent) => void): Promise<void> {
  const queue = [...plan.todo];
  const n = Math.min(nproc, queue.length);
  if (n === 0) return Promise.resolve();
  const threads = process.env.LAVENDER_THREADS || String(Math.max(1, Math.floor(availableParallelism() / n)));
  const failures: string[] = [];
  return new Promise((resolve, reject) => {
    let alive = n;
    const slots: Slot[] = [];
    const next = (s: Slot) => {
      const p = failures.length ? undefined : queue.shift();
      if (!p) {
        s.point = null;
        s.released = true;
        if (s.child.connected) s.child.disconnect(); // the worker exits when its channel closes
        return;
      }
      s.point = p;
      onEvent?.({ kind: 'start', point: p, key: pointKey(p), worker: s.index });
      s.child.send({ type: 'run', settings: plan.settings, point: p, runsDir: plan.runsDir } satisfies WorkerRequest);
    };
    const onSignal = (sig: NodeJS.Signals) => {
      failures.push(`interrupted by ${sig}`);
      for (const s of slots) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    for (let i = 0; i < n; i++) {
      const child = fork(WORKER, [], { env: { ...process.env, LAVENDER_THREADS: threads }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const s: Slot = { index: i, child, point: null, released: false };
      slots.push(s);
      child.on('message', (m: WorkerReply) => {
        if (m.type === 'step') onEvent?.({ kind: 'step', key: m.key, step: m.step, loss: m.loss, worker: i });
        else if (m.type === 'done') {
          recordFinished(plan, m.result);
          onEvent?.({ kind: 'done', result: m.result, worker: i });
          next(s);
        } else if (m.type === 'error') {
          failures.push(`run ${m.key} failed: ${m.message}`);
          next(s);
        }
      });
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        if (--alive === 0) {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          if (failures.length) reject(new Error(`mup-sweep: ${failures.join('; ')}. Finished runs are recorded in ${plan.runsDir}; run the same command again to continue`));
          else resolve();
        }
      };
      child.once('error', (e) => {
        failures.push(`worker ${i} failed: ${e.message}`);
        if (child.pid === undefined) end(); // never started: no 'exit' follows
      });
      child.once('exit', (code, signal) => {
        if (!s.released || code !== 0) {
          const what = signal ? `was killed by ${signal}` : `exited with code ${code}`;
          failures.push(`worker ${i} (pid ${child.pid}) ${what}${s.point ? ` during run ${pointKey(s.point)}` : ''}`);
        }
        end();
      });
      next(s);
    }
  });
}

#!/usr/bin/env node
// Where a DiT-MNIST training step spends its CPU time, by backend primitive and fused kernel: every call
// of the cpu backend is wrapped and charged the process's CPU time it took (process.cpuUsage, so the
// numbers hold up on a loaded machine). Run with LAVENDER_THREADS=1 for per-kernel CPU cost.
// Usage: LAVENDER_THREADS=1 node bench/profile-step.mjs [batch=64] [rows=40]     (after npm run build)
import '../dist/src/index.js';
import { cpuBackend } from '../dist/src/backends/cpu/index.js';
import { benchTrainStep } from '../dist/src/train/bench-step.js';

const batch = Number(process.argv[2] ?? 64), rows = Number(process.argv[3] ?? 40);
const stats = new Map();
const size = (v) => (v?.shape ?? []).reduce((a, b) => a * b, 1);
const key = (name, args) => {
  if (name === 'matmul') {
    const [a, b] = args;
    return `matmul ${a.shape[0]}x[${a.shape[1]},${a.shape[2]}]@[${b.shape[1]},${b.shape[2]}]${a.strides[0] === 0 ? ' A shared' : ''}${b.strides[0] === 0 ? ' B shared' : ''}`;
  }
  if (name === 'unary' || name === 'binary' || name === 'binaryScalar' || name === 'reduce') return `${name} ${args[0]} n=${size(args[1])}`;
  if (name === 'copy') return `copy n=${size(args[0])}${args[2] ? ' accumulate' : ''}`;
  return name;
};
const wrap = (obj, name, label) => {
  const f = obj[name];
  if (!f) return;
  obj[name] = (...args) => {
    const c0 = process.cpuUsage();
    const r = f(...args);
    const c = process.cpuUsage(c0);
    const k = key(label, args), s = stats.get(k) ?? { n: 0, t: 0 };
    s.n++; s.t += (c.user + c.system) / 1000;
    stats.set(k, s);
    return r;
  };
};
for (const n of ['fill', 'copy', 'unary', 'binary', 'binaryScalar', 'where', 'reduce', 'matmul', 'gather', 'scatterAdd', 'random']) wrap(cpuBackend, n, n);
for (const n of Object.keys(cpuBackend.fused)) wrap(cpuBackend.fused, n, `fused.${n}`);
// one warm-up step and one measured step: halve the totals
const r = benchTrainStep({ model: 'dit-mnist', batch, backend: 'cpu', steps: 1, warmup: 1 });
const list = [...stats].map(([k, s]) => [k, s.n / 2, s.t / 2]).sort((a, b) => b[2] - a[2]);
const total = list.reduce((a, x) => a + x[2], 0);
console.log(`batch ${batch}: ${r.cpu_seconds_per_step.toFixed(3)} CPU s/step, ${(total / 1000).toFixed(3)} s in backend calls`);
for (const [k, n, t] of list.slice(0, rows)) console.log(`${t.toFixed(1).padStart(8)} ms ${String(n).padStart(6)}x  ${k}`);

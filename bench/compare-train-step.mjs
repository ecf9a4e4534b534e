#!/usr/bin/env node
// lavender vs PyTorch: one DiT training step (forward, backward, Adam) on this machine, same model, batch and
// thread count, measured in one run with the configurations alternating round by round, so background load
// hits all of them alike. Reports the median wall time and CPU time (all threads) per step and the peak RSS.
//
// Usage: node bench/compare-train-step.mjs [batch] [rounds] [steps]      (threads: LAVENDER_THREADS, default 2)
//        CONFIGS=lavender,torch-tuned node bench/compare-train-step.mjs ...  (a subset of the configurations)
//
// PyTorch configurations (each only when its libraries are found):
//   torch            Debian's python3-torch as installed (whatever libblas.so.3 the system selects)
//   torch-openblas   the same with OpenBLAS (pthread) first on LD_LIBRARY_PATH
//   torch-tuned      OpenBLAS with OPENBLAS_CORETYPE=SkylakeX, jemalloc preloaded with
//                    MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 (the "tuned")
// OpenBLAS and jemalloc are looked for in the system paths and under $TORCH_LIBS (a directory holding
// usr/lib/x86_64-linux-gnu/... as `dpkg -x` extracts libopenblas0-pthread and libjemalloc2; see
// bench/RESULTS.md for the commands).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const batch = Number(process.argv[2] ?? 64), rounds = Number(process.argv[3] ?? 3), steps = Number(process.argv[4] ?? 3);
const threads = Number(process.env.LAVENDER_THREADS ?? 2);
const base = { ...process.env, LAVENDER_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };

const libRoots = ['/', ...(process.env.TORCH_LIBS ? [process.env.TORCH_LIBS] : [])];
const find = (rel) => libRoots.map((r) => path.join(r, rel)).find((p) => existsSync(p));
const openblasDir = find('usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3') ? path.dirname(find('usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3')) : null;
const jemalloc = find('usr/lib/x86_64-linux-gnu/libjemalloc.so.2');

const configs = [
  { name: 'lavender', cmd: 'node', args: ['bin/lavender.js', 'bench', 'train-step', '--model', 'dit-mnist', '--batch', String(batch), '--steps', String(steps), '--warmup', '2', '--json'], env: base },
  { name: 'torch', cmd: '/usr/bin/python3', args: ['bench/torch_train_step.py', 'mnist', String(batch), String(threads), String(steps)], env: base },
];
if (openblasDir) {
  const ob = { ...base, LD_LIBRARY_PATH: [openblasDir, base.LD_LIBRARY_PATH].filter(Boolean).join(':') };
  configs.push({ name: 'torch-openblas', cmd: configs[1].cmd, args: configs[1].args, env: ob });
  if (jemalloc) {
    configs.push({
      name: 'torch-tuned', cmd: configs[1].cmd, args: configs[1].args,
      env: { ...ob, OPENBLAS_CORETYPE: 'SkylakeX', LD_PRELOAD: jemalloc, MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1', OPENBLAS_L2_SIZE: undefined },
    });
  }
}

if (process.env.CONFIGS) {
  const keep = process.env.CONFIGS.split(',');
  for (let i = configs.length - 1; i >= 0; i--) if (!keep.includes(configs[i].name)) configs.splice(i, 1);
}

const cpuModel = (() => {
  try { return readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model; } catch { return os.cpus()[0]?.model; }
})();
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
console.log(`machine: ${cpuModel}, ${os.cpus().length} logical CPUs; threads=${threads}; node ${process.version}; batch ${batch}, ${rounds} rounds x ${steps} steps`);
console.log(`load average at start: ${load()}`);
console.log(`configurations: ${configs.map((c) => c.name).join(', ')}${openblasDir ? '' : ' (no OpenBLAS found: set TORCH_LIBS)'}`);

const results = Object.fromEntries(configs.map((c) => [c.name, []]));
for (let r = 0; r < rounds; r++) {
  for (const c of configs) {
    const env = Object.fromEntries(Object.entries(c.env).filter(([, v]) => v !== undefined));
    const out = execFileSync(c.cmd, c.args, { env, encoding: 'utf8', maxBuffer: 1 << 24 });
    const j = JSON.parse(out.trim().split('\n').pop());
    results[c.name].push(j);
    console.log(`round ${r + 1} ${c.name}: ${j.seconds_per_step.toFixed(3)} s/step, cpu ${j.cpu_seconds_per_step?.toFixed(3)} s, rss ${j.max_rss_mb} MB (load ${load()})`);
  }
}
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const ours = med(results.lavender.map((j) => j.seconds_per_step));
console.log(`load average at end: ${load()}`);
console.log('');
console.log('| configuration | batch | s/step (median) | rounds | CPU s/step | peak RSS MB | lavender / this |');
console.log('|---|---:|---:|---|---:|---:|---:|');
for (const c of configs) {
  const rs = results[c.name];
  const wall = med(rs.map((j) => j.seconds_per_step));
  console.log(`| ${c.name} | ${batch} | ${wall.toFixed(3)} | ${rs.map((j) => j.seconds_per_step.toFixed(2)).join(', ')} | ${med(rs.map((j) => j.cpu_seconds_per_step)).toFixed(2)} | ${Math.max(...rs.map((j) => j.max_rss_mb))} | ${(ours / wall).toFixed(2)}x |`);
}

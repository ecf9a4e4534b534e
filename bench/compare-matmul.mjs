#!/usr/bin/env node
// lavender vs PyTorch matmul on this machine, in one run, both with the same thread count.
// Usage: node bench/compare-matmul.mjs [sizes...]   (default 256 512 1024; threads from LAVENDER_THREADS or 2)
import { execFileSync } from 'node:child_process';
import os from 'node:os';

const sizes = process.argv.slice(2).map(Number);
const threads = Number(process.env.LAVENDER_THREADS ?? 2);
const env = { ...process.env, LAVENDER_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
const run = (cmd, args) => JSON.parse(execFileSync(cmd, args, { env, encoding: 'utf8' }).trim().split('\n').pop());

console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores; threads=${threads}; node ${process.version}`);
console.log('| size | lavender GFLOP/s | kernel | torch GFLOP/s | torch BLAS | lavender / torch |');
console.log('|---:|---:|---|---:|---|---:|');
for (const size of sizes.length ? sizes : [256, 512, 1024]) {
  const ours = run('node', ['bin/lavender.js', 'bench', 'matmul', '--size', String(size), '--backend', 'cpu', '--json']);
  const torch = run('/usr/bin/python3', ['bench/torch_matmul.py', String(size), String(threads)]);
  console.log(`| ${size} | ${ours.gflops.toFixed(1)} | ${ours.kernel} x${ours.threads} | ${torch.gflops.toFixed(1)} | ${torch.blas} | ${(ours.gflops / torch.gflops * 100).toFixed(0)}% |`);
}

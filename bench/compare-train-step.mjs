#!/usr/bin/env node
// lavender vs PyTorch: one DiT training step (forward, backward, Adam) on this machine, same model, batch and
// thread count, measured back to back in one run, alternating so background load hits both alike.
// Usage: node bench/compare-train-step.mjs [batch] [rounds]   (threads: LAVENDER_THREADS, default 2)
import { execFileSync } from 'node:child_process';
import os from 'node:os';

const batch = Number(process.argv[2] ?? 64), rounds = Number(process.argv[3] ?? 2);
const threads = Number(process.env.LAVENDER_THREADS ?? 2);
const env = { ...process.env, LAVENDER_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
const run = (cmd, args) => JSON.parse(execFileSync(cmd, args, { env, encoding: 'utf8' }).trim().split('\n').pop());

console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores; threads=${threads}; node ${process.version}; load ${os.loadavg()[0].toFixed(2)}`);
const ours = [], torch = [];
for (let r = 0; r < rounds; r++) {
  ours.push(run('node', ['bin/lavender.js', 'bench', 'train-step', '--model', 'dit-mnist', '--batch', String(batch), '--steps', '5', '--warmup', '2', '--json']).seconds_per_step);
  torch.push(run('/usr/bin/python3', ['bench/torch_train_step.py', 'mnist', String(batch), String(threads), '5']).seconds_per_step);
}
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`| model | batch | lavender s/step | PyTorch s/step | lavender / PyTorch |`);
console.log(`|---|---:|---:|---:|---:|`);
console.log(`| dit-mnist | ${batch} | ${med(ours).toFixed(3)} (${ours.map((v) => v.toFixed(2)).join(', ')}) | ${med(torch).toFixed(3)} (${torch.map((v) => v.toFixed(2)).join(', ')}) | ${(med(ours) / med(torch)).toFixed(2)}x |`);

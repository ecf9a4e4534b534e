#!/usr/bin/env node
// lavender vs PyTorch on this machine: a T5-XL-sized encoder on 128 tokens and the SDXL-VAE decoder at
// 256x256, random weights of the real sizes, one forward each, alternating rounds so background load hits
// both alike. Usage (after npm install): node bench/compare-t5-vae.mjs [rounds] [runs]   (2 threads each;
// WARMUP=0 skips the untimed first forward on both sides)
import { execFileSync } from 'node:child_process';
import os from 'node:os';

const rounds = Number(process.argv[2] ?? 2), runs = Number(process.argv[3] ?? 1);
const threads = Number(process.env.LAVENDER_THREADS ?? 2);
const env = { ...process.env, LAVENDER_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
const run = (cmd, args) => JSON.parse(execFileSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 1 << 20 }).trim().split('\n').pop());

console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores; threads=${threads}; node ${process.version}; load ${os.loadavg()[0].toFixed(2)}`);
console.log('| model | lavender s | PyTorch s | lavender / PyTorch |');
console.log('|---|---:|---:|---:|');
for (const which of (process.env.MODELS ?? 't5,vae').split(',')) {
  const ours = [], torch = [];
  for (let r = 0; r < rounds; r++) {
    ours.push(run('node', ['bench/lavender-t5-vae.mjs', which, String(runs)]).seconds);
    torch.push(run('/usr/bin/python3', ['bench/torch_t5_vae.py', which, String(threads), String(runs)]).seconds);
  }
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const name = which === 't5' ? 'T5-XL encoder (UMT5, 1.2B), 128 tokens' : 'SDXL-VAE decoder, 32x32 latents -> 256x256';
  console.log(`| ${name} | ${med(ours).toFixed(2)} (${ours.map((v) => v.toFixed(2)).join(', ')}) | ${med(torch).toFixed(2)} (${torch.map((v) => v.toFixed(2)).join(', ')}) | ${(med(ours) / med(torch)).toFixed(2)}x |`);
}

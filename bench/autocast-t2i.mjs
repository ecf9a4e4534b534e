#!/usr/bin/env node
// Mixed precision on the cpu (bf16 emulated by rounding, see src/ops/autocast.ts): the small MMDiT trained
// N steps on synthetic MDS shards in float32 and in bf16 autocast, same seed; prints both loss curves'
// final means and their ratio (issue 10: bf16 must track float32 within 5%).
// Usage: node bench/autocast-t2i.mjs [steps=100]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../dist/src/index.js'; // loads the tensor methods
import { writeSyntheticT2I } from '../dist/src/data/t2i.js';
import { trainT2I } from '../dist/src/train/train-t2i.js';

const steps = Number(process.argv[2] ?? 100);
const data = mkdtempSync(join(tmpdir(), 'lav-t2i-amp-'));
writeSyntheticT2I(data, { samples: 64, latentSize: 8, condDim: 16, tokens: 6, sizeLimit: 20_000 });
const preset = { dim: 64, n_layers: 2, n_double_layers: 1, n_heads: 4, global_conddim: 64, cond_seq_dim: 16, max_seq: 16 };
const run = (precision) => {
  const t0 = performance.now();
  const r = trainT2I({ data, preset, steps, batch: 8, lr: 1e-2, seed: 0, out: mkdtempSync(join(tmpdir(), 'lav-t2i-out-')), progress: false, log: () => {},
    latentSize: 8, tokens: 8, warmup: 5, emaEvery: 2, precision });
  return { losses: r.losses, seconds: (performance.now() - t0) / 1000 };
};
const f32 = run('float32'), bf16 = run('bfloat16');
const tail = (l) => l.slice(-10).reduce((a, b) => a + b) / 10;
console.log(`steps ${steps}: float32 first ${f32.losses[0].toFixed(4)} final(mean of last 10) ${tail(f32.losses).toFixed(4)} (${f32.seconds.toFixed(1)} s)`);
console.log(`          bf16    first ${bf16.losses[0].toFixed(4)} final(mean of last 10) ${tail(bf16.losses).toFixed(4)} (${bf16.seconds.toFixed(1)} s)`);
console.log(`bf16 / float32 final loss: ${(tail(bf16.losses) / tail(f32.losses)).toFixed(4)} (within 5%: ${Math.abs(tail(bf16.losses) / tail(f32.losses) - 1) <= 0.05})`);

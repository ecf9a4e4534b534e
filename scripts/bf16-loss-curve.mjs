#!/usr/bin/env node
// Does bf16 mixed precision train like float32? Runs `lavender train t2i` twice on the same synthetic
// shards with the same seed, --precision fp32 and --precision bf16, and compares the loss curves from the
// runs' metrics.jsonl: the final loss (mean of the last 10 steps, the per-step loss being noisy from the
// random flow times) must agree within 5%, and so must the mean over the whole run; the curves must also
// differ somewhere (else bf16 was never used) and float32's must fall. Exits 1 when not.
// Too slow for the test suite on this 2-core machine (two 100-step runs); bench/gpu/run.sh runs it on cuda.
//
//   node scripts/bf16-loss-curve.mjs [--backend cpu] [--preset mmdit-tiny] [--steps 100] [--batch 8] [--tol 0.05]
// Prints one JSON line: both curves' final and mean losses and their relative differences.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const opts = { backend: 'cpu', preset: 'mmdit-tiny', steps: '100', batch: '8', tol: '0.05', lr: '0.001' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i]?.replace(/^--/, '');
  if (!k || !(k in opts) || argv[i + 1] === undefined) {
    console.error(`bf16-loss-curve: unknown or valueless flag '${argv[i]}' (flags: ${Object.keys(opts).map((f) => `--${f}`).join(' ')})`);
    process.exit(2);
  }
  opts[k] = argv[i + 1];
}
// shard geometry that fits the preset: the tiny/small presets' text width (cond_seq_dim)
const condDim = { 'mmdit-tiny': 32, 'mmdit-small': 256 }[opts.preset] ?? 2048;
const latent = 8, tokens = 8;
const dir = mkdtempSync(join(tmpdir(), 'lav-bf16-curve-'));
const lavender = (args) => {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'lavender.js'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    console.error(`bf16-loss-curve: lavender ${args.join(' ')} failed:\n${r.stderr}`);
    rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  }
};
try {
  lavender(['make-shards', '--synthetic-t2i', '--out', join(dir, 'shards'), '--samples', '64', '--latent-size', String(latent), '--cond-dim', String(condDim), '--tokens', String(tokens)]);
  const curves = {};
  const t0 = performance.now();
  for (const precision of ['fp32', 'bf16']) {
    const out = join(dir, precision);
    lavender(['train', 't2i', '--data', join(dir, 'shards'), '--preset', opts.preset, '--latent-size', String(latent), '--tokens', String(tokens),
      '--batch', opts.batch, '--steps', opts.steps, '--lr', opts.lr, '--warmup', '10', '--seed', '0', '--backend', opts.backend, '--precision', precision,
      '--out', out]);
    curves[precision] = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => 'loss' in m).map((m) => m.loss);
  }
  const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;
  const final = (a) => mean(a.slice(-10));
  const rel = (a, b) => Math.abs(a - b) / Math.abs(b);
  const r = {
    bench: 'bf16-loss-curve', backend: opts.backend, preset: opts.preset, steps: Number(opts.steps), batch: Number(opts.batch),
    fp32: { first: curves.fp32[0], final: final(curves.fp32), mean: mean(curves.fp32) },
    bf16: { first: curves.bf16[0], final: final(curves.bf16), mean: mean(curves.bf16) },
    // per-step differences: zero everywhere would mean autocast never engaged
    max_step_rel_diff: Math.max(...curves.bf16.map((v, i) => rel(v, curves.fp32[i]))),
    final_rel_diff: rel(final(curves.bf16), final(curves.fp32)), mean_rel_diff: rel(mean(curves.bf16), mean(curves.fp32)),
    tolerance: Number(opts.tol), seconds: (performance.now() - t0) / 1000,
  };
  r.ok = curves.fp32.length === Number(opts.steps) && curves.bf16.length === Number(opts.steps) && r.final_rel_diff <= r.tolerance && r.mean_rel_diff <= r.tolerance
    && r.fp32.final < r.fp32.first && r.max_step_rel_diff > 0;  // float32 learned something; bf16 did round
  console.log(JSON.stringify(r));
  if (!r.ok) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}

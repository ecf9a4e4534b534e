// Text-to-image training on synthetic LavenderFlow-style MDS shards: batches decode as the release does,
// the loss falls, EMAs and checkpoints are written, and a resumed run continues exactly.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { cpuMemoryStats } from '../src/backends/cpu/index.js';
import { openMds, MdsWriter, float32ToFloat16Bits } from '../src/data/mds/index.js';
import { LATENT_SCALE, t2iBatch, writeSyntheticT2I } from '../src/data/t2i.js';
import { trainT2I } from '../src/train/train-t2i.js';
import { formatThroughput, throughput } from '../src/train/throughput.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'lav-t2i-'));
const preset = { dim: 64, n_layers: 2, n_double_layers: 1, n_heads: 4, global_conddim: 64, cond_seq_dim: 16, max_seq: 16 };
const shardOpts = { samples: 48, latentSize: 8, condDim: 16, tokens: 6, sizeLimit: 20_000 };
const quiet = { progress: false, log: () => {}, latentSize: 8, tokens: 8, warmup: 5, emaEvery: 2 } as const;

test('t2i batches: latents scaled by 0.13025, embeddings dequantised x/255*0.5-0.25 and zero-padded', () => {
  const lat = float32ToFloat16Bits(Array.from({ length: 4 * 2 * 2 }, (_, i) => i));
  const emb = Uint8Array.from([0, 255, 51, 102]); // two tokens of width 2
  const { x, cSeq } = t2iBatch([{ vae_256x256_latents: lat, t5_xl_embeddings: emb }], { latentSize: 2, condDim: 2, tokens: 3 });
  assert.deepEqual([...x.shape], [1, 4, 2, 2]);
  assert.ok(Math.abs(x.toArray()[5]! - 5 * LATENT_SCALE) < 1e-6);
  assert.deepEqual(Array.from(cSeq.toArray(), (v) => Number(v.toFixed(4))), [-0.25, 0.25, -0.15, -0.05, 0, 0]);
  assert.throws(() => t2iBatch([{ vae_256x256_latents: lat, t5_xl_embeddings: 'text' }], { latentSize: 2, condDim: 2, tokens: 3 }, 'my-shards'),
    /my-shards: column 't5_xl_embeddings' must be uint8/);
  assert.throws(() => t2iBatch([{ vae_256x256_latents: lat, t5_xl_embeddings: emb }], { latentSize: 4, condDim: 2, tokens: 3 }), /holds 16 values, expected 4x4x4 = 64/);
});

test('t2i batches of 3, element by element: conditions longer than, shorter than and equal to `tokens` (cut, zero-padded)', () => {
  const r = 2, D = 2, T = 3;
  // latents exact in float16 (multiples of 1/8), a different pattern per sample
  const lats = [0, 1, 2].map((b) => Array.from({ length: 4 * r * r }, (_, i) => (i - 7 + 5 * b) / 8));
  const embs = [
    Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), // 5 tokens: longer than T, cut to the first 3
    Uint8Array.from([10, 20]), // 1 token: shorter than T (not first, so a wrong row stride shows)
    Uint8Array.from([0, 255, 51, 102, 7, 9]), // 3 tokens: exactly T
  ];
  const samples = lats.map((l, b) => ({ vae_256x256_latents: float32ToFloat16Bits(l), t5_xl_embeddings: embs[b]! }));
  const { x, cSeq } = t2iBatch(samples, { latentSize: r, condDim: D, tokens: T });
  assert.deepEqual([...x.shape], [3, 4, r, r]);
  assert.deepEqual([...cSeq.shape], [3, T, D]);
  const xs = x.toArray(), cs = cSeq.toArray();
  for (let b = 0; b < 3; b++) {
    for (let i = 0; i < 4 * r * r; i++) assert.ok(Math.abs(xs[b * 4 * r * r + i]! - lats[b]![i]! * LATENT_SCALE) < 1e-7, `x[${b}] element ${i}`);
    const tokens = embs[b]!.length / D;
    for (let k = 0; k < T; k++) for (let d = 0; d < D; d++) {
      const want = k < tokens ? (embs[b]![k * D + d]! / 255) * 0.5 - 0.25 : 0;
      assert.ok(Math.abs(cs[(b * T + k) * D + d]! - want) < 1e-7, `cSeq[${b}, ${k}, ${d}] = ${cs[(b * T + k) * D + d]}, want ${want}`);
    }
  }
});

test('train t2i on synthetic shards: the loss falls, EMAs and checkpoint are written', () => {
  const data = tmp();
  writeSyntheticT2I(data, shardOpts);
  assert.ok(openMds(data).numShards > 1);
  const out = tmp();
  const r = trainT2I({ ...quiet, data, preset, steps: 40, batch: 8, lr: 1e-2, seed: 0, out });
  const early = r.losses.slice(0, 5).reduce((a, b) => a + b) / 5, late = r.losses.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(late < early * 0.8, `loss should fall: ${early} -> ${late}`);
  for (const f of ['checkpoint.safetensors', 'ema1.safetensors', 'ema2.safetensors', 'metrics.jsonl']) assert.ok(existsSync(join(out, f)), f);
  const ema = L.loadSafetensors(join(out, 'ema1.safetensors')).tensors;
  const m = new L.MMDiT(preset);
  m.loadStateDict(ema); // model.-prefixed state dict, loads like the release's ema1.pt
  const named = [...m.namedParameters()];
  assert.deepEqual(Object.keys(ema).sort(), named.map(([n]) => `model.${n}`).sort());
  for (const [n, p] of named) assert.deepEqual(Array.from(p.toArray()), Array.from(ema[`model.${n}`]!.toArray()), `${n} holds the EMA's values`);
  // an average, not a copy of the trained weights
  const trained = L.loadSafetensors(join(out, 'checkpoint.safetensors')).tensors;
  assert.ok(named.some(([n, p]) => trained[`model.${n}`] && Array.from(p.toArray()).some((v, i) => v !== trained[`model.${n}`]!.toArray()[i])), 'ema1 differs from the final weights');
});

test('a resumed t2i run continues exactly (weights, AdamW, warm-up, EMAs, RNG, shard position)', () => {
  const data = tmp();
  writeSyntheticT2I(data, shardOpts);
  const base = { ...quiet, data, preset, batch: 8, lr: 1e-2, seed: 4 };
  const whole = trainT2I({ ...base, steps: 7, out: tmp() });
  const dir = tmp();
  const first = trainT2I({ ...base, steps: 3, out: dir });
  const rest = trainT2I({ ...base, steps: 7, out: dir, resume: join(dir, 'checkpoint.safetensors') });
  assert.deepEqual([...first.losses, ...rest.losses], whole.losses);
  // each step logs the warm-up multiplier it used: min(1, (s + 1) / 5) for the step at 0-based index s (warm-up 5)
  const lrScales = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { lr_scale: number }).lr_scale);
  assert.deepEqual(lrScales, [0.2, 0.4, 0.6, 0.8, 1, 1, 1]);
  const a = L.loadSafetensors(join(dir, 'ema2.safetensors')).tensors;
  // the uninterrupted run's EMA equals the resumed one's
  const wholeDir = tmp();
  trainT2I({ ...base, steps: 7, out: wholeDir });
  const b = L.loadSafetensors(join(wholeDir, 'ema2.safetensors')).tensors;
  for (const k of Object.keys(b)) assert.deepEqual(Array.from(a[k]!.toArray()), Array.from(b[k]!.toArray()), k);
});

test('shards with the wrong column type are named', () => {
  const data = tmp();
  const w = new MdsWriter(data, { columns: { vae_256x256_latents: 'str', t5_xl_embeddings: { encoding: 'uint8', variable: true } } });
  for (let i = 0; i < 8; i++) w.write({ vae_256x256_latents: 'oops', t5_xl_embeddings: new Uint8Array(16) });
  w.finish();
  assert.throws(() => trainT2I({ ...quiet, data, preset, steps: 1, batch: 4, lr: 1e-3, seed: 0, out: tmp() }), /column 'vae_256x256_latents' must be np16/);
});

test('sample --model mmdit writes latents with CFG from precomputed conditions (and a time shift)', async () => {
  const { sampleMMDiT } = await import('../src/train/sample-mmdit.js');
  const data = tmp();
  writeSyntheticT2I(data, shardOpts);
  const out = tmp();
  trainT2I({ ...quiet, data, preset, steps: 3, batch: 8, lr: 1e-2, seed: 0, out });
  const cond = join(out, 'cond.safetensors');
  L.saveSafetensors(cond, { c_seq: L.randn([3, 8, 16]), c_seq_null: L.zeros([1, 8, 16]) });
  const lat = sampleMMDiT({ checkpoint: join(out, 'checkpoint.safetensors'), cond, out: join(out, 'lat.safetensors'), latentSize: 8, steps: 4, cfg: 4, shift: 3 });
  assert.deepEqual([...lat.shape], [3, 4, 8, 8]);
  assert.ok(Array.from(lat.toArray()).every(Number.isFinite));
  assert.deepEqual([...L.loadSafetensors(join(out, 'lat.safetensors')).tensors.latents!.shape], [3, 4, 8, 8]);
  const bad = join(out, 'bad.safetensors');
  L.saveSafetensors(bad, { c_seq: L.randn([3, 8, 5]) });
  assert.throws(() => sampleMMDiT({ checkpoint: join(out, 'checkpoint.safetensors'), cond: bad, out: join(out, 'x.safetensors'), latentSize: 8, steps: 1 }), /bad\.safetensors needs 'c_seq' \[B, Tc, 16\]/);
});

test('a finished run leaves nothing allocated (a sweep trains many in one process)', () => {
  const data = tmp();
  writeSyntheticT2I(data, shardOpts);
  const before = cpuMemoryStats().liveBytes;
  for (let i = 0; i < 2; i++) {
    trainT2I({ ...quiet, data, preset, steps: 2, batch: 4, lr: 1e-3, seed: i, out: tmp(), save: false });
    assert.equal(cpuMemoryStats().liveBytes, before, `bytes left allocated after run ${i + 1}`);
  }
});

test('the last line reports tokens/s (register + text + image tokens per sample), MFU where the card is known, and peak memory', () => {
  const data = tmp();
  writeSyntheticT2I(data, shardOpts);
  const lines: string[] = [];
  const r = trainT2I({ ...quiet, log: (l) => lines.push(l), data, preset, steps: 2, batch: 4, lr: 1e-3, seed: 0, out: tmp(), save: false });
  const perSample = 8 + quiet.tokens + (quiet.latentSize / 2) ** 2;
  assert.ok(r.throughput, 'throughput reported');
  assert.ok(Math.abs(r.throughput!.tokensPerSecond - (4 * perSample) / r.secondsPerStep) < 1e-6 * r.throughput!.tokensPerSecond);
  assert.equal(r.throughput!.mfu, null, 'no MFU on a cpu');
  assert.ok(r.throughput!.peakMemoryBytes! > 0);
  assert.match(lines.at(-1)!, /^done: 2 steps, .* s\/step, [\d,]+ tokens\/s, peak memory \d+\.\d\d GiB; not saved$/);
  // MFU: 6 N tokens/s over the card's bf16 peak, per device
  const card = { deviceName: 'NVIDIA H200', peakBytes: () => 2 ** 30 } as unknown as L.Backend;
  const t = throughput({ parameters: 1e9, tokensPerStep: 8 * 4096, secondsPerStep: 0.5, devices: 2, backend: card });
  assert.ok(Math.abs(t.mfu! - (6 * 1e9 * 65536) / (989e12 * 2)) < 1e-12);
  assert.equal(formatThroughput(t, 'NVIDIA H200'), '65,536 tokens/s, MFU 19.9% of the NVIDIA H200\'s bf16 peak, peak memory 1.00 GiB');
});

test('shards lavender wrote record their embedding width and latent side (lavender.json); another model width is refused by name', () => {
  const data = tmp();
  writeSyntheticT2I(data, { ...shardOpts, condDim: 48 }); // 6 tokens of 48 bytes would read as 18 tokens of the preset's 16
  const run = (o: Partial<Parameters<typeof trainT2I>[0]> = {}) => trainT2I({ ...quiet, data, preset, steps: 1, batch: 4, lr: 1e-3, seed: 0, out: tmp(), save: false, ...o });
  assert.throws(() => run(), /^Error: train t2i: the shards' text embeddings are 48 wide \(.*lavender\.json\) but the model takes 16 \(cond_seq_dim\)/);
  const ok = tmp();
  writeSyntheticT2I(ok, shardOpts);
  assert.throws(() => trainT2I({ ...quiet, data: ok, preset, steps: 1, batch: 4, lr: 1e-3, seed: 0, out: tmp(), save: false, latentSize: 16 }),
    /the shards hold 8x8 latents \(.*lavender\.json\) but --latent-size is 16/);
  writeFileSync(join(ok, 'lavender.json'), '{"format":"lavender-t2i-v1","cond_dim":"32","latent_size":8}');
  assert.throws(() => trainT2I({ ...quiet, data: ok, preset, steps: 1, batch: 4, lr: 1e-3, seed: 0, out: tmp(), save: false }), /lavender\.json: field 'cond_dim' must be a positive integer, got "32"/);
  // without the record (shards from elsewhere, as the release's) the model's width is taken, as before
  rmSync(join(ok, 'lavender.json'));
  assert.equal(trainT2I({ ...quiet, data: ok, preset, steps: 1, batch: 4, lr: 1e-3, seed: 0, out: tmp(), save: false }).losses.length, 1);
});

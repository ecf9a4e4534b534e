// Data-pipeline behaviour the other data tests do not pin down (found by mutation testing, see
// docs/testing.md): the exact shuffle order (an independent Fisher-Yates over the Philox stream, so the
// order cannot drift between versions and break resumed runs), resuming into another epoch, every check on
// a dataset and a loader state with its message, and the t2i column checks naming what they got.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import '../src/index.js';
import { DataLoader, epochPermutation, type ImageDataset } from '../src/data/loader.js';
import { LATENT_SCALE, RELEASE_COLUMNS, t2iBatch, writeSyntheticT2I } from '../src/data/t2i.js';
import { float16BitsToFloat32, float32ToFloat16Bits, openMds } from '../src/data/mds/index.js';
import { philox } from '../src/tensor/random.js';

/** Fisher-Yates, i = n-1..1 swapping with floor(u (i+1)), u = 53 bits of philox((i, epoch low, 'SHUF', epoch high), seed). */
function referencePermutation(n: number, seed: number, epoch: number): number[] {
  const perm = Array.from({ length: n }, (_, i) => i);
  const r = new Uint32Array(4);
  for (let i = n - 1; i > 0; i--) {
    philox(i, epoch % 2 ** 32, 0x53485546, Math.floor(epoch / 2 ** 32), seed % 2 ** 32, Math.floor(seed / 2 ** 32), r);
    const u = (Math.floor(r[0]! / 32) * 2 ** 26 + Math.floor(r[1]! / 64)) / 2 ** 53;
    const j = Math.floor(u * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  return perm;
}

const dataset = (n: number): ImageDataset => ({ images: Float32Array.from({ length: n * 4 }, (_, i) => i), labels: Int32Array.from({ length: n }, (_, i) => i % 10), n, channels: 1, height: 2, width: 2 });

test('the shuffle order is the documented Fisher-Yates over the Philox stream, for every epoch and seed', () => {
  // [2048, 11, 0]: one swap of this order depends on the low 26 bits of u (a shorter uniform changes it);
  // epoch 2^32 + 3 takes the counter's high word (without it the order would be epoch 3's)
  for (const [n, seed, epoch] of [[10, 0, 0], [37, 3, 1], [100, 2 ** 33 + 5, 7], [2, 9, 4], [2048, 11, 0], [20, 4, 2 ** 32 + 3]] as const) {
    const got = Array.from(epochPermutation(n, seed, epoch));
    assert.deepEqual(got, referencePermutation(n, seed, epoch), `n ${n} seed ${seed} epoch ${epoch}`);
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  }
  assert.notDeepEqual(Array.from(epochPermutation(20, 4, 2 ** 32 + 3)), Array.from(epochPermutation(20, 4, 3)));
});

test('a loader resumed into another epoch (same seed) continues in that epoch\'s order', () => {
  const a = new DataLoader(dataset(12), { batchSize: 4, shuffle: true, seed: 5 });
  a.setState({ seed: 5, epoch: 3, position: 4 });
  assert.deepEqual(Array.from(a.nextIndices()), referencePermutation(12, 5, 3).slice(4, 8));
  a.setState({ seed: 6, epoch: 3, position: 0 });
  assert.deepEqual(Array.from(a.nextIndices()), referencePermutation(12, 6, 3).slice(0, 4));
});

test('DataLoader checks the dataset and the state it is given, naming the field', () => {
  const ok = dataset(4);
  const bad: [unknown, RegExp][] = [
    [null, /^Error: DataLoader: dataset must be an object \{images, labels, n, channels, height, width\}/],
    ['images', /dataset must be an object/],
    [{ ...ok, n: 0 }, /^Error: DataLoader: dataset\.n must be a positive integer, got 0/],
    [{ ...ok, channels: 1.5 }, /dataset\.channels must be a positive integer, got 1\.5/],
    [{ ...ok, height: -2 }, /dataset\.height must be a positive integer, got -2/],
    [{ ...ok, images: Array.from(ok.images) }, /^Error: DataLoader: dataset\.images must be a Float32Array/],
    [{ ...ok, labels: Float64Array.from(ok.labels) }, /^Error: DataLoader: dataset\.labels must be an Int32Array/],
    [{ ...ok, images: new Float32Array(15) }, /dataset\.images has 15 values, expected n\*C\*H\*W = 4\*4 = 16/],
    [{ ...ok, labels: new Int32Array(3) }, /^Error: DataLoader: dataset\.labels has 3 values, expected n = 4/],
  ];
  for (const [ds, re] of bad) assert.throws(() => new DataLoader(ds as ImageDataset, { batchSize: 2 }), re, String(re));
  const l = new DataLoader(ok, { batchSize: 2, shuffle: true, seed: 1 });
  const badState: [unknown, RegExp][] = [
    [null, /^Error: DataLoader\.setState: expected \{seed, epoch, position\}/], [3, /expected \{seed, epoch, position\}/],
    [{ seed: -1, epoch: 0, position: 0 }, /^Error: DataLoader\.setState: seed must be a non-negative safe integer, got -1/],
    [{ seed: 0.5, epoch: 0, position: 0 }, /seed must be a non-negative safe integer, got 0\.5/],
    [{ seed: 1, epoch: -1, position: 0 }, /epoch must be a non-negative integer, got -1/],
    [{ seed: 1, epoch: 0, position: -1 }, /position must be an integer in \[0, 4\), got -1/],
    [{ seed: 1, epoch: 0, position: 0.5 }, /position must be an integer in \[0, 4\), got 0\.5/],
    [{ seed: 1, epoch: 0, position: 4 }, /position must be an integer in \[0, 4\), got 4/],
  ];
  for (const [s, re] of badState) assert.throws(() => l.setState(s as never), re, String(re));
  l.setState({ seed: 0, epoch: 0, position: 0 }); // the boundaries are legal
});

test('t2i batches refuse an embedding of the wrong width and name what a wrong column holds', () => {
  const lat = float32ToFloat16Bits(new Array(16).fill(0));
  const opts = { latentSize: 2, condDim: 2, tokens: 3 };
  assert.throws(() => t2iBatch([{ vae_256x256_latents: lat, t5_xl_embeddings: Uint8Array.from([1, 2, 3]) }], opts),
    /^Error: shards: column 't5_xl_embeddings' holds 3 bytes, not a multiple of the condition width 2/);
  for (const [v, name] of [[null, 'null'], [undefined, 'undefined'], ['text', 'String'], [new Float32Array(16), 'Float32Array'], [Object.create(null), 'object']] as const) {
    assert.throws(() => t2iBatch([{ vae_256x256_latents: v, t5_xl_embeddings: Uint8Array.from([1, 2]) }], opts, 'my.mds'),
      new RegExp(`^Error: my\\.mds: column 'vae_256x256_latents' must be np16 \\(float16 array\\), got ${name}$`));
  }
  assert.throws(() => t2iBatch([{ vae_256x256_latents: lat, t5_xl_embeddings: [1, 2] }], opts), /column 't5_xl_embeddings' must be uint8 \(quantised embeddings\), got Array$/);
});

test('DataLoader.currentEpoch is the epoch the next sample comes from', () => {
  const l = new DataLoader(dataset(12), { batchSize: 4, seed: 1 });
  const epochs = [l.currentEpoch];
  for (let b = 0; b < 4; b++) {
    l.nextIndices();
    epochs.push(l.currentEpoch);
  }
  assert.deepEqual(epochs, [0, 0, 0, 1, 1]);
});

test('writeSyntheticT2I: the sample count, one quantised code per class spread over 0..255, latents = 0.8 pattern + 0.2 noise (unit normals), pinned values, the seed', () => {
  const o = { samples: 12, latentSize: 4, condDim: 8, tokens: 4, classes: 3 };
  const read = (seed?: number) => {
    const dir = mkdtempSync(join(tmpdir(), 'lav-synth-'));
    writeSyntheticT2I(dir, { ...o, seed });
    const ds = openMds(dir);
    const rows = Array.from({ length: ds.length }, (_, i) => ds.get(i));
    ds.close();
    rmSync(dir, { recursive: true, force: true });
    return {
      n: ds.length,
      emb: rows.map((r) => Array.from(r[RELEASE_COLUMNS.t5] as Uint8Array)),
      x: rows.map((r) => Array.from(float16BitsToFloat32(r[RELEASE_COLUMNS.vae] as Uint16Array), (v) => v * LATENT_SCALE)),
    };
  };
  const d = read(1);
  assert.equal(d.n, 12);
  const bytes = d.emb.slice(0, 3).flat();
  assert.ok(d.emb.every((e) => e.length === o.tokens * o.condDim));
  d.emb.forEach((e, i) => assert.deepEqual(e, d.emb[i % 3], `sample ${i} carries class ${i % 3}'s code`));
  assert.notDeepEqual(d.emb[0], d.emb[1]);
  // round(127.5 + 60 z), clamped: mean near 127.5, both sides used, few clamped bytes
  const mean = bytes.reduce((a, b) => a + b, 0) / bytes.length;
  assert.ok(Math.abs(mean - 127.5) < 20, `mean byte ${mean}`);
  assert.ok(Math.min(...bytes) < 90 && Math.max(...bytes) > 165, `bytes ${Math.min(...bytes)}..${Math.max(...bytes)}`);
  assert.ok(bytes.filter((b) => b === 0 || b === 255).length <= bytes.length / 10, 'at most a tenth clamped');
  // x = 0.8 pattern + 0.2 noise: variance 0.68 per element; two samples of one class correlate at 0.64 / 0.68
  const all = d.x.flat(), sd = Math.sqrt(all.reduce((a, v) => a + v * v, 0) / all.length);
  assert.ok(sd > 0.65 && sd < 1.0, `latent sd ${sd}`);
  const corr = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0) / Math.sqrt(a.reduce((s, v) => s + v * v, 0) * b.reduce((s, v) => s + v * v, 0));
  assert.ok(corr(d.x[0]!, d.x[3]!) > 0.85, `same class: ${corr(d.x[0]!, d.x[3]!)}`);
  assert.ok(Math.abs(corr(d.x[0]!, d.x[1]!)) < 0.6, `other class: ${corr(d.x[0]!, d.x[1]!)}`);
  // pinned values (seed 1, float16 latents before scaling): the shards other tests train on stay the same across versions
  assert.deepEqual(d.emb[0]!.slice(0, 8), [134, 255, 40, 101, 107, 24, 152, 190]);
  assert.deepEqual(d.x[0]!.slice(0, 4), [0.919921875, 6.390625, -9.09375, 5.07421875].map((v) => v * LATENT_SCALE));
  // the seed decides the data; no seed means seed 0
  assert.deepEqual(read(1), d);
  assert.notDeepEqual(read(2).emb, d.emb);
  assert.deepEqual(read(undefined), read(0));
});

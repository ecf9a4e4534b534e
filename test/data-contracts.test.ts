// Data-pipeline behaviour the other data tests do not pin down (found by mutation testing, see
// docs/testing.md): the exact shuffle order (an independent Fisher-Yates over the Philox stream, so the
// order cannot drift between versions and break resumed runs), resuming into another epoch, every check on
// a dataset and a loader state with its message, and the t2i column checks naming what they got.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import '../src/index.js';
import { DataLoader, epochPermutation, type ImageDataset } from '../src/data/loader.js';
import { float32ToFloat16Bits } from '../src/data/mds/index.js';
import { t2iBatch } from '../src/data/t2i.js';
import { philox } from '../src/tensor/random.js';

/** Fisher-Yates, i = n-1..1 swapping with floor(u (i+1)), u = 53 bits of philox((i, epoch, 'SHUF', 0), seed). */
function referencePermutation(n: number, seed: number, epoch: number): number[] {
  const perm = Array.from({ length: n }, (_, i) => i);
  const r = new Uint32Array(4);
  for (let i = n - 1; i > 0; i--) {
    philox(i, epoch, 0x53485546, 0, seed % 2 ** 32, Math.floor(seed / 2 ** 32), r);
    const u = (Math.floor(r[0]! / 32) * 2 ** 26 + Math.floor(r[1]! / 64)) / 2 ** 53;
    const j = Math.floor(u * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  return perm;
}

const dataset = (n: number): ImageDataset => ({ images: Float32Array.from({ length: n * 4 }, (_, i) => i), labels: Int32Array.from({ length: n }, (_, i) => i % 10), n, channels: 1, height: 2, width: 2 });

test('the shuffle order is the documented Fisher-Yates over the Philox stream, for every epoch and seed', () => {
  for (const [n, seed, epoch] of [[10, 0, 0], [37, 3, 1], [100, 2 ** 33 + 5, 7], [2, 9, 4]] as const) {
    const got = Array.from(epochPermutation(n, seed, epoch));
    assert.deepEqual(got, referencePermutation(n, seed, epoch), `n ${n} seed ${seed} epoch ${epoch}`);
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  }
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

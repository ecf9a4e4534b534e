// CIFAR-10 from the official binary batches: each record is 1 label byte then 3072 pixel bytes (1024 red,
// 1024 green, 1024 blue, each 32x32 row-major), 10000 records per file. Images come out as
// [n, 3, 32, 32] in [-1, 1] (x / 255 * 2 - 1).
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageDataset } from './loader.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;

const RECORD = 1 + 3 * 32 * 32;
const PER_IMAGE = 3 * 32 * 32;
const DOWNLOAD_HINT = 'download the CIFAR-10 binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), extract it and pass --data <dir>/cifar-10-batches-bin';

/** The batch files of a split, in order. */
export function cifar10Files(split: 'train' | 'test'): string[] {
  return split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
}

/**
 * Load a CIFAR-10 split from `dir` (the extracted cifar-10-batches-bin folder). Official files hold 10000
 * records each; any whole number of 3073-byte records is accepted.
 */
export function loadCifar10(dir: string, split: 'train' | 'test'): ImageDataset & { channels: 3; height: 32; width: 32 } {
  if (split !== 'train' && split !== 'test') throw new Error(`loadCifar10: split must be 'train' or 'test', got '${split}'`);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch { /* reported below */ }
  if (!isDir) throw new Error(`loadCifar10: data directory ${dir} does not exist or is not a directory; ${DOWNLOAD_HINT}`);
  const files = cifar10Files(split).map((f) => join(dir, f));
  const contents: Uint8Array[] = [];
  for (const path of files) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(`loadCifar10: ${path} ${code === 'ENOENT' ? 'is missing' : `cannot be read (${(e as Error).message})`}; ${DOWNLOAD_HINT}`);
    }
    if (bytes.length === 0 || bytes.length % RECORD !== 0) {
      throw new Error(`loadCifar10: ${path} is ${bytes.length} bytes, not a whole number of ${RECORD}-byte records (the official batches are 10000 records = ${10000 * RECORD} bytes); the file is truncated or not the binary version; ${DOWNLOAD_HINT}`);
    }
    contents.push(bytes);
  }
  const n = contents.reduce((s, b) => s + b.length / RECORD, 0);
  const images = new Float32Array(n * PER_IMAGE);
  const labels = new Int32Array(n);
  let k = 0;
  contents.forEach((bytes, f) => {
    const records = bytes.length / RECORD;
    for (let r = 0; r < records; r++, k++) {
      const base = r * RECORD;
      const label = bytes[base]!;
      if (label >= CIFAR10_CLASSES.length) {
        throw new Error(`loadCifar10: ${files[f]}: record ${r} (byte ${base}) has label ${label}, expected 0..9; the file is corrupt or not CIFAR-10 (CIFAR-100 binaries use a different layout)`);
      }
      labels[k] = label;
      const o = k * PER_IMAGE;
      for (let i = 0; i < PER_IMAGE; i++) images[o + i] = (bytes[base + 1 + i]! / 255) * 2 - 1;
    }
  });
  return { images, labels, n, channels: 3, height: 32, width: 32 };
}

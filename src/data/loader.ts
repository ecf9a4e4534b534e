// DataLoader: fixed-size batches over an in-memory image dataset, reshuffled every epoch by a seeded
// Fisher-Yates shuffle on the Philox stream, with a {seed, epoch, position} state that can be saved and
// restored for an exact resume. Batches run across epoch boundaries, so every batch has batchSize samples
// and every sample is seen once per epoch.
import '../backends/index.js';
import { tensor } from '../ops/creation.js';
import { philox } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** An image classification dataset held in memory: images [n, channels, height, width], labels [n]. */
export interface ImageDataset {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  channels: number;
  height: number;
  width: number;
}

export interface DataLoaderOptions {
  batchSize: number;
  /** Seed of the shuffle (default 0). */
  seed?: number;
  /** Reshuffle every epoch (default true); false visits samples in order. */
  shuffle?: boolean;
  /** Device of the batch tensors (default: the default device). */
  device?: string;
}

export interface DataLoaderState {
  seed: number;
  epoch: number;
  /** Index of the next sample within this epoch's order. */
  position: number;
}

export interface Batch {
  /** float32 [B, C, H, W] */
  x: Tensor;
  /** int64 [B] */
  y: Tensor;
}

/** Philox counter word that separates shuffle draws from tensor draws made with the same seed. */
const SHUFFLE_STREAM = 0x5348_5546; // 'SHUF'

/** The batch of the given dataset indices: x float32 [B, C, H, W], y int64 [B]. */
export function batchOf(dataset: ImageDataset, idx: ArrayLike<number>, device?: string): Batch {
  const { images, labels, channels, height, width } = dataset;
  const per = channels * height * width;
  const B = idx.length;
  const xs = new Float32Array(B * per);
  const ys = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    const i = idx[b]!;
    xs.set(images.subarray(i * per, (i + 1) * per), b * per);
    ys[b] = labels[i]!;
  }
  return {
    x: tensor(xs, { shape: [B, channels, height, width], dtype: 'float32', device }),
    y: tensor(ys, { shape: [B], dtype: 'int64', device }),
  };
}

/**
 * The order of samples in `epoch`: a Fisher-Yates shuffle where step i (i = n-1 .. 1) swaps with
 * j = floor(u * (i + 1)), u a 53-bit uniform from philox(counter = (i, epoch, SHUFFLE_STREAM, 0), key = seed).
 * Depends only on (n, seed, epoch).
 */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const k0 = seed >>> 0, k1 = Math.floor(seed / 2 ** 32) >>> 0;
  const e0 = epoch >>> 0;
  const e1 = Math.floor(epoch / 2 ** 32) >>> 0;
  const r = new Uint32Array(4);
  for (let i = n - 1; i > 0; i--) {
    philox(i >>> 0, e0, SHUFFLE_STREAM, e1, k0, k1, r);
    const u = ((r[0]! >>> 5) * 2 ** 26 + (r[1]! >>> 6)) * 2 ** -53;
    const j = Math.floor(u * (i + 1));
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm;
}

/**
 * The resumable position in a per-epoch order of n items: epoch e's order is epochPermutation(n, seed, e)
 * (or 0..n-1 without shuffling), `position` the next entry of it. Shared by the DataLoader and MdsLoader,
 * so both shuffle and resume the same way; `who` names the loader in errors.
 */
export class EpochOrder {
  seed: number;
  epoch = 0;
  position = 0;
  order: Uint32Array;

  constructor(readonly n: number, seed: number, readonly shuffle: boolean, private readonly who: string) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`${who}: seed must be a non-negative safe integer, got ${seed}`);
    this.seed = seed;
    this.order = this.make();
  }

  private make(): Uint32Array {
    if (this.shuffle) return epochPermutation(this.n, this.seed, this.epoch);
    const o = new Uint32Array(this.n);
    for (let i = 0; i < o.length; i++) o[i] = i;
    return o;
  }

  getState(): DataLoaderState {
    return { seed: this.seed, epoch: this.epoch, position: this.position };
  }

  /** Restore a state; its position must lie in [0, end). */
  setState(s: DataLoaderState, end = this.n): void {
    const w = `${this.who}.setState`;
    if (!s || typeof s !== 'object') throw new Error(`${w}: expected {seed, epoch, position}`);
    if (!Number.isSafeInteger(s.seed) || s.seed < 0) throw new Error(`${w}: seed must be a non-negative safe integer, got ${s.seed}`);
    if (!Number.isSafeInteger(s.epoch) || s.epoch < 0) throw new Error(`${w}: epoch must be a non-negative integer, got ${s.epoch}`);
    if (!Number.isInteger(s.position) || s.position < 0 || s.position >= end) throw new Error(`${w}: position must be an integer in [0, ${end}), got ${s.position}`);
    const reorder = s.seed !== this.seed || s.epoch !== this.epoch;
    this.seed = s.seed;
    this.epoch = s.epoch;
    this.position = s.position;
    if (reorder) this.order = this.make();
  }

  /** Start the next epoch (its own order, position 0). */
  nextEpoch(): void {
    this.position = 0;
    this.epoch++;
    this.order = this.make();
  }
}

function checkDataset(ds: ImageDataset): void {
  const fail = (msg: string): never => {
    throw new Error(`DataLoader: ${msg}`);
  };
  if (!ds || typeof ds !== 'object') fail('dataset must be an object {images, labels, n, channels, height, width}');
  for (const k of ['n', 'channels', 'height', 'width'] as const) {
    if (!Number.isInteger(ds[k]) || ds[k] < 1) fail(`dataset.${k} must be a positive integer, got ${ds[k]}`);
  }
  if (!(ds.images instanceof Float32Array)) fail('dataset.images must be a Float32Array');
  if (!(ds.labels instanceof Int32Array)) fail('dataset.labels must be an Int32Array');
  const per = ds.channels * ds.height * ds.width;
  if (ds.images.length !== ds.n * per) fail(`dataset.images has ${ds.images.length} values, expected n*C*H*W = ${ds.n}*${per} = ${ds.n * per}`);
  if (ds.labels.length !== ds.n) fail(`dataset.labels has ${ds.labels.length} values, expected n = ${ds.n}`);
}

export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly device?: string;
  private readonly state: EpochOrder;

  constructor(readonly dataset: ImageDataset, opts: DataLoaderOptions) {
    checkDataset(dataset);
    const { batchSize, seed = 0, shuffle = true, device } = opts;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    this.batchSize = batchSize;
    this.shuffle = shuffle;
    this.device = device;
    this.state = new EpochOrder(dataset.n, seed, shuffle, 'DataLoader');
  }

  /** Number of full batches in one epoch (batches straddle epochs, so this is n / batchSize rounded down). */
  get batchesPerEpoch(): number {
    return Math.floor(this.dataset.n / this.batchSize);
  }

  /** The epoch the next sample comes from (0-based). */
  get currentEpoch(): number {
    return this.state.epoch;
  }

  getState(): DataLoaderState {
    return this.state.getState();
  }

  setState(s: DataLoaderState): void {
    this.state.setState(s);
  }

  /** Dataset indices of the next batch (advances the state). */
  nextIndices(): Uint32Array {
    const st = this.state;
    const idx = new Uint32Array(this.batchSize);
    for (let b = 0; b < this.batchSize; b++) {
      idx[b] = st.order[st.position]!;
      if (++st.position === this.dataset.n) st.nextEpoch();
    }
    return idx;
  }

  /** The next batch: x float32 [B, C, H, W], y int64 [B]. */
  next(): Batch {
    return batchOf(this.dataset, this.nextIndices(), this.device);
  }
}

// Feeding MDS samples to training: a per-epoch order shared by every rank, partitioned across ranks,
// with the DataLoader's shuffle and resumable {seed, epoch, position} state.
import { EpochOrder } from '../loader.js';
import { MdsDataset } from './reader.js';

// ---------------------------------------------------------------------------------------------------------------
// Loader

/** What MdsLoader reads from: an MdsDataset, or anything with the same length/get. */
export interface MdsSampleSource {
  readonly length: number;
  get(i: number, columns?: readonly string[]): Record<string, unknown>;
}

export interface MdsLoaderOptions {
  batchSize: number;
  /** Seed of the shuffle (default 0). */
  seed?: number;
  /** This process's rank in [0, worldSize) (default 0). */
  rank?: number;
  /** Number of ranks (default 1). */
  worldSize?: number;
  /** Reshuffle every epoch (default true); false visits samples in index order. */
  shuffle?: boolean;
  /** Drop the end of each epoch that does not fill a whole batch on every rank (default true). */
  dropLast?: boolean;
  /** Decode only these columns (default all). */
  columns?: readonly string[];
}

export interface MdsLoaderState {
  seed: number;
  epoch: number;
  /** Samples of this epoch's order already taken, by all ranks together (the same on every rank). */
  position: number;
}

/**
 * Batches of decoded samples, in a per-epoch order that is the same on every rank, partitioned across ranks.
 *
 * Epoch e's order is epochPermutation(length, seed, e) from loader.ts (a Fisher-Yates shuffle on the Philox stream,
 * the DataLoader's order for the same seed), or 0..length-1 with shuffle off. Rank r takes every worldSize-th
 * entry of that order starting at r: a step of the loader consumes the next batchSize * worldSize entries, and
 * rank r's batch is entries position + r, position + r + worldSize, ..., position + r + (batchSize-1) * worldSize.
 * Batches never straddle epochs.
 *   dropLast (default): an epoch visits the first worldSize * batchSize * floor(floor(length / worldSize) / batchSize)
 *     entries, so every rank gets the same number of full batches; the tail of the order is skipped that epoch
 *     (a different tail each epoch when shuffled).
 *   dropLast false: every entry is visited once per epoch; the last step of an epoch gives shorter batches (and
 *     may give an empty one on the higher ranks), but every rank makes the same number of steps per epoch,
 *     ceil(length / (batchSize * worldSize)), so ranks stay in lockstep.
 * Either way the ranks' samples in an epoch are disjoint, and with dropLast false their union is every sample.
 * The state {seed, epoch, position} is the same on all ranks, so one saved copy resumes every rank exactly (and
 * a resume with another worldSize continues the same epoch order from the same point).
 */
export class MdsLoader {
  readonly batchSize: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly columns?: readonly string[];
  private readonly state: EpochOrder;

  constructor(readonly dataset: MdsSampleSource, opts: MdsLoaderOptions) {
    const { batchSize, seed = 0, rank = 0, worldSize = 1, shuffle = true, dropLast = true, columns } = opts ?? ({} as MdsLoaderOptions);
    const fail = (msg: string): never => {
      throw new Error(`MdsLoader: ${msg}`);
    };
    if (!dataset || !Number.isSafeInteger(dataset.length) || typeof dataset.get !== 'function') fail('dataset must be an MdsDataset (or {length, get(i)})');
    if (!Number.isInteger(batchSize) || batchSize < 1) fail(`batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(worldSize) || worldSize < 1) fail(`worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) fail(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
    if (dataset.length > 0xffffffff) fail(`datasets of more than 2^32 - 1 samples are not supported (got ${dataset.length})`);
    this.batchSize = batchSize;
    this.rank = rank;
    this.worldSize = worldSize;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.columns = columns;
    this.state = new EpochOrder(dataset.length, seed, shuffle, 'MdsLoader');
    if (this.epochEnd === 0) {
      fail(`the dataset's ${dataset.length} samples give no batches per epoch with batchSize ${batchSize} and worldSize ${worldSize}` + (dropLast ? ' and dropLast (each rank needs a full batch)' : ''));
    }
  }

  /** Entries of each epoch's order that are visited (the rest are dropped when dropLast). */
  get epochEnd(): number {
    const n = this.dataset.length, W = this.worldSize, B = this.batchSize;
    return this.dropLast ? W * B * Math.floor(Math.floor(n / W) / B) : n;
  }

  /** Steps (next() calls) per epoch, the same on every rank. */
  get batchesPerEpoch(): number {
    return Math.ceil(this.epochEnd / (this.worldSize * this.batchSize));
  }

  /** The epoch the next batch comes from (0-based). */
  get currentEpoch(): number {
    return this.state.epoch;
  }

  getState(): MdsLoaderState {
    return this.state.getState();
  }

  setState(s: MdsLoaderState): void {
    this.state.setState(s, this.epochEnd);
  }

  /** Dataset indices of this rank's next batch (advances the state). */
  nextIndices(): number[] {
    const st = this.state, end = this.epochEnd, W = this.worldSize;
    const idx: number[] = [];
    for (let k = 0; k < this.batchSize; k++) {
      const p = st.position + this.rank + k * W;
      if (p >= end) break;
      idx.push(st.order[p]!);
    }
    st.position = Math.min(st.position + this.batchSize * W, end);
    if (st.position >= end) st.nextEpoch();
    return idx;
  }

  /** This rank's next batch of decoded samples. */
  next(): Record<string, unknown>[] {
    return this.nextIndices().map((i) => this.dataset.get(i, this.columns));
  }
}

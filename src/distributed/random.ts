// Randomness that does not depend on the number of ranks. The Philox generator is counter based: element i
// of a draw is a function of (seed, offset + i) only. A training step draws batch-shaped tensors (times [B],
// noise [B, C, H, W], label-dropout mask [B]), batch first; rank r of N computes rows r*B/N .. (r+1)*B/N of
// each. ShardedGenerator hands rank r exactly the counters of its rows of the *global* draw and advances the
// offset past the whole global draw, so every rank sees the same numbers a single process would for the same
// samples, and the generator state (seed, offset) after each step equals the single-process one (checkpoints
// are interchangeable).
//
// Contract: every draw made through it must be a batch-first tensor of the local batch (n = local rows x
// per-row size), since n * worldSize is taken to be the global draw.
import { Generator } from '../tensor/random.js';

export class ShardedGenerator extends Generator {
  constructor(seed: number, readonly rank: number, readonly worldSize: number, offset = 0) {
    super(seed, offset);
    if (!(Number.isInteger(worldSize) && worldSize >= 1 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
      throw new Error(`ShardedGenerator: rank ${rank} is not in [0, ${worldSize})`);
    }
  }
  override take(n: number): number {
    const o = this.offset + this.rank * n;
    this.offset += n * this.worldSize;
    return o;
  }
}

// Randomness that does not depend on the number of ranks or on gradient accumulation. The Philox generator
// is counter based: element i of a draw is a function of (seed, offset + i) only. A training step draws
// batch-shaped tensors (times [B], noise [B, C, H, W], label-dropout mask [B]), batch first. The step's
// global batch of K*B rows is cut into K micro-batches of B rows (gradient accumulation), each split over
// N ranks: rank r of micro-batch k computes rows k*B + r*B/N .. k*B + (r+1)*B/N, i.e. row block k*N + r of
// K*N equal blocks. ShardedGenerator hands that block exactly the counters of its rows of the *global*
// draw of K*B rows and advances the offset past the whole global draw, so every sample sees the numbers a
// single process on the K*B batch would draw for it, and the state (seed, offset) after each step equals
// the single-process one (checkpoints are interchangeable across world sizes and accumulation).
//
// Contract: every draw made through it must be a batch-first tensor of the local rows (n = local rows x
// per-row size), since n * blocks is taken to be the global draw.
import { Generator } from '../tensor/random.js';

export class ShardedGenerator extends Generator {
  private block: number;
  private blocks: number;
  constructor(seed: number, readonly rank: number, readonly worldSize: number, offset = 0) {
    super(seed, offset);
    if (!(Number.isInteger(worldSize) && worldSize >= 1 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
      throw new Error(`ShardedGenerator: rank ${rank} is not in [0, ${worldSize})`);
    }
    this.block = rank;
    this.blocks = worldSize;
  }

  /**
   * Draw micro-batch k of K next: the offset goes back to `stepOffset` (the generator's offset when the step
   * began) and this rank's rows become block k*N + rank of K*N. After micro-batch K-1 the offset is past the
   * step's whole global draw. With K = 1 this is the plain per-rank split.
   */
  microBatch(k: number, K: number, stepOffset: number): void {
    if (!(Number.isInteger(K) && K >= 1 && Number.isInteger(k) && k >= 0 && k < K)) throw new Error(`ShardedGenerator.microBatch: micro-batch ${k} is not in [0, ${K})`);
    this.offset = stepOffset;
    this.block = k * this.worldSize + this.rank;
    this.blocks = K * this.worldSize;
  }

  override take(n: number): number {
    const o = this.offset + this.block * n;
    this.offset += n * this.blocks;
    return o;
  }
}

/**
 * @module lavender/distributed
 */
// `lavender/distributed`: process groups (CPU transport over TCP, NCCL), ZeRO stages 0-3, sharded checkpoints.
export {
  initProcessGroup, readDistEnv, allReduceNumbers, allGatherNumbers, isLoopback,
  type ProcessGroup, type DistEnv, type InitOptions, type ReduceOp,
} from './process-group.js';
export { ZeroOptimizer, zeroFormulaBytes, type ZeroStage, type ZeroOptions, type ZeroLayout, type MemoryReport } from './zero.js';
export { saveDistCheckpoint, loadDistCheckpoint, consolidate, readCheckpointMeta, type ZeroCheckpointInfo, type CheckpointExtras } from './checkpoint.js';
export { ShardedGenerator } from './random.js';

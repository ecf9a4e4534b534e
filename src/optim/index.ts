/**
 * @module lavender/optim
 */
export { SGD, type SgdOptions } from './sgd.js';
export { AdamW, Adam, AdamBase, type ParamGroup, type AdamWOptions, type ResolvedParamGroup, type AdamParamState, type AdamStateDict } from './adamw.js';
export { clipGradNorm } from './clip.js';
export { linearDecay, linearWarmup, WarmupScheduler, type LrScalable } from './schedule.js';
export { PowerEma, powerEmaBeta, type PowerEmaOptions, type PowerEmaStateDict } from './ema.js';
export { lavenderflowGroups, lavenderflowRule, muPGroups, muPLrScale, infiniteDims, type LavenderflowRuleOptions, type MuPOptions } from './mup.js';
export { saveCheckpoint, loadCheckpoint, type CheckpointMeta } from './checkpoint.js';
export { readCheckpointMeta, readModelSpec, inferModelKind, describeModel, weightsMetadata, type ModelKind, type ModelSpec, type WeightsMeta } from './checkpoint-meta.js';

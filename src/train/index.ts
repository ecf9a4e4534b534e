/**
 * @module lavender/train
 */
// `lavender/train`: the training loops (DiT on one rank or data-parallel, text-to-image MMDiT), their run
// directories and resume checks, sampling, the forward parity tool, the muP coordinate check, model sizes.
export { trainDiT, trainDiTDistributed, modelFromCheckpoint, formatMemoryReport, type TrainDiTOptions, type TrainResult, type DistTrainOptions } from './train-dit.js';
export { trainT2I, type TrainT2IOptions } from './train-t2i.js';
export { sampleGrid, type SampleGridOptions } from './sample-dit.js';
export { sampleMMDiT, type SampleMMDiTOptions } from './sample-mmdit.js';
export { runForward, loadWeights, type ForwardOptions } from './forward.js';
export { coordCheck, widthGrowth, type CoordCheckOptions, type CoordCheckResult, type Parametrization } from './coord-check.js';
export { modelInfo, type ModelInfo } from './model-info.js';
export { benchTrainStep, type StepBenchResult } from './bench-step.js';
export { checkRunDir, startRun, runFiles, MetricsLog, type RunDirOptions, type StartRunOptions } from './run-dir.js';
export { checkResume, readResumable, type ResumeWant } from './resume.js';
export { planSampling, estimateSamplingSeconds, SHORT_RUN_STEPS, type SamplingPlan } from './sampling-plan.js';
export { ditSpec, mmditSpec } from './model-spec.js';
export { Progress } from './progress.js';

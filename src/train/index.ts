/**
 * @module lavender/train
 */
// `lavender/train`: the training loop (one loop for every recipe: plain or ZeRO, one rank or data-parallel,
// gradient accumulation, activation checkpointing) and its two recipes (DiT sanity runs, text-to-image
// MMDiT), run directories and resume checks, sampling, the forward parity tool, the muP coordinate check and
// learning-rate sweep, model sizes and memory plans; prompt to pixels (T5, SDXL-VAE, generate) and the
// release's data preparation.
export {
  train, trainDistributed, formatMemoryReport,
  type TrainRecipe, type TrainParts, type TrainLoopOptions, type DistTrainOptions, type TrainResult, type StepData, type EmaSpec, type TrainableModel,
} from './loop.js';
export { makeTrainOptimizer, type TrainOptimizer, type OptimizerSpec, type DataParallelOptions } from './optimizer.js';
export { trainDiT, trainDiTDistributed, ditRecipe, modelFromCheckpoint, type TrainDiTOptions } from './train-dit.js';
export { trainT2I, trainT2IDistributed, t2iRecipe, type TrainT2IOptions } from './train-t2i.js';
export { sampleGrid, type SampleGridOptions } from './sample-dit.js';
export { sampleMMDiT, type SampleMMDiTOptions } from './sample-mmdit.js';
export { runForward, loadWeights, type ForwardOptions } from './forward.js';
export { coordCheck, widthGrowth, type CoordCheckOptions, type CoordCheckResult, type Parametrization } from './coord-check.js';
export { parametrizationGroups, parametrizationModelOptions, muPBaseConfig, TRAIN_PARAMETRIZATIONS, type TrainParametrization, type ParametrizationOptions } from './parametrization.js';
export { planSweep, runSweepHere, writeSweepTable, analyzeSweep, meanByRate, gridPoints, type SweepGrid, type SweepPlan, type SweepRow, type SweepEvent, type SweepAnalysis, type WidthOptimum } from './mup-sweep.js';
export { runSweepPoint, pointKey, lrLabel, readResult, tailMean, BLOWUP_FACTOR, type SweepSettings, type SweepPoint, type SweepRunResult } from './sweep-run.js';
export { modelInfo, type ModelInfo } from './model-info.js';
export { benchTrainStep, type StepBenchResult } from './bench-step.js';
export { checkRunDir, startRun, runFiles, MetricsLog, type RunDirOptions, type StartRunOptions } from './run-dir.js';
export { checkResume, readResumable, type ResumeWant } from './resume.js';
export { planSampling, estimateSamplingSeconds, SHORT_RUN_STEPS, type SamplingPlan } from './sampling-plan.js';
export { ditSpec, mmditSpec } from './model-spec.js';
export { Progress } from './progress.js';
export { generate, RELEASE_DEFAULTS, defaultsFor, fitPositions, latentSide, checkPipeline, type GenerateOptions, type Generated, type ReleaseDefaults } from './generate.js';
export { loadTextEncoder, encodeText, truncationNote, type TextEncoder, type EncodedText } from './text-encoder.js';
export { decodeLatents, encodeImages, writeImagesPng } from './vae-codec.js';
export { loadMMDiTForInference, mmditConfigFor, inferMMDiTConfig } from './mmdit-checkpoint.js';
export { prepareShards, readCaptions, quantizeEmbedding, type PrepareOptions, type PrepareReport } from './prepare-shards.js';

/**
 * @module lavender
 */
// lavender's public API.
import './backends/index.js';
export * from './ops/index.js';
export { Tensor, Storage } from './tensor/tensor.js';
export { scope, keep } from './tensor/scope.js';
export { noGrad, enableGrad, isGradEnabled } from './autograd/grad-mode.js';
export { backward } from './autograd/backward.js';
export { Generator, manualSeed, defaultGenerator } from './tensor/random.js';
export type { DType } from './tensor/dtype.js';
export type { Backend, BackendBuffer, View, FusedKernels } from './backends/backend.js';
export { registerBackend, registerBackendInstance, getBackend, backendNames, backendEntries, setDefaultDevice, getDefaultDevice } from './backends/registry.js';
export * as optim from './optim/index.js';
export { VERSION } from './version.js';
export * as nn from './nn/index.js';
export { DiT, DIT_PRESETS, resolveDiTConfig, type DiTConfig } from './models/dit.js';
export { MMDiT, MMDIT_PRESETS, resolveMMDiTConfig, type MMDiTConfig } from './models/mmdit.js';
export { inspectSafetensors, loadSafetensors, saveSafetensors, parseSafetensors } from './io/safetensors.js';
export { loadTorchCheckpoint, parseTorchCheckpoint } from './io/torch-pt.js';
export { saveTorchCheckpoint } from './io/torch-pt-write.js';

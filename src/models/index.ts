/**
 * @module lavender/models
 */
// `lavender/models`: the DiT of the MNIST/CIFAR sanity runs and the MMDiT of LavenderFlow (docs/models.md).
export { DiT, DIT_PRESETS, resolveDiTConfig, type DiTConfig } from './dit.js';
export { MMDiT, MMDIT_PRESETS, resolveMMDiTConfig, mmditHidden, type MMDiTConfig, type MMDiTOptions } from './mmdit.js';
export { bilinearResize, interpolationMatrix } from './interpolate.js';

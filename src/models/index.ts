/**
 * @module lavender/models
 */
// `lavender/models`: the DiT of the MNIST/CIFAR sanity runs, the MMDiT of LavenderFlow (docs/models.md), and the
// release's T5 text encoder and SDXL-VAE.
export { DiT, DIT_PRESETS, resolveDiTConfig, type DiTConfig } from './dit.js';
export { MMDiT, MMDIT_PRESETS, resolveMMDiTConfig, mmditHidden, type MMDiTConfig, type MMDiTOptions } from './mmdit.js';
export { bilinearResize, interpolationMatrix } from './interpolate.js';
export { T5Encoder, loadT5Encoder, resolveT5Config, relativePositionBuckets, type T5Config } from './t5.js';
export { AutoencoderKL, loadVAE, resolveVAEConfig, SDXL_VAE_CONFIG, type VAEConfig } from './vae.js';

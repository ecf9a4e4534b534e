// Latents <-> images through the SDXL VAE, in the MMDiT's latent space: model-space latents are
// (z - shift_factor) * scaling_factor of the VAE's z (0.13025 for SDXL), as the release trains on them.
import { writeFileAtomic } from '../io/byte-source.js';
import { encodePng, imageGrid, type PngChannels } from '../io/png.js';
import type { AutoencoderKL } from '../models/vae.js';
import { noGrad } from '../autograd/grad-mode.js';
import { add, mul } from '../ops/elementwise.js';
import { cast } from '../ops/movement.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** Model-space latents [B, C, h, w] -> images [B, 3, f*h, f*w] float32 (nominally [-1, 1], not clamped). */
export function decodeLatents(vae: AutoencoderKL, latents: Tensor): Tensor {
  const c = vae.config;
  if (latents.ndim !== 4 || latents.shape[1] !== c.latent_channels) {
    throw new Error(`decode: latents must be [B, ${c.latent_channels}, h, w] (the VAE's latent_channels is ${c.latent_channels}), got ${latents.describe()}`);
  }
  return noGrad(() => {
    const z = add(mul(cast(latents, 'float32'), 1 / c.scaling_factor), c.shift_factor);
    return vae.decode(z);
  });
}

/** Images [B, 3, H, W] in [-1, 1] -> model-space latents: the distribution's mean, or a sample of it. */
export function encodeImages(vae: AutoencoderKL, images: Tensor, o: { sample?: boolean; generator?: Generator } = {}): Tensor {
  const c = vae.config;
  return noGrad(() => {
    const d = vae.encode(cast(images, 'float32'));
    const z = o.sample ? vae.sample(d, o.generator) : d.mean;
    return mul(add(z, -c.shift_factor), c.scaling_factor);
  });
}

/** Write images [B, C, H, W] in [-1, 1] as one PNG: the image itself for B = 1, else a row-major grid. */
export function writeImagesPng(path: string, images: Tensor, cols?: number): void {
  const [B, C, H, W] = images.shape as [number, number, number, number];
  if (C !== 1 && C !== 3) throw new Error(`writeImagesPng: images must have 1 or 3 channels, got ${images.describe()}`);
  const grid = imageGrid(cast(images, 'float32').toArray() as Float32Array, B, C, H, W, cols ?? Math.ceil(Math.sqrt(B)), B === 1 ? 0 : 2);
  writeFileAtomic(path, [encodePng(grid.width, grid.height, grid.pixels, grid.channels as PngChannels)]);
}

// SDXL-VAE latents enter the models multiplied by this (the VAE's scaling_factor), in every data layout.
export const LATENT_SCALE = 0.13025;

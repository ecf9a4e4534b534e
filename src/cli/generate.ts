// `lavender generate`: prompt to PNG with the release's recipe and defaults, a progress bar on stderr,
// optionally a GIF of the trajectory (decoded every few steps) and the raw latents and images.
import { writeFileAtomic } from '../io/byte-source.js';
import { encodeGif } from '../io/gif.js';
import { imageGrid } from '../io/png.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { loadVAE } from '../models/vae.js';
import type { MMDiTConfig } from '../models/mmdit.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { defaultsFor, fitPositions, generate } from '../train/generate.js';
import { readJson } from '../train/forward.js';
import { loadMMDiTForInference } from '../train/mmdit-checkpoint.js';
import { loadTextEncoder, truncationNote } from '../train/text-encoder.js';
import { decodeLatents, writeImagesPng } from '../train/vae-codec.js';
import { intFlag, numberFlag, stringFlag, type Parsed } from './args.js';
import { required } from './pipeline.js';

/** A progress bar: redrawn in place on a terminal, a line per tenth of the run otherwise. */
function progress(total: number): (i: number) => void {
  const start = performance.now();
  const tty = process.stderr.isTTY === true;
  let lastTenth = -1;
  return (i) => {
    const el = (performance.now() - start) / 1000, per = el / i, eta = per * (total - i);
    const width = 30, done = Math.round((width * i) / total);
    const line = `generate: [${'='.repeat(done)}${done < width ? '>' : ''}${' '.repeat(Math.max(0, width - done - 1))}] step ${i}/${total}, ${per.toFixed(2)} s/step, ${eta.toFixed(0)} s left`;
    if (tty) process.stderr.write(`\r${line}${i === total ? '\n' : ''}`);
    else if (Math.floor((10 * i) / total) !== lastTenth || i === total) {
      lastTenth = Math.floor((10 * i) / total);
      process.stderr.write(`${line}\n`);
    }
  };
}

export function generateCommand(p: Parsed): number {
  const cmd = 'generate';
  if (!p.flags.has('prompt')) throw new Error('generate: --prompt TEXT is required');
  const text = (k: string, fallback: string) => (p.flags.has(k) ? (p.flags.get(k) === true ? '' : String(p.flags.get(k))) : fallback);
  const checkpoint = required(p, cmd, 'checkpoint'), t5 = required(p, cmd, 't5'), vaeDir = required(p, cmd, 'vae'), out = required(p, cmd, 'out');
  const device = stringFlag(p, 'backend', 'cpu');
  const config = p.flags.has('config') ? (readJson(stringFlag(p, 'config', ''), 'config') as unknown as MMDiTConfig) : undefined;
  const gif = p.flags.has('gif') ? stringFlag(p, 'gif', '') : undefined;
  const raw = p.flags.has('raw') ? stringFlag(p, 'raw', '') : undefined;
  if (p.flags.has('noise') && p.flags.has('batch')) throw new Error('generate: --batch comes from the noise tensor when --noise is given; drop --batch');
  scope(() => {
    // the small files first, so a bad folder fails before gigabytes of weights are read
    const noise = p.flags.has('noise') ? noiseFrom(stringFlag(p, 'noise', ''), device) : undefined;
    const vae = loadVAE(vaeDir, device);
    const te = loadTextEncoder(t5, { device });
    const { model, configFrom } = loadMMDiTForInference(checkpoint, device, config);
    const size = intFlag(p, 'size', model.config.max_seq >= 4096 ? 1024 : 512);
    const d = defaultsFor(size);
    const steps = intFlag(p, 'steps', d.steps), maxLength = intFlag(p, 'max-length', d.maxLength);
    process.stderr.write(`generate: MMDiT ${model.numParameters().toLocaleString('en')} parameters (config from ${configFrom}), ${size}x${size}, ${steps} steps, CFG ${numberFlag(p, 'cfg', d.cfg)}\n`);
    const latent = size / vae.factor;
    if (Number.isInteger(latent) && latent % model.config.patch_size === 0) {
      const note = fitPositions(model, latent);
      if (note) process.stderr.write(`generate: ${note}\n`);
    }
    const bar = progress(steps);
    const frames: Uint8Array[] = [];
    let frameSize = { width: 0, height: 0 };
    const every = Math.max(1, Math.ceil(steps / 10));
    const frame = (z: Tensor) => scope(() => {
      const img = decodeLatents(vae, z);
      const [B, C, H, W] = img.shape as [number, number, number, number];
      const g = imageGrid(img.toArray() as Float32Array, B, C, H, W, Math.ceil(Math.sqrt(B)), B === 1 ? 0 : 2);
      frameSize = g;
      frames.push(g.pixels);
    });
    const r = generate(model, te, vae, {
      prompt: text('prompt', ''), negative: text('negative', d.negative), size, steps, cfg: numberFlag(p, 'cfg', d.cfg), maxLength,
      seed: intFlag(p, 'seed', 0, true), batch: intFlag(p, 'batch', 1), noise,
      onTruncate: (which, cut) => process.stderr.write(`generate: ${truncationNote(text(which, which === 'negative' ? d.negative : ''), cut, maxLength)}\n`),
      onStep: (z, i) => {
        bar(i);
        if (gif && (i % every === 0 || i === steps)) frame(z);
      },
    });
    writeImagesPng(out, r.images);
    if (gif) writeFileAtomic(gif, [encodeGif([...frames, ...frames.slice(-1), ...frames.slice(-1)], frameSize.width, frameSize.height, 3, 40, true)]);
    if (raw) saveSafetensors(raw, { latents: r.latents, images: r.images }, { source: 'lavender generate', prompt: text('prompt', ''), checkpoint });
  });
  process.stderr.write(`wrote ${out}${gif ? `, ${gif}` : ''}${raw ? `, ${raw}` : ''}\n`);
  return 0;
}

function noiseFrom(path: string, device: string): Tensor {
  const { tensors } = loadSafetensors(path, { device, only: (n) => n === 'noise' });
  if (!tensors.noise) throw new Error(`${path}: no tensor 'noise' (the initial latents [B, C, h, w])`);
  return tensors.noise;
}

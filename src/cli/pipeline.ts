// `lavender encode-text`, `decode-latents`, `encode-images`: the T5 and SDXL-VAE ends of the pipeline
// as separate steps, reading and writing safetensors; `prepare-shards`: both ends over a folder of images.
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { loadVAE } from '../models/vae.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { encodeText, loadTextEncoder, truncationNote } from '../train/text-encoder.js';
import { decodeLatents, encodeImages, writeImagesPng } from '../train/vae-codec.js';
import { prepareShards } from '../train/prepare-shards.js';
import { intFlag, stringFlag, type Parsed } from './args.js';

/** The value of a required flag, or an error naming the command and the flag. */
export function required(p: Parsed, command: string, name: string): string {
  const v = stringFlag(p, name, '');
  if (!v) throw new Error(`${command}: --${name} is required`);
  return v;
}

export function encodeTextCommand(p: Parsed): number {
  const dir = required(p, 'encode-text', 't5');
  const out = required(p, 'encode-text', 'out');
  if (!p.flags.has('prompt')) throw new Error('encode-text: --prompt TEXT is required (--prompt "" encodes the empty prompt)');
  const prompt = p.flags.get('prompt') === true ? '' : String(p.flags.get('prompt'));
  const maxLength = intFlag(p, 'max-length', 128);
  scope(() => {
    const te = loadTextEncoder(dir, { device: stringFlag(p, 'backend', 'cpu'), padId: p.flags.has('pad-id') ? intFlag(p, 'pad-id', 0, true) : undefined });
    const r = encodeText(te, [prompt], maxLength);
    if (r.truncated[0]) process.stderr.write(`encode-text: ${truncationNote(prompt, r.truncated[0], maxLength)}\n`);
    saveSafetensors(out, { input_ids: r.inputIds, attention_mask: r.attentionMask, embeddings: r.embeddings }, {
      source: 'lavender encode-text', t5: dir, prompt, max_length: String(maxLength), pad_id: String(te.padId),
    });
  });
  process.stderr.write(`wrote input_ids, attention_mask [1, ${maxLength}] and embeddings to ${out}\n`);
  return 0;
}

/** The named tensor of a safetensors file, checked for rank, or an error naming the file and tensor. */
function tensorFrom(path: string, name: string, what: string, device: string): Tensor {
  const { tensors } = loadSafetensors(path, { device, only: (n) => n === name });
  const t = tensors[name];
  if (!t) throw new Error(`${path}: no tensor '${name}' (${what})`);
  if (t.ndim !== 4 || !['float32', 'float16', 'bfloat16', 'float64'].includes(t.dtype)) throw new Error(`${path}: '${name}' must be a float tensor ${what}, got ${t.describe()}`);
  return t;
}

export function decodeLatentsCommand(p: Parsed): number {
  const dir = required(p, 'decode-latents', 'vae'), input = required(p, 'decode-latents', 'latents'), out = required(p, 'decode-latents', 'out');
  const raw = p.flags.has('raw') ? stringFlag(p, 'raw', '') : undefined;
  const device = stringFlag(p, 'backend', 'cpu');
  scope(() => {
    const latents = tensorFrom(input, 'latents', '[B, C, h, w] in model space (scaled by the VAE\'s scaling_factor)', device);
    const vae = loadVAE(dir, device);
    if (latents.shape[1] !== vae.config.latent_channels) {
      throw new Error(`${input}: 'latents' has ${latents.shape[1]} channels but the VAE in ${dir} takes ${vae.config.latent_channels} (latent_channels), got ${latents.describe()}`);
    }
    const images = decodeLatents(vae, latents);
    writeImagesPng(out, images);
    if (raw) saveSafetensors(raw, { images }, { source: 'lavender decode-latents', vae: dir });
  });
  process.stderr.write(`wrote ${out}${raw ? ` and ${raw}` : ''}\n`);
  return 0;
}

export function encodeImagesCommand(p: Parsed): number {
  const dir = required(p, 'encode-images', 'vae'), input = required(p, 'encode-images', 'images'), out = required(p, 'encode-images', 'out');
  if (p.flags.has('seed') && !p.flags.has('sample')) throw new Error('encode-images: --seed applies with --sample only (the mean is deterministic)');
  const device = stringFlag(p, 'backend', 'cpu');
  scope(() => {
    const images = tensorFrom(input, 'images', '[B, 3, H, W] in [-1, 1]', device);
    const vae = loadVAE(dir, device);
    const latents = encodeImages(vae, images, { sample: p.flags.has('sample'), generator: new Generator(intFlag(p, 'seed', 0, true)) });
    saveSafetensors(out, { latents }, { source: 'lavender encode-images', vae: dir, latents: p.flags.has('sample') ? 'sample' : 'mean', scaling_factor: String(vae.config.scaling_factor) });
  });
  process.stderr.write(`wrote latents to ${out}\n`);
  return 0;
}

export function prepareShardsCommand(p: Parsed): number {
  const cmd = 'prepare-shards';
  const images = required(p, cmd, 'images'), captions = required(p, cmd, 'captions'), t5 = required(p, cmd, 't5'), vaeDir = required(p, cmd, 'vae'), out = required(p, cmd, 'out');
  const latents = stringFlag(p, 'latents', 'sample');
  if (latents !== 'sample' && latents !== 'mean') throw new Error(`prepare-shards: --latents expects sample (the release) or mean, got '${latents}'`);
  const device = stringFlag(p, 'backend', 'cpu');
  const r = scope(() => {
    const vae = loadVAE(vaeDir, device);
    const te = loadTextEncoder(t5, { device });
    return prepareShards(te, vae, {
      images, captions, out, size: intFlag(p, 'size', 256), tokens: intFlag(p, 'tokens', 256), batch: intFlag(p, 'batch', 4),
      latents, seed: intFlag(p, 'seed', 0, true),
      warn: (m) => process.stderr.write(`prepare-shards: ${m}\n`),
      progress: (done, total) => process.stderr.write(`prepare-shards: ${done}/${total} images\n`),
    });
  });
  process.stderr.write(`wrote ${r.written} samples to ${out}${r.skipped.length ? ` (skipped ${r.skipped.length}: ${r.skipped.slice(0, 5).join(', ')}${r.skipped.length > 5 ? ', ...' : ''})` : ''}\n`);
  return 0;
}

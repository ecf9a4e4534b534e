// lavender prepare-shards on a folder of small PNG and JPEG files with the T5 and VAE fixtures: the release's
// columns (np16 VAE latents, uint8 T5 embeddings of the caption's tokens), unreadable or uncaptioned files
// named and skipped, nothing half-written on failure, and `lavender train t2i` reading the result unchanged.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import * as L from '../src/index.js';
import { main } from '../src/cli/main.js';
import { centerCropResize, readImage } from '../src/data/images.js';
import { float16BitsToFloat32, openMds } from '../src/data/mds/index.js';
import { encodePng } from '../src/io/png.js';
import { loadVAE } from '../src/models/vae.js';
import { encodeText, loadTextEncoder } from '../src/train/text-encoder.js';
import { encodeImages } from '../src/train/vae-codec.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const T5 = join(root, 'test', 'fixtures', 't5', 'umt5');
const VAE = join(root, 'test', 'fixtures', 'vae');
const dir = mkdtempSync(join(tmpdir(), 'lavender-prep-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...argv: string[]): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((c: string | Uint8Array) => ((stderr += typeof c === 'string' ? c : Buffer.from(c).toString()), true)) as typeof process.stderr.write;
  try {
    return { code: await main(argv), stderr };
  } finally {
    process.stderr.write = write;
  }
}

/** A w x h RGB image whose colour varies with position. */
function pixels(w: number, h: number, seed: number): Uint8Array {
  const p = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) p[i * 3 + c] = ((i % w) * 5 + Math.floor(i / w) * 3 + c * 60 + seed * 17) & 255;
  return p;
}

const images = join(dir, 'images');
mkdirSync(images);
writeFileSync(join(images, 'a.png'), encodePng(40, 30, pixels(40, 30, 1), 3));
{
  const rgba = new Uint8Array(30 * 50 * 4), rgb = pixels(30, 50, 2);
  for (let i = 0; i < 30 * 50; i++) rgba.set([rgb[i * 3]!, rgb[i * 3 + 1]!, rgb[i * 3 + 2]!, 255], i * 4);
  writeFileSync(join(images, 'b.jpg'), jpeg.encode({ data: rgba, width: 30, height: 50 }, 95).data);
}
writeFileSync(join(images, 'c.png'), encodePng(36, 36, pixels(36, 36, 3), 3));
writeFileSync(join(images, 'bad.png'), Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4, 5]));
writeFileSync(join(images, 'extra.png'), encodePng(8, 8, pixels(8, 8, 4), 3));
writeFileSync(join(images, 'notes.txt'), 'not an image');
const captions = join(dir, 'captions.tsv');
writeFileSync(captions, 'a.png\ta photo of a cat\nb.jpg\ta red chair by the river\nc.png\tsunset\nbad.png\tbroken\nghost.png\tno such file\n');

test('center crop and resize: the centered square, a constant image stays constant', () => {
  const img = { width: 6, height: 2, rgb: new Uint8Array(36) };
  for (let x = 0; x < 6; x++) for (let y = 0; y < 2; y++) img.rgb.set(x === 0 || x === 5 ? [255, 0, 0] : [0, 255, 255], (y * 6 + x) * 3);
  const out = centerCropResize(img, 4); // the middle 2x2 (cyan), upscaled
  assert.deepEqual(Array.from(out.subarray(0, 16)), new Array(16).fill(-1)); // R
  assert.deepEqual(Array.from(out.subarray(16, 32)), new Array(16).fill(1)); // G
});

test('prepare-shards writes the release columns; skipped files are named; train t2i reads the shards', async () => {
  const out = join(dir, 'shards');
  const r = await cli('prepare-shards', '--images', images, '--captions', captions, '--t5', T5, '--vae', VAE, '--out', out, '--size', '32', '--tokens', '8', '--latents', 'mean', '--batch', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /bad\.png: decodePng: .*; skipped/);
  assert.match(r.stderr, /extra\.png: no caption in .*captions\.tsv; skipped/);
  assert.match(r.stderr, /1 caption\(s\) name no image in .*: ghost\.png/);
  assert.match(r.stderr, /wrote 3 samples to .* \(skipped 2: extra\.png, bad\.png\)/);
  const ds = openMds(out);
  assert.equal(ds.length, 3);
  assert.deepEqual(Object.keys(ds.columns).sort(), ['caption', 't5_xl_embeddings', 'vae_256x256_latents']);
  L.scope(() => {
    const vae = loadVAE(VAE), te = loadTextEncoder(T5);
    const s = ds.get(1);
    assert.equal(s.caption, 'a red chair by the river');
    // latents: the VAE mean of the cropped, resized JPEG, unscaled, in float16
    const px = centerCropResize(readImage(join(images, 'b.jpg')), 32);
    const want = L.div(encodeImages(vae, L.tensor(px, { shape: [1, 3, 32, 32] })), 0.13025).toArray();
    const got = float16BitsToFloat32(s.vae_256x256_latents as Uint16Array);
    assert.equal(got.length, 4 * 8 * 8);
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) <= 2e-3 * Math.max(1, Math.abs(want[i]!)), `latent ${i}: ${v} vs ${want[i]}`));
    // embeddings: the caption's tokens only (padding left to the loader), quantised to 1/510
    const enc = encodeText(te, ['a red chair by the river'], 8);
    const real = Array.from(enc.attentionMask.toArray()).reduce((a, b) => a + b, 0);
    const q = s.t5_xl_embeddings as Uint8Array;
    assert.equal(q.length, real * 32);
    const emb = enc.embeddings.toArray();
    q.forEach((b, i) => assert.ok(Math.abs(b / 255 * 0.5 - 0.25 - Math.max(-0.25, Math.min(0.25, emb[i]!))) <= 0.5 / 255 / 2 + 1e-7, `embedding ${i}`));
  });
  const run = join(dir, 'run');
  const t = await cli('train', 't2i', '--data', out, '--preset', 'mmdit-tiny', '--latent-size', '8', '--tokens', '8', '--steps', '2', '--batch', '2', '--out', run, '--checkpoint-every', '2');
  assert.equal(t.code, 0, t.stderr);
  assert.ok(existsSync(join(run, 'checkpoint.safetensors')), t.stderr);
});

test('prepare-shards: a folder of unreadable images stops with nothing written; a non-empty output is refused', async () => {
  const bad = join(dir, 'bad');
  mkdirSync(bad);
  writeFileSync(join(bad, 'x.jpg'), Uint8Array.from([0xff, 0xd8, 0xff, 0, 1, 2]));
  writeFileSync(join(dir, 'bad.tsv'), 'x.jpg\tcaption\n');
  const out = join(dir, 'never');
  const r = await cli('prepare-shards', '--images', bad, '--captions', join(dir, 'bad.tsv'), '--t5', T5, '--vae', VAE, '--out', out, '--size', '32', '--tokens', '8');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /x\.jpg: not a readable JPEG .*; skipped/);
  assert.match(r.stderr, /prepare-shards: no usable image in .* \(1 image file\(s\), 1 skipped\); nothing written/);
  assert.equal(existsSync(out), false);
  assert.deepEqual(require_readdir(dir).filter((f) => f.startsWith('never')), []);
  const r2 = await cli('prepare-shards', '--images', images, '--captions', captions, '--t5', T5, '--vae', VAE, '--out', images, '--size', '32');
  assert.match(r2.stderr, /images exists and is not empty/);
});

import { readdirSync as require_readdir } from 'node:fs';

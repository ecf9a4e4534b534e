// The prompt-to-pixels commands on tiny random models (the committed T5 fixtures; VAE and MMDiT made here),
// run in-process through the CLI's main(): outputs, shapes, determinism, and the bad-input errors.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { main } from '../src/cli/main.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { loadTextEncoder } from '../src/train/text-encoder.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { decodePng } from '../src/io/png.js';
import { existsSync, readFileSync } from 'node:fs';
import { relErr } from './harness/compare.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const T5 = join(root, 'test', 'fixtures', 't5', 'umt5');
const VAE = join(root, 'test', 'fixtures', 'vae');
const SCALE = 0.13025;
const dir = mkdtempSync(join(tmpdir(), 'lavender-pipeline-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run the CLI in this process: exit code and what it wrote to stderr. */
async function cli(...argv: string[]): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(argv), stderr };
  } finally {
    process.stderr.write = write;
  }
}

test('encode-text: ids + EOS padded to max length, mask, masked embeddings equal to the encoder on those ids', async () => {
  const out = join(dir, 'emb.safetensors');
  const r = await cli('encode-text', '--t5', T5, '--prompt', 'a photo of a cat', '--max-length', '16', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  L.scope(() => {
    const { tensors: t, metadata } = loadSafetensors(out);
    assert.deepEqual([...t.input_ids!.shape], [1, 16]);
    assert.deepEqual([...t.attention_mask!.shape], [1, 16]);
    assert.deepEqual([...t.embeddings!.shape], [1, 16, 32]);
    const te = loadTextEncoder(T5);
    const ids = te.tokenizer.encode('a photo of a cat');
    assert.deepEqual(t.input_ids!.tolist(), [[...ids, 2, ...new Array(15 - ids.length).fill(0)]]);
    assert.deepEqual(t.attention_mask!.tolist(), [[...new Array(ids.length + 1).fill(1), ...new Array(15 - ids.length).fill(0)]]);
    const want = L.noGrad(() => te.model.forward(t.input_ids!, t.attention_mask!));
    assert.deepEqual(Array.from(t.embeddings!.toArray()), Array.from(want.toArray()));
    assert.equal(metadata.prompt, 'a photo of a cat');
  });
});

test('encode-text: the empty prompt is EOS alone; --pad-id overrides the pad; a long prompt is cut and said so', async () => {
  const out = join(dir, 'empty.safetensors');
  let r = await cli('encode-text', '--t5', T5, '--prompt', '', '--max-length', '4', '--pad-id', '1', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(loadSafetensors(out).tensors.input_ids!.tolist(), [[2, 1, 1, 1]]);
  r = await cli('encode-text', '--t5', T5, '--prompt', 'a beautiful watercolor painting of a castle', '--max-length', '5', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /encode-text: the prompt "a beautiful watercolor painting of a \.\.\." is \d+ tokens; kept the first 4 and EOS \(max length 5\), dropped \d+/);
  assert.equal((loadSafetensors(out).tensors.input_ids!.tolist() as number[][])[0]![4], 2);
});

test('encode-text: a folder without a tokenizer, and missing flags, are clear errors', async () => {
  let r = await cli('encode-text', '--t5', dir, '--prompt', 'x', '--out', join(dir, 'x.safetensors'));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /lavender encode-text: .*: no tokenizer in the folder \(looked for tokenizer\.json, spiece\.model, tokenizer\.model\)/);
  r = await cli('encode-text', '--t5', T5, '--out', join(dir, 'x.safetensors'));
  assert.match(r.stderr, /encode-text: --prompt TEXT is required/);
});

test('decode-latents: model-space latents divided by scaling_factor, decoded to a PNG and --raw images', async () => {
  const io = loadSafetensors(join(VAE, 'io.safetensors')).tensors;
  const inp = join(dir, 'lat.safetensors'), png = join(dir, 'img.png'), raw = join(dir, 'raw.safetensors');
  saveSafetensors(inp, { latents: L.mul(io.latents!, SCALE) });
  const r = await cli('decode-latents', '--vae', VAE, '--latents', inp, '--out', png, '--raw', raw);
  assert.equal(r.code, 0, r.stderr);
  const images = loadSafetensors(raw).tensors.images!;
  assert.ok(relErr(images, io.decoded!) < 1e-4, `decoded vs PyTorch: ${relErr(images, io.decoded!)}`);
  const img = decodePng(new Uint8Array(readFileSync(png)));
  assert.deepEqual([img.width, img.height, img.channels], [2 * 24 + 3 * 2, 24 + 2 * 2, 3]); // two images side by side, 2 px apart
  const px = Array.from(images.toArray()).slice(0, 1)[0]!; // R of the first pixel of image 0
  assert.equal(img.pixels[(2 * img.width + 2) * 3], Math.max(0, Math.min(255, Math.round((px + 1) * 127.5))));
});

test('decode-latents: latents with the wrong channel count are refused, nothing is written', async () => {
  const inp = join(dir, 'lat16.safetensors'), png = join(dir, 'never.png');
  saveSafetensors(inp, { latents: L.zeros([1, 16, 4, 4]) });
  const r = await cli('decode-latents', '--vae', VAE, '--latents', inp, '--out', png);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /lat16\.safetensors: 'latents' has 16 channels but the VAE in .* takes 4 \(latent_channels\)/);
  assert.equal(existsSync(png), false);
  saveSafetensors(inp, { x: L.zeros([1, 4, 4, 4]) });
  assert.match((await cli('decode-latents', '--vae', VAE, '--latents', inp, '--out', png)).stderr, /lat16\.safetensors: no tensor 'latents'/);
});

test('encode-images: the mean times scaling_factor, or a seeded sample', async () => {
  const io = loadSafetensors(join(VAE, 'io.safetensors')).tensors;
  const inp = join(dir, 'images.safetensors'), out = join(dir, 'enc.safetensors');
  saveSafetensors(inp, { images: io.images! });
  let r = await cli('encode-images', '--vae', VAE, '--images', inp, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const mean = loadSafetensors(out).tensors.latents!;
  assert.ok(relErr(mean, L.mul(io.mean!, SCALE)) < 1e-4);
  const draw = async (seed: string) => {
    const res = await cli('encode-images', '--vae', VAE, '--images', inp, '--out', out, '--sample', '--seed', seed);
    assert.equal(res.code, 0, res.stderr);
    return Array.from(loadSafetensors(out).tensors.latents!.toArray());
  };
  const a = await draw('3'), b = await draw('3'), c = await draw('4');
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.some((v, i) => Math.abs(v - mean.toArray()[i]!) > 1e-3), 'a sample differs from the mean');
  r = await cli('encode-images', '--vae', VAE, '--images', inp, '--out', out, '--seed', '3');
  assert.match(r.stderr, /--seed applies with --sample only/);
});

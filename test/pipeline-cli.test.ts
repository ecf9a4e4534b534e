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
import { saveTorchCheckpoint } from '../src/io/torch-pt-write.js';
import { loadMMDiTForInference } from '../src/train/mmdit-checkpoint.js';
import { encodeText } from '../src/train/text-encoder.js';
import { loadVAE } from '../src/models/vae.js';

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

// ---- generate -------------------------------------------------------------------------------------------
// A tiny MMDiT whose text width is the T5 fixture's d_model (32) and whose latents are the VAE fixture's
// (4 channels, factor 4): 32x32 images are 8x8 latents, 4x4 patches = the 16 positions of its table.
const MMDIT_CFG = { dim: 64, n_layers: 2, n_double_layers: 1, n_heads: 4, global_conddim: 64, cond_seq_dim: 32, max_seq: 16 };

function tinyCheckpoint(path: string, cfg = MMDIT_CFG): void {
  L.scope(() => {
    L.manualSeed(7);
    const m = new L.MMDiT(cfg);
    // random everywhere (the release's init zeroes the modulations), stored float16 like ema1.pt
    const sd: Record<string, L.Tensor> = {};
    for (const [k, p] of m.namedParameters()) sd[k] = L.mul(L.randn([...p.shape]), 0.3).to('float16');
    saveTorchCheckpoint(path, sd);
  });
}

const gen = (ckpt: string, ...extra: string[]) => cli('generate', '--prompt', 'a red chair', '--checkpoint', ckpt, '--t5', T5, '--vae', VAE, '--size', '32', '--steps', '3', '--cfg', '3', '--max-length', '8', ...extra);

test('generate: fp16 .pt checkpoint (config from its shapes), PNG and --raw of the right shapes, deterministic by seed', async () => {
  const ckpt = join(dir, 'tiny.pt');
  tinyCheckpoint(ckpt);
  const png = join(dir, 'g.png'), raw = join(dir, 'g.safetensors'), raw2 = join(dir, 'g2.safetensors'), raw3 = join(dir, 'g3.safetensors');
  let r = await gen(ckpt, '--out', png, '--raw', raw, '--seed', '1');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /config from the tensor shapes/);
  assert.match(r.stderr, /generate: \[=+\] step 3\/3/);
  const a = loadSafetensors(raw).tensors;
  assert.deepEqual([...a.latents!.shape], [1, 4, 8, 8]);
  assert.deepEqual([...a.images!.shape], [1, 3, 32, 32]);
  const img = decodePng(new Uint8Array(readFileSync(png)));
  assert.deepEqual([img.width, img.height, img.channels], [32, 32, 3]);
  r = await gen(ckpt, '--out', png, '--raw', raw2, '--seed', '1');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Array.from(loadSafetensors(raw2).tensors.images!.toArray()), Array.from(a.images!.toArray()));
  r = await gen(ckpt, '--out', png, '--raw', raw3, '--seed', '2');
  assert.notDeepEqual(Array.from(loadSafetensors(raw3).tensors.latents!.toArray()), Array.from(a.latents!.toArray()));
});

test('generate: one step is z - (v_neg + cfg (v_cond - v_neg)) at t = 1, decoded; --noise replaces the seeded latents', async () => {
  const ckpt = join(dir, 'tiny1.pt'), noisePath = join(dir, 'noise.safetensors'), raw = join(dir, 'one.safetensors');
  tinyCheckpoint(ckpt);
  L.scope(() => saveSafetensors(noisePath, { noise: L.randn([2, 4, 8, 8], { generator: new L.Generator(5) }) }));
  const r = await cli('generate', '--prompt', 'a red chair', '--negative', 'blurry', '--checkpoint', ckpt, '--t5', T5, '--vae', VAE, '--size', '32', '--steps', '1', '--cfg', '3', '--max-length', '8', '--noise', noisePath, '--out', join(dir, 'one.png'), '--raw', raw);
  assert.equal(r.code, 0, r.stderr);
  L.scope(() => {
    const { model } = loadMMDiTForInference(ckpt, 'cpu');
    const te = loadTextEncoder(T5);
    const z = loadSafetensors(noisePath).tensors.noise!;
    const enc = encodeText(te, ['a red chair', 'blurry'], 8).embeddings;
    const t = L.ones([2]);
    const v = L.noGrad(() => {
      const vc = model.forward(z, t, L.expand(L.slice(enc, 0, 0, 1), [2, 8, 32]));
      const vu = model.forward(z, t, L.expand(L.slice(enc, 0, 1, 2), [2, 8, 32]));
      return L.add(vu, L.mul(L.sub(vc, vu), 3));
    });
    const want = L.sub(z, v);
    const got = loadSafetensors(raw).tensors;
    assert.ok(relErr(got.latents!, want) < 1e-5, `latents: ${relErr(got.latents!, want)}`);
    const images = L.noGrad(() => loadVAE(VAE).decode(L.mul(want, 1 / SCALE)));
    assert.ok(relErr(got.images!, images) < 1e-4, `images: ${relErr(got.images!, images)}`);
  });
});

test('generate: a batch with --gif writes a grid and an animation; the positional table is resized for another size', async () => {
  const ckpt = join(dir, 'tiny2.pt');
  tinyCheckpoint(ckpt);
  const png = join(dir, 'b.png'), gif = join(dir, 'b.gif');
  const r = await cli('generate', '--prompt', 'a red chair', '--checkpoint', ckpt, '--t5', T5, '--vae', VAE, '--size', '48', '--steps', '2', '--max-length', '8', '--batch', '2', '--gif', gif, '--out', png);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /positional table resized from 4x4 to 6x6 \(extend_pe\)/);
  const img = decodePng(new Uint8Array(readFileSync(png)));
  assert.deepEqual([img.width, img.height], [2 * 48 + 3 * 2, 48 + 2 * 2]);
  assert.equal(readFileSync(gif).subarray(0, 6).toString(), 'GIF89a');
});

test('generate: mismatched models, bad noise and a missing checkpoint are clear errors, nothing written', async () => {
  const ckpt = join(dir, 'wide.pt'), png = join(dir, 'never.png');
  tinyCheckpoint(ckpt, { ...MMDIT_CFG, cond_seq_dim: 48 });
  let r = await gen(ckpt, '--out', png);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /generate: the T5 encoder's width d_model 32 .* is not the MMDiT's cond_seq_dim 48/);
  const good = join(dir, 'tiny3.pt'), noise = join(dir, 'badnoise.safetensors');
  tinyCheckpoint(good);
  L.scope(() => saveSafetensors(noise, { noise: L.zeros([1, 4, 6, 6]) }));
  r = await gen(good, '--out', png, '--noise', noise);
  assert.match(r.stderr, /generate: the noise must be \[B, 4, 8, 8\] for --size 32, got 'noise' float32\[1, 4, 6, 6\] on cpu/);
  r = await gen(join(dir, 'nope.pt'), '--out', png);
  assert.match(r.stderr, /nope\.pt: cannot read PyTorch checkpoint: no such file/);
  assert.equal(existsSync(png), false);
});

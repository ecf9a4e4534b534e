// The SDXL-VAE (diffusers AutoencoderKL) against a PyTorch AutoencoderKL written from the published
// architecture (scripts/make-vae-fixtures.py): a 3-level random config in a diffusers folder; encode's
// mean and log-variance and decode's images within 1e-4 relative. Then the banded forward-only conv2d
// against the differentiable one, and the errors for broken folders and wrong latents.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { loadVAE } from '../src/models/vae.js';
import { relErr } from './harness/compare.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const VAE = join(root, 'test', 'fixtures', 'vae');
const dir = mkdtempSync(join(tmpdir(), 'lavender-vae-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('AutoencoderKL encode (mean, logvar) and decode match PyTorch within 1e-4', () => {
  L.scope(() => {
    const vae = loadVAE(VAE);
    assert.equal(vae.factor, 4);
    const { tensors: io } = loadSafetensors(join(VAE, 'io.safetensors'));
    const { mean, logvar } = L.noGrad(() => vae.encode(io.images!));
    assert.ok(relErr(mean, io.mean!) < 1e-4, `mean: ${relErr(mean, io.mean!)}`);
    assert.ok(relErr(logvar, io.logvar!) < 1e-4, `logvar: ${relErr(logvar, io.logvar!)}`);
    const decoded = L.noGrad(() => vae.decode(io.latents!));
    assert.ok(relErr(decoded, io.decoded!) < 1e-4, `decoded: ${relErr(decoded, io.decoded!)}`);
  });
});

test('float16 weights kept float16 give the same images as their float32 values', () => {
  L.scope(() => {
    const d = join(dir, 'f16');
    mkdirSync(d, { recursive: true });
    copyFileSync(join(VAE, 'config.json'), join(d, 'config.json'));
    const { tensors } = loadSafetensors(join(VAE, 'diffusion_pytorch_model.safetensors'));
    saveSafetensors(join(d, 'diffusion_pytorch_model.safetensors'), Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, v.to('float16')])));
    const half = loadVAE(d);
    assert.equal(half.decoder.conv_in.weight.dtype, 'float16');
    const full = loadVAE(d);
    full.loadStateDict(Object.fromEntries([...full.namedParameters()].map(([k, p]) => [k, L.keep(p.to('float32'))])), { assign: true });
    const z = L.randn([1, 4, 3, 3]);
    assert.deepEqual(Array.from(L.noGrad(() => half.decode(z)).toArray()), Array.from(L.noGrad(() => full.decode(z)).toArray()));
  });
});

test('the forward-only (banded) conv2d equals the differentiable im2col conv2d', () => {
  L.scope(() => {
    for (const [stride, padding, k] of [[1, 1, 3], [2, 0, 3], [1, 0, 1], [2, 1, 3]] as const) {
      const x = L.randn([2, 5, 9, 7]), w = L.randn([6, 5, k, k]), b = L.randn([6]);
      const fast = L.noGrad(() => L.conv2d(x, w, b, { stride, padding }));
      const xg = x.alias().requiresGrad_();
      const slow = L.conv2d(xg, w, b, { stride, padding });
      assert.deepEqual([...fast.shape], [...slow.shape]);
      assert.ok(relErr(fast, slow) < 1e-6, `stride ${stride} padding ${padding} k ${k}: ${relErr(fast, slow)}`);
    }
  });
});

test('broken VAE folders and wrong latents: clear errors', () => {
  L.scope(() => {
    const d = join(dir, 'broken');
    mkdirSync(d, { recursive: true });
    assert.throws(() => loadVAE(d), new RegExp(`${d}: no config\\.json in the folder`));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ block_out_channels: [8, 12], norm_num_groups: 4, up_block_types: ['UpBlock2D', 'UpDecoderBlock2D'] }));
    assert.throws(() => loadVAE(d), /config\.json: .*'up_block_types' must be 2 x "UpDecoderBlock2D"/);
    copyFileSync(join(VAE, 'config.json'), join(d, 'config.json'));
    assert.throws(() => loadVAE(d), new RegExp(`${d}: no weights in the folder \\(looked for diffusion_pytorch_model\\.safetensors`));
    const { tensors } = loadSafetensors(join(VAE, 'diffusion_pytorch_model.safetensors'));
    delete tensors['decoder.conv_out.bias'];
    tensors['encoder.conv_in.weight'] = L.zeros([8, 4, 3, 3]);
    saveSafetensors(join(d, 'diffusion_pytorch_model.safetensors'), tensors);
    assert.throws(() => loadVAE(d), /mis-shaped: encoder\.conv_in\.weight: checkpoint \[8, 4, 3, 3\] vs model \[8, 3, 3, 3\] \| missing: decoder\.conv_out\.bias/);
    const vae = loadVAE(VAE);
    assert.throws(() => vae.decode(L.zeros([1, 16, 4, 4])), /AutoencoderKL\.decode: latents must be \[B, 4, h, w\] \(this VAE has 4 latent channels\), got float32\[1, 16, 4, 4\]/);
    assert.throws(() => vae.encode(L.zeros([1, 3, 10, 12])), /images must be \[B, 3, H, W\] with H and W multiples of 4/);
  });
});

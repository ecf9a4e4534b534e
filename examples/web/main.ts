// Browser entry of the WebGPU demo: open navigator.gpu, register the webgpu backend, run the tiny DiT
// (demo.ts) and show the numbers. Reads are asynchronous in a browser: backend.readAsync.
import { initWebGpu } from '../../src/backends/webgpu/index.js';
import type { Tensor } from '../../src/index.js';
import { runDemo } from './demo.js';

const out = document.getElementById('log')!;
const reporting = new URLSearchParams(location.search).has('report');
const log = (s: string): void => {
  out.textContent += `${s}\n`;
  console.log(s);
  if (reporting) void fetch('/log', { method: 'POST', body: s }).catch(() => {});
};

async function main(): Promise<void> {
  log(`navigator.gpu: ${'gpu' in navigator ? 'present' : 'absent'}`);
  const backend = await initWebGpu();
  log(`webgpu adapter: ${backend.device.adapter}`);
  const read = async (t: Tensor): Promise<ArrayLike<number>> => {
    const c = t.contiguous();
    const data = await backend.readAsync(c.storage.buf);
    const r = Array.from(data).slice(c.offset, c.offset + c.size);
    if (c !== t) c.dispose();
    return r;
  };
  const result = await runDemo('webgpu', read, 3, log);
  log(`done in ${result.ms.toFixed(0)} ms`);
  document.title = 'lavender webgpu demo: done';
  (window as unknown as { lavenderResult: unknown }).lavenderResult = result;
  await report({ ok: true, result });
}

/** When served by examples/web/serve.mjs, post the outcome back (headless test). */
async function report(body: unknown): Promise<void> {
  if (!reporting) return;
  await fetch('/result', { method: 'POST', body: JSON.stringify(body) }).catch(() => {});
}

main().catch(async (e: Error) => {
  log(`error: ${e.message}`);
  document.title = 'lavender webgpu demo: error';
  await report({ ok: false, error: e.message, stack: e.stack });
});

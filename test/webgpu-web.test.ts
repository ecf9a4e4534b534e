// The browser demo (examples/web): bundle it, run it in headless Chromium with software WebGPU
// (SwiftShader), and compare its training losses with the same run on cpu. Skipped where Chromium is
// not installed (`apt-get install chromium`; .ci/run installs it).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runDemo } from '../examples/web/demo.js';

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
const web = fileURLToPath(new URL('../../examples/web/', import.meta.url));

test('browser demo: a tiny DiT forward + 3 training steps on WebGPU in headless Chromium matches cpu', { skip: chromium ? false : 'no chromium installed', timeout: 300_000 }, async () => {
  execFileSync(process.execPath, [`${web}build.mjs`], { stdio: 'pipe' });
  const out = execFileSync(process.execPath, [`${web}serve.mjs`, '--headless', '--chromium', chromium!, '--timeout', '240'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 280_000 });
  const r = JSON.parse(out) as { ok: boolean; error?: string; result: { losses: number[]; forwardShape: number[]; trainedMeanAbs: number } };
  assert.ok(r.ok, r.error);
  const cpu = await runDemo('cpu', async (t) => t.toArray(), 3);
  assert.deepEqual(r.result.forwardShape, cpu.forwardShape);
  r.result.losses.forEach((l, i) => assert.ok(Math.abs(l - cpu.losses[i]!) < 1e-2, `step ${i + 1}: webgpu ${l} vs cpu ${cpu.losses[i]}`));
  assert.ok(Math.abs(r.result.trainedMeanAbs - cpu.trainedMeanAbs) < 1e-2 * Math.max(1, cpu.trainedMeanAbs));
});

// Parameter counts built on the meta device, against PyTorch's counts (scripts/count-mmdit-params.py).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { modelInfo } from '../src/train/model-info.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const torchCounts = JSON.parse(readFileSync(`${root}test/fixtures/mmdit/param-counts.json`, 'utf8')) as Record<string, { total: number }>;

for (const [name, want] of Object.entries(torchCounts)) {
  test(`${name}: parameter count equals PyTorch's (${want.total.toLocaleString('en')})`, () => {
    assert.equal(modelInfo(name, 1).parameters, want.total);
  });
}

test('ZeRO-2 bytes per rank: replicated bf16 weights, partitioned grads, master weights and Adam state', () => {
  const r = modelInfo('lavenderflow-3072', 8);
  const P = torchCounts['lavenderflow-3072']!.total;
  assert.deepEqual(r.zero2.bytes_per_rank, {
    weights_bf16: 2 * P, gradients_bf16: (2 * P) / 8, master_weights_fp32: (4 * P) / 8, adam_state_fp32: (8 * P) / 8,
    total: 2 * P + (14 * P) / 8,
  });
});

test('the meta device allocates nothing and refuses to read data', () => {
  const meta = L.getBackend('meta');
  const before = meta.liveBuffers();
  const m = new L.MMDiT(L.MMDIT_PRESETS['lavenderflow-2560-highres']!, { device: 'meta' });
  assert.ok(m.numParameters() > 4e9);
  assert.throws(() => m.positional_encoding.toArray(), /meta tensors have shapes but no data/);
  for (const p of m.parameters()) p.dispose();
  assert.ok(meta.liveBuffers() - before < 50);
});

test('lavender info --model prints JSON; unknown presets are named', () => {
  const r = spawnSync('node', ['bin/lavender.js', 'info', '--model', 'dit-mnist', '--json', '--ranks', '2'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.parameters, 610788);
  const bad = spawnSync('node', ['bin/lavender.js', 'info', '--model', 'gpt5'], { cwd: root, encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /unknown model preset 'gpt5'/);
});

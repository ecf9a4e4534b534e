// The DiT against PyTorch on random weights (fixtures from scripts/make-dit-fixtures.py), through the
// `lavender forward` code path: output, loss and every parameter gradient within the PARITY tolerances of
// test/harness/compare.ts (overall and element by element).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { assertParity, PARITY } from './harness/compare.js';
import { runForward } from '../src/train/forward.js';
import { skipUnless, type Requirement } from './harness/require.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string, part: string) => join(root, 'test', 'fixtures', 'dit', `${name}.${part}`);


for (const name of ['small', 'rgb']) {
  test(`DiT '${name}' matches PyTorch: output, loss and every gradient`, () => {
    const got = runForward({ model: 'dit', config: fixture(name, 'config.json'), weights: fixture(name, 'weights.safetensors'), inputs: fixture(name, 'inputs.safetensors'), grad: true });
    const { tensors: want } = loadSafetensors(fixture(name, 'expected.safetensors'));
    assertParity(got.output!, want.output!, PARITY.output, 'output');
    assertParity(got.loss!, want.loss!, PARITY.loss, 'loss');
    const gradNames = Object.keys(want).filter((k) => k.startsWith('grad.'));
    assert.ok(gradNames.length > 20);
    assert.deepEqual(Object.keys(got).filter((k) => k.startsWith('grad.')).sort(), gradNames.sort());
    for (const k of gradNames) assertParity(got[k]!, want[k]!, PARITY.grad, k);
  });
}

test('lavender forward --grad writes output, loss and gradients', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'lav-fwd-')), 'out.safetensors');
  const r = spawnSync('node', ['bin/lavender.js', 'forward', '--model', 'dit', '--config', fixture('small', 'config.json'),
    '--weights', fixture('small', 'weights.safetensors'), '--inputs', fixture('small', 'inputs.safetensors'), '--out', out, '--grad'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { tensors } = loadSafetensors(out);
  const { tensors: want } = loadSafetensors(fixture('small', 'expected.safetensors'));
  assertParity(tensors.output!, want.output!, PARITY.output, 'output');
  assertParity(tensors.loss!, want.loss!, PARITY.loss, 'loss');
  const gradNames = Object.keys(want).filter((k) => k.startsWith('grad.'));
  assert.deepEqual(Object.keys(tensors).filter((k) => k.startsWith('grad.')).sort(), gradNames.sort());
  for (const k of gradNames) assertParity(tensors[k]!, want[k]!, PARITY.grad, k);
});

test('forward names missing and mis-shaped weights', () => {
  const { tensors } = loadSafetensors(fixture('small', 'weights.safetensors'));
  const model = new L.DiT({ in_channels: 1, input_size: 8, dim: 64, n_layers: 2, n_heads: 4 });
  const partial = { ...tensors };
  delete partial['layers.0.attention.wq.weight'];
  partial['final_layer.linear.weight'] = L.zeros([3, 3]);
  partial['extra.weight'] = L.zeros([1]);
  assert.throws(() => model.loadStateDict(partial), (e: Error) =>
    /missing: layers\.0\.attention\.wq\.weight/.test(e.message) && /unexpected: extra\.weight/.test(e.message) && /final_layer\.linear\.weight: checkpoint \[3, 3\] vs model \[4, 64\]/.test(e.message));
  const prefixed = Object.fromEntries(Object.entries(tensors).map(([k, v]) => [`model.${k}`, v]));
  model.loadStateDict(prefixed);
  // every parameter now holds the checkpoint's values (the model. prefix is stripped, nothing is skipped)
  const named = [...model.namedParameters()];
  assert.equal(named.length, Object.keys(tensors).length);
  for (const [n, p] of named) assert.deepEqual(Array.from(p.toArray()), Array.from(tensors[n]!.toArray()), n);
});

test('forward rejects out-of-range labels and inputs of the wrong size, naming the file and field', async () => {
  const { saveSafetensors } = await import('../src/io/safetensors.js');
  const dir = mkdtempSync(join(tmpdir(), 'lav-fwd-bad-'));
  const base = { model: 'dit', config: fixture('small', 'config.json'), weights: fixture('small', 'weights.safetensors') };
  const badLabels = join(dir, 'labels.safetensors');
  saveSafetensors(badLabels, { x: L.zeros([3, 1, 8, 8]), t: L.zeros([3]), y: L.tensor([0, 11, 2], { dtype: 'int64' }) });
  assert.throws(() => runForward({ ...base, inputs: badLabels }), /labels\.safetensors: 'y'\[1\] = 11 is out of range/);
  const badSize = join(dir, 'size.safetensors');
  saveSafetensors(badSize, { x: L.zeros([3, 1, 16, 16]), t: L.zeros([3]), y: L.tensor([0, 1, 2], { dtype: 'int64' }) });
  assert.throws(() => runForward({ ...base, inputs: badSize }), /DiT\.forward: x must be \[B, 1, 8, 8\], got float32\[3, 1, 16, 16\]/);
  const noX = join(dir, 'nox.safetensors');
  saveSafetensors(noX, { t: L.zeros([3]) });
  assert.throws(() => runForward({ ...base, inputs: noX }), /nox\.safetensors: missing tensor 'x'/);
  assert.throws(() => runForward({ ...base, config: join(dir, 'nope.json'), inputs: noX }), /config .*nope\.json: cannot read/);
});

// The same PyTorch parity on every other available backend with data (webgpu here when an adapter exists).
for (const entry of L.backendEntries()) {
  if (entry.name === 'cpu' || entry.name === 'meta' || entry.name === 'cpu-reference') continue;
  const probe = entry.probe();
  test(`DiT 'small' matches PyTorch on ${entry.name} (forward --grad)`, { skip: skipUnless(entry.name.toUpperCase() as Requirement, probe.available, `${entry.name} unavailable: ${probe.reason}`) }, () => {
    const got = runForward({ model: 'dit', config: fixture('small', 'config.json'), weights: fixture('small', 'weights.safetensors'), inputs: fixture('small', 'inputs.safetensors'), grad: true, backend: entry.name });
    const { tensors: want } = loadSafetensors(fixture('small', 'expected.safetensors'));
    assertParity(got.output!.to('cpu'), want.output!, PARITY.output, 'output');
    for (const k of Object.keys(want).filter((n) => n.startsWith('grad.'))) assertParity(got[k]!.to('cpu'), want[k]!, PARITY.grad, k);
  });
}

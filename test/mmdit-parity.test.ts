// The MMDiT against PyTorch on random weights (fixtures from scripts/make-mmdit-fixtures.py, whose PyTorch
// model was checked against the release's mmdit.py): output, loss and every gradient within the PARITY
// tolerances of test/harness/compare.ts (overall and element by element); a case with no double blocks and a
// non-square latent; extend_pe against F.interpolate.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { assertParity, PARITY, relErr } from './harness/compare.js';
import { runForward } from '../src/train/forward.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (name: string) => join(root, 'test', 'fixtures', 'mmdit', name);


for (const name of ['tiny', 'single_only_nonsquare']) {
  test(`MMDiT '${name}' matches PyTorch: output, loss and every gradient`, () => {
    const got = runForward({ model: 'mmdit', config: fixture(`${name}.config.json`), weights: fixture(`${name}.weights.safetensors`), inputs: fixture(`${name}.inputs.safetensors`), grad: true });
    const { tensors: want } = loadSafetensors(fixture(`${name}.expected.safetensors`));
    assertParity(got.output!, want.output!, PARITY.output, 'output');
    assertParity(got.loss!, want.loss!, PARITY.loss, 'loss');
    const names = Object.keys(want).filter((k) => k.startsWith('grad.'));
    assert.deepEqual(Object.keys(got).filter((k) => k.startsWith('grad.')).sort(), names.sort());
    for (const k of names) assertParity(got[k]!, want[k]!, PARITY.grad, k);
  });
}

test('extendPe resizes the positional table like F.interpolate(bilinear, align_corners=False)', () => {
  const { tensors } = loadSafetensors(fixture('extend_pe.safetensors'));
  const m = new L.MMDiT({ dim: 6, n_layers: 1, n_double_layers: 0, n_heads: 2, global_conddim: 4, cond_seq_dim: 4, max_seq: 20 });
  m.loadStateDict({ ...m.stateDict(), positional_encoding: tensors.pe! });
  m.extendPe([4, 4], [6, 8]);
  assert.deepEqual([...m.positional_encoding.shape], [1, 48, 6]);
  assert.ok(relErr(m.positional_encoding, tensors.resized!) < 1e-6);
  assert.ok(m.parameters().includes(m.positional_encoding));
});

test('the release initialisation zeroes modulations, final_linear and cond_seq_linear', () => {
  const m = new L.MMDiT(L.MMDIT_PRESETS['mmdit-tiny']!);
  for (const [name, p] of m.namedParameters()) {
    const zero = /(^|\.)mod/.test(name) || name === 'final_linear.weight' || name === 'cond_seq_linear.weight';
    const maxAbs = Math.max(...Array.from(p.toArray(), Math.abs));
    if (zero) assert.equal(maxAbs, 0, name);
    else assert.ok(maxAbs > 0, name);
  }
});

test('a torch.save .pt of an fp16 state dict with model. prefixes gives the same output as its safetensors twin', () => {
  const base = { model: 'mmdit', config: fixture('tiny.config.json'), inputs: fixture('tiny.inputs.safetensors') };
  const fromPt = runForward({ ...base, weights: fixture('tiny.weights-fp16.pt') });
  const fromSt = runForward({ ...base, weights: fixture('tiny.weights-fp16.safetensors') });
  assert.deepEqual(Array.from(fromPt.output!.toArray()), Array.from(fromSt.output!.toArray()));
  // and fp16 rounding of the weights moves the output only slightly from the float32 reference
  const { tensors: want } = loadSafetensors(fixture('tiny.expected.safetensors'));
  assert.ok(relErr(fromPt.output!, want.output!) < 2e-2);
});

test('a preset that does not match the checkpoint lists the mismatched shapes', () => {
  const m = new L.MMDiT(L.MMDIT_PRESETS['mmdit-small']!);
  const pt = L.loadTorchCheckpoint(fixture('tiny.weights-fp16.pt'));
  assert.throws(() => m.loadStateDict(pt), /mis-shaped: .*positional_encoding: checkpoint \[1, 64, 64\] vs model \[1, 256, 256\]/);
});

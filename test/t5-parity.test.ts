// The T5 encoder against a PyTorch T5 written from the published architecture (scripts/make-t5-fixtures.py):
// a T5 v1.1 layout (one bias table, float32 weights) and a UMT5 layout (a table per block, as pile-t5;
// bfloat16 weights kept bfloat16), HF folders with decoder/lm_head tensors to skip; outputs within 1e-4
// relative. Then the errors for broken folders.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { loadT5Encoder, relativePositionBuckets } from '../src/models/t5.js';
import { relErr } from './harness/compare.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = (...p: string[]) => join(root, 'test', 'fixtures', 't5', ...p);
const dir = mkdtempSync(join(tmpdir(), 'lavender-t5-'));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const [name, dtype] of [['t5', 'float32'], ['umt5', 'bfloat16']] as const) {
  test(`T5 encoder '${name}' (${dtype} weights) matches PyTorch within 1e-4`, () => {
    L.scope(() => {
      const m = loadT5Encoder(fixture(name));
      assert.equal(m.shared.weight.dtype, dtype);
      const tables = [...m.namedParameters()].filter(([k]) => k.endsWith('relative_attention_bias.weight')).map(([k]) => k);
      assert.deepEqual(tables, name === 't5' ? ['encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'] : [0, 1, 2].map((i) => `encoder.block.${i}.layer.0.SelfAttention.relative_attention_bias.weight`));
      const { tensors: io } = loadSafetensors(fixture(name, 'io.safetensors'));
      const out = L.noGrad(() => m.forward(io.input_ids!, io.attention_mask!));
      const err = relErr(out, io.last_hidden_state!);
      assert.ok(err < 1e-4, `relative error ${err}`);
      // padded rows are zero
      assert.deepEqual(Array.from(L.slice(L.select(out, 0, 1), 0, 9).toArray()).filter((v) => v !== 0), []);
    });
  });
}

test('relative-position buckets: exact near the query, log-spaced beyond, half for keys after it', () => {
  const b = relativePositionBuckets(20, 32, 128); // T5's defaults: 16 per direction, exact below 8
  const at = (q: number, k: number) => b[q * 20 + k]!;
  assert.equal(at(0, 0), 0);
  assert.equal(at(5, 3), 2);
  assert.equal(at(3, 5), 16 + 2);
  assert.equal(at(0, 8), 16 + 8);
  assert.equal(at(0, 16), 16 + 10); // 8 + trunc(log(2)/log(16) * 8) = 8 + 2
  assert.equal(at(19, 0), 8 + Math.trunc((Math.log(19 / 8) / Math.log(16)) * 8));
});

test('broken T5 folders: missing config, missing weights, mismatched names and shapes listed at once', () => {
  const d = join(dir, 'broken');
  rmSync(d, { recursive: true, force: true });
  L.scope(() => {
    require_fs().mkdirSync(d);
    assert.throws(() => loadT5Encoder(d), new RegExp(`${d}: no config\\.json in the folder`));
    copyFileSync(fixture('t5', 'config.json'), join(d, 'config.json'));
    assert.throws(() => loadT5Encoder(d), new RegExp(`${d}: no weights in the folder \\(looked for model\\.safetensors`));
    const { tensors } = loadSafetensors(fixture('t5', 'model.safetensors'));
    delete tensors['encoder.final_layer_norm.weight'];
    tensors['encoder.block.1.layer.0.SelfAttention.q.weight'] = L.zeros([5, 32]);
    tensors['encoder.block.9.extra.weight'] = L.zeros([1]);
    saveSafetensors(join(d, 'model.safetensors'), tensors);
    assert.throws(() => loadT5Encoder(d), (e: Error) => {
      assert.match(e.message, /model\.safetensors: loadStateDict\(T5Encoder\): /);
      assert.match(e.message, /mis-shaped: encoder\.block\.1\.layer\.0\.SelfAttention\.q\.weight: checkpoint \[5, 32\] vs model \[32, 32\]/);
      assert.match(e.message, /missing: encoder\.final_layer_norm\.weight/);
      assert.match(e.message, /unexpected: encoder\.block\.9\.extra\.weight/);
      return true;
    });
    writeFileSync(join(d, 'config.json'), JSON.stringify({ model_type: 'bert', d_model: -1 }));
    assert.throws(() => loadT5Encoder(d), /config\.json: model_type must be "t5" .* got "bert"; 'vocab_size' must be a positive integer, got undefined; 'd_model' must be a positive integer, got -1/);
  });
});

import { createRequire } from 'node:module';
const require_fs = () => createRequire(import.meta.url)('node:fs') as typeof import('node:fs');

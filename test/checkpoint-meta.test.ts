// What a checkpoint or weights file says about its model (src/optim/checkpoint-meta.ts), in-process: the CLI
// tests reach it only through child processes, where mutation testing cannot see it (docs/testing.md).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import '../src/index.js';
import { zeros } from '../src/ops/creation.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { DIT_PRESETS, resolveDiTConfig } from '../src/models/dit.js';
import { MMDIT_PRESETS, resolveMMDiTConfig } from '../src/models/mmdit.js';
import {
  assertModelKind, describeModel, inferModelKind, modelPhrase, modelSpecOf, readCheckpointMeta, readModelSpec, weightsMetadata, type ModelSpec,
} from '../src/optim/checkpoint-meta.js';

const dir = mkdtempSync(join(tmpdir(), 'lav-ckmeta-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, metadata?: Record<string, string>) => {
  const p = join(dir, name);
  saveSafetensors(p, { w: zeros([1]) }, metadata);
  return p;
};
const tiny: ModelSpec = { kind: 'mmdit', config: { dim: 64, n_layers: 3 }, preset: 'mmdit-tiny' };

test('inferModelKind: each key only one kind\'s config has decides alone; both or neither cannot tell', () => {
  const onlyDit = ['num_classes', 'input_size', 'multiple_of', 'norm_eps', 'class_dropout_prob'];
  const onlyMmdit = ['global_conddim', 'max_seq', 'cond_seq_dim', 'out_channels', 'n_double_layers'];
  const dit = Object.keys(resolveDiTConfig(DIT_PRESETS.mnist!)), mmdit = Object.keys(resolveMMDiTConfig(MMDIT_PRESETS['mmdit-tiny']!));
  for (const k of onlyDit) {
    assert.equal(inferModelKind({ dim: 8, [k]: 1 }), 'dit', k);
    assert.ok(dit.includes(k) && !mmdit.includes(k), `${k} is a DiT-only config key`);
  }
  for (const k of onlyMmdit) {
    assert.equal(inferModelKind({ dim: 8, [k]: 1 }), 'mmdit', k);
    assert.ok(mmdit.includes(k) && !dit.includes(k), `${k} is an MMDiT-only config key`);
  }
  assert.equal(inferModelKind(resolveDiTConfig(DIT_PRESETS.mnist!)), 'dit');
  assert.equal(inferModelKind(resolveMMDiTConfig(MMDIT_PRESETS['mmdit-tiny']!)), 'mmdit');
  assert.equal(inferModelKind({ dim: 8, n_layers: 2 }), undefined);
  assert.equal(inferModelKind({ num_classes: 10, max_seq: 64 }), undefined);
});

test('describeModel and modelPhrase: the preset, else dim, layers and (DiT) the image size; the article', () => {
  assert.equal(describeModel({ kind: 'dit', config: {}, preset: 'mnist' }), "DiT 'mnist'");
  assert.equal(describeModel({ kind: 'dit', config: { dim: 32, n_layers: 2, in_channels: 1, input_size: 28 } }), 'DiT (dim 32, 2 layers, 1x28x28 images)');
  assert.equal(describeModel({ kind: 'dit', config: { dim: 32, n_layers: 2 } }), 'DiT (dim 32, 2 layers)');
  assert.equal(describeModel({ kind: 'mmdit', config: { dim: 64, n_layers: 3, input_size: 8 } }), 'MMDiT (dim 64, 3 layers)');
  assert.equal(modelPhrase('mmdit'), 'an MMDiT');
  assert.equal(modelPhrase('dit'), 'a DiT');
  assert.equal(modelPhrase(tiny), "an MMDiT 'mmdit-tiny'");
  assert.equal(modelPhrase({ kind: 'dit', config: { dim: 16, n_layers: 1 } }), 'a DiT (dim 16, 1 layers)');
});

test('modelSpecOf: the stored kind, else the one the config keys say; the preset only when it is a string', () => {
  assert.equal(modelSpecOf(null), undefined);
  assert.equal(modelSpecOf({ format: 'lavender-train-v1' }), undefined);
  assert.equal(modelSpecOf({ config: 'dit' }), undefined);
  assert.equal(modelSpecOf({ kind: 'dit', config: 'dit' }), undefined, 'a config that is not an object, even with a kind');
  assert.deepEqual(modelSpecOf({ kind: 'dit', config: { dim: 8 } }), { kind: 'dit', config: { dim: 8 }, preset: undefined });
  assert.deepEqual(modelSpecOf({ kind: 'mmdit', config: { num_classes: 1 } }), { kind: 'mmdit', config: { num_classes: 1 }, preset: undefined });
  assert.deepEqual(modelSpecOf({ kind: 'other', config: { max_seq: 4 }, preset: 'p' }), { kind: 'mmdit', config: { max_seq: 4 }, preset: 'p' });
  assert.deepEqual(modelSpecOf({ config: { num_classes: 10 }, preset: 3 }), { kind: 'dit', config: { num_classes: 10 }, preset: undefined });
  assert.equal(modelSpecOf({ config: { dim: 8 } }), undefined, 'no kind stored and none inferable');
});

test('readModelSpec and readCheckpointMeta: missing, non-object and broken metadata; a weights file given as a checkpoint; errors name the file', () => {
  const plain = file('plain.safetensors');
  assert.deepEqual(readModelSpec(plain), { spec: undefined, meta: null });
  assert.deepEqual(readModelSpec(file('number.safetensors', { lavender: '5' })), { spec: undefined, meta: null });
  assert.deepEqual(readModelSpec(file('null.safetensors', { lavender: 'null' })), { spec: undefined, meta: null });
  const broken = file('broken.safetensors', { lavender: '{' });
  assert.throws(() => readModelSpec(broken), new RegExp(`^Error: ${broken}: metadata field 'lavender' is not valid JSON$`));
  assert.throws(() => readCheckpointMeta(broken), new RegExp(`^Error: checkpoint ${broken}: metadata field 'lavender' is not valid JSON$`));
  const missing = `^Error: checkpoint ${plain}: metadata field 'lavender' is missing or not a lavender-train-v1 checkpoint`;
  assert.throws(() => readCheckpointMeta(plain), new RegExp(`${missing}$`));
  assert.throws(() => readCheckpointMeta(file('other.safetensors', { lavender: '{"format":"x"}' })), /is missing or not a lavender-train-v1 checkpoint$/);
  const weights = file('ema.safetensors', weightsMetadata(tiny, { step: 7 }));
  assert.throws(() => readCheckpointMeta(weights), new RegExp(`^Error: checkpoint ${weights}: metadata field 'lavender' is missing or not a lavender-train-v1 checkpoint \\(it holds weights only, lavender-weights-v1: use it with \`sample\`, not --resume\\)$`));
  assert.throws(() => readCheckpointMeta(join(dir, 'absent.safetensors')), /^Error: checkpoint .*absent\.safetensors/);
  const ckpt = file('ckpt.safetensors', { lavender: JSON.stringify({ format: 'lavender-train-v1', step: 4, kind: 'dit', config: { dim: 8 } }) });
  assert.deepEqual(readCheckpointMeta(ckpt), { format: 'lavender-train-v1', step: 4, kind: 'dit', config: { dim: 8 } });
  assert.deepEqual(readModelSpec(weights), { spec: tiny, meta: { format: 'lavender-weights-v1', kind: 'mmdit', config: tiny.config, preset: 'mmdit-tiny', step: 7 } });
});

test('weightsMetadata: format, kind, config, the preset only when there is one, and the extra fields', () => {
  assert.deepEqual(weightsMetadata(tiny), { lavender: JSON.stringify({ format: 'lavender-weights-v1', kind: 'mmdit', config: tiny.config, preset: 'mmdit-tiny' }) });
  assert.deepEqual(JSON.parse(weightsMetadata({ kind: 'dit', config: { dim: 8 } }, { step: 2 }).lavender!), { format: 'lavender-weights-v1', kind: 'dit', config: { dim: 8 }, step: 2 });
});

test('assertModelKind: silent for the same kind; otherwise one line naming the file, what it holds and what the command wants', () => {
  assertModelKind('f', tiny, 'mmdit', 'sample');
  assertModelKind('f', tiny, { kind: 'mmdit', config: {} }, 'sample');
  assert.throws(() => assertModelKind('checkpoint f', tiny, { kind: 'dit', config: {}, preset: 'mnist' }, 'train mnist trains'),
    /^Error: checkpoint f holds an MMDiT 'mmdit-tiny', but train mnist trains a DiT 'mnist'$/);
  assert.throws(() => assertModelKind('f', { kind: 'dit', config: {}, preset: 'mnist' }, 'mmdit', 'sample t2i samples'), /^Error: f holds a DiT 'mnist', but sample t2i samples an MMDiT$/);
});

// 16-bit weights stay 16-bit: a model built on the meta device and loaded with assign keeps bf16/f16
// parameters (no float32 copy of the weights lives past one layer's use) and computes exactly what a
// float32 model holding the same (bf16-rounded) values computes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as L from '../src/index.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { getBackend } from '../src/backends/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'lavender-half-'));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`MMDiT with ${dtype} weights assigned on a meta-built model matches the float32 model`, () => {
    L.manualSeed(3);
    const cfg = L.MMDIT_PRESETS['mmdit-tiny']!;
    const ref = new L.MMDiT(cfg);
    // non-zero everywhere (the release's init zeroes the modulations), then rounded to 16 bits
    const half: Record<string, L.Tensor> = {};
    for (const [k, p] of ref.namedParameters()) half[k] = L.keep(L.mul(L.randn([...p.shape]), 0.2).to(dtype));
    const path = join(dir, `w-${dtype}.safetensors`);
    saveSafetensors(path, half);
    ref.loadStateDict(half); // cast to the float32 parameters
    const { tensors } = loadSafetensors(path);
    const m = new L.MMDiT(cfg, { device: 'meta' });
    m.loadStateDict(tensors, { assign: true, device: 'cpu' });
    for (const [k, p] of m.namedParameters()) {
      assert.equal(p.dtype, dtype, k);
      assert.equal(p.device, 'cpu', k);
    }
    assert.equal(m.init_x_linear.weight, m.stateDict()['init_x_linear.weight'], 'the layer field follows the assigned parameter');
    const x = L.randn([2, 4, 8, 8]), t = L.rand([2]), c = L.randn([2, 5, cfg.cond_seq_dim!]);
    const cpu = getBackend('cpu');
    const want = L.noGrad(() => ref.forward(x, t, c));
    const before = cpu.liveBuffers();
    const got = L.noGrad(() => L.scope(() => m.forward(x, t, c)));
    assert.equal(cpu.liveBuffers() - before, 1, 'only the output survives: every widened weight was freed');
    assert.deepEqual(Array.from(got.toArray()), Array.from(want.toArray()));
  });
}

test('assign keeps float32 where the checkpoint is float32 and casts integer tensors to the parameter dtype', () => {
  const lin = new L.nn.Linear(3, 2);
  const w = L.keep(L.randn([2, 3])), b = L.keep(L.tensor([1, 2], { dtype: 'int32' }));
  lin.loadStateDict({ weight: w, bias: b }, { assign: true });
  assert.equal(lin.weight.dtype, 'float32');
  assert.equal(lin.bias!.dtype, 'float32');
  assert.deepEqual(Array.from(lin.bias!.toArray()), [1, 2]);
  assert.throws(() => lin.loadStateDict({ weight: L.randn([3, 3]) }, { assign: true }), /mis-shaped: weight: checkpoint \[3, 3\] vs model \[2, 3\] \| missing: bias/);
});

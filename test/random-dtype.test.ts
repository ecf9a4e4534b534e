// The Philox generator (known-answer vectors from Random123) and the half-precision storage conversions.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { philox } from '../src/tensor/random.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/tensor/dtype.js';

test('philox4x32-10 matches the Random123 known-answer vectors', () => {
  const out = new Uint32Array(4);
  philox(0, 0, 0, 0, 0, 0, out);
  assert.deepEqual(Array.from(out), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  philox(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, out);
  assert.deepEqual(Array.from(out), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
  philox(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out);
  assert.deepEqual(Array.from(out), [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
});

test('same seed, same numbers; draws advance the generator', () => {
  const a = L.randn([5], { generator: new L.Generator(42) }).toArray();
  const b = L.randn([5], { generator: new L.Generator(42) }).toArray();
  assert.deepEqual(a, b);
  const g = new L.Generator(42);
  const first = L.randn([3], { generator: g }).toArray();
  const second = L.randn([2], { generator: g }).toArray();
  assert.deepEqual([...first, ...second], Array.from(a));
  L.manualSeed(3);
  const c = L.rand([4]).toArray();
  L.manualSeed(3);
  assert.deepEqual(L.rand([4]).toArray(), c);
});

test('randn has mean ~0 and variance ~1; rand lies in [0, 1)', () => {
  const n = L.randn([20000], { generator: new L.Generator(1) });
  assert.ok(Math.abs(L.mean(n).item()) < 0.03);
  assert.ok(Math.abs(L.variance(n).item() - 1) < 0.05);
  const u = Array.from(L.rand([20000], { generator: new L.Generator(2) }).toArray());
  assert.ok(u.every((v) => v >= 0 && v < 1));
  assert.ok(Math.abs(u.reduce((a, b) => a + b, 0) / u.length - 0.5) < 0.01);
});

test('bfloat16 conversion rounds to nearest even and round-trips representable values', () => {
  fc.assert(fc.property(fc.float({ noNaN: true }), (x) => {
    const back = bf16ToF32(f32ToBf16(x));
    if (!Number.isFinite(x)) return assert.equal(back, x);
    assert.ok(Math.abs(back - x) <= Math.abs(x) * 2 ** -8 + 2 ** -133 || Math.abs(back) === Infinity);
    assert.equal(bf16ToF32(f32ToBf16(back)), back);
  }), { numRuns: 500 });
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie rounds to even
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
});

test('float16 conversion handles subnormals, overflow and ties', () => {
  fc.assert(fc.property(fc.float({ noNaN: true, min: -65504, max: 65504 }), (x) => {
    const back = f16ToF32(f32ToF16(x));
    const ulp = Math.max(2 ** -24, 2 ** (Math.floor(Math.log2(Math.abs(x) || 1)) - 10));
    assert.ok(Math.abs(back - x) <= ulp / 2 + 1e-12, `${x} -> ${back}`);
  }), { numRuns: 500 });
  assert.equal(f16ToF32(f32ToF16(70000)), Infinity);
  assert.equal(f16ToF32(f32ToF16(2 ** -24)), 2 ** -24);
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00);
});

test('casting tensors to half dtypes and back', () => {
  const x = L.tensor([1.5, -2.25, 3.14159, 65504]);
  assert.deepEqual(Array.from(L.cast(x, 'bfloat16').toArray()), [1.5, -2.25, 3.140625, 65536]);
  assert.deepEqual(Array.from(L.cast(x, 'float16').toArray()), [1.5, -2.25, 3.140625, 65504]);
  assert.deepEqual(Array.from(L.tensor([0.1], { dtype: 'bfloat16' }).to('float32').toArray()), [0.10009765625]);
});

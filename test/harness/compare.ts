// Error measures shared by the parity tests.
import assert from 'node:assert/strict';
import type { Tensor } from '../../src/index.js';
import { stridedOffsets } from '../../src/backends/cpu/strided.js';

/** max |a - b| / max |b|: the error relative to the reference tensor's scale (shapes must match). */
export function relErr(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  const x = a.toArray(), y = b.toArray();
  let diff = 0, scale = 0;
  for (let i = 0; i < y.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return diff / (scale + 1e-12);
}

/** A tensor's elements in logical order as raw storage values (float16/bfloat16 as bits). */
export function rawValues(t: Tensor): number[] {
  const raw = t.backend.read(t.storage.buf);
  return Array.from(stridedOffsets(t.shape, t.strides, t.offset), (o) => raw[o]!);
}

/** Deterministic PRNG (mulberry32) for tests that need plain numbers, not tensors. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Error measures shared by the parity tests.
import assert from 'node:assert/strict';
import type { Tensor } from '../../src/index.js';

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

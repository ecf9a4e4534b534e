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

export interface ParityTolerance {
  /** Bound on relErr: max |a - b| over max |b|. */
  rel: number;
  /** Element-wise: |a_i - b_i| <= rtol |b_i| + atol max |b|, so small elements are checked too. */
  rtol: number;
  atol: number;
}

/** The PyTorch parity tolerances, set from what is achieved (bench/RESULTS.md, "Parity errors") with a margin of 3-10x. */
export const PARITY = {
  output: { rel: 1e-5, rtol: 1e-4, atol: 1e-6 },
  loss: { rel: 1e-5, rtol: 1e-5, atol: 0 },
  grad: { rel: 1e-4, rtol: 2e-3, atol: 2e-5 },
} satisfies Record<string, ParityTolerance>;

/** Asserts a matches the reference b within `tol`, naming the worst element when it does not. */
export function assertParity(a: Tensor, b: Tensor, tol: ParityTolerance, what: string): void {
  const r = relErr(a, b);
  assert.ok(r < tol.rel, `${what}: relative error ${r.toExponential(2)} (max |a - b| / max |b|) exceeds ${tol.rel}`);
  const x = a.toArray(), y = b.toArray();
  let scale = 0;
  for (let i = 0; i < y.length; i++) scale = Math.max(scale, Math.abs(y[i]!));
  for (let i = 0; i < y.length; i++) {
    const bound = tol.rtol * Math.abs(y[i]!) + tol.atol * scale;
    if (!(Math.abs(x[i]! - y[i]!) <= bound)) assert.fail(`${what}: element ${i} is ${x[i]} vs ${y[i]} (|diff| ${Math.abs(x[i]! - y[i]!).toExponential(2)} > ${tol.rtol} |b| + ${tol.atol} max|b| = ${bound.toExponential(2)})`);
  }
}

// The cuda backend's layout planning, on any machine: coalescing keeps element order, and every
// batched strided matmul maps to one cublasGemmStridedBatchedEx call that computes the right product
// (checked by executing the plan with column-major BLAS semantics against the cpu reference).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'node:test';
import { BINARY_OPS, BINARY_SCALAR_CODES } from '../src/backends/cuda/addon.js';
import { PATH_GENERIC, PATH_STRIDED32, PATH_VEC, coalesce, planElementwise, planGemm, runPlanReference, scalarFirstOp, transposedOperand, type Layout } from '../src/backends/cuda/plan.js';

function offsets(shape: readonly number[], strides: readonly number[], offset: number): number[] {
  const out: number[] = [];
  const walk = (d: number, o: number) => {
    if (d === shape.length) { out.push(o); return; }
    for (let i = 0; i < shape[d]!; i++) walk(d + 1, o + i * strides[d]!);
  };
  walk(0, offset);
  return out;
}

test('coalesce merges contiguous dims, drops size-1 dims and keeps row-major order', () => {
  assert.deepEqual(coalesce([2, 3, 4], [[12, 4, 1]]), { shape: [24], strides: [[1]] });
  assert.deepEqual(coalesce([2, 3, 4], [[12, 4, 1], [0, 0, 1]]), { shape: [6, 4], strides: [[4, 1], [0, 1]] });
  assert.deepEqual(coalesce([1, 5, 1], [[7, 2, 9]]), { shape: [5], strides: [[2]] });
  assert.deepEqual(coalesce([], [[]]), { shape: [], strides: [[]] });
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 5 }), fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 5, maxLength: 5 }), (shape, raw) => {
    const s1 = shape.map((_, d) => raw[d]!);
    const s2: number[] = [];
    let acc = 1;
    for (let d = shape.length - 1; d >= 0; d--) { s2[d] = acc; acc *= shape[d]!; }
    const c = coalesce(shape, [s1, s2]);
    assert.deepEqual(offsets(c.shape, c.strides[0]!, 3), offsets(shape, s1, 3));
    assert.deepEqual(offsets(c.shape, c.strides[1]!, 0), offsets(shape, s2, 0));
  }), { numRuns: 300 });
});

test('transposedOperand: row-major, column-major, size-1 dims and unusable layouts', () => {
  assert.deepEqual(transposedOperand(3, 4, 4, 1), { trans: 0, ld: 4 });
  assert.deepEqual(transposedOperand(3, 4, 1, 3), { trans: 1, ld: 3 });
  assert.deepEqual(transposedOperand(1, 4, 999, 1), { trans: 0, ld: 4 });
  assert.deepEqual(transposedOperand(3, 1, 7, 0), { trans: 0, ld: 7 });
  assert.equal(transposedOperand(3, 4, 8, 2), null);
  assert.equal(transposedOperand(3, 4, 2, 1), null);  // overlapping rows
});

/** A random strided [B, R, C] layout inside a flat array: permuted, padded, sliced or broadcast. */
const layoutArb = (B: number, R: number, C: number) => fc.record({
  kind: fc.constantFrom('row', 'col', 'padded', 'strided', 'bcast'),
  pad: fc.integer({ min: 0, max: 3 }),
  off: fc.integer({ min: 0, max: 5 }),
}).map(({ kind, pad, off }): Layout => {
  switch (kind) {
    case 'row': return { shape: [B, R, C], strides: [R * C, C, 1], offset: off };
    case 'col': return { shape: [B, R, C], strides: [R * C, 1, R], offset: off };
    case 'padded': return { shape: [B, R, C], strides: [R * (C + pad), C + pad, 1], offset: off };
    case 'strided': return { shape: [B, R, C], strides: [R * C * 2, C * 2, 2], offset: off };
    default: return { shape: [B, R, C], strides: [0, C, 1], offset: off };
  }
});

function contiguousCopy(src: Float64Array, l: Layout): { data: Float64Array; layout: Layout } {
  const [B, R, C] = l.shape as [number, number, number];
  return { data: Float64Array.from(offsets(l.shape, l.strides, l.offset).map((o) => src[o]!)), layout: { shape: [B, R, C], strides: [R * C, C, 1], offset: 0 } };
}

test('planGemm: executing the plan with BLAS semantics equals the batched matmul, for any layout', () => {
  const dims = fc.record({ B: fc.integer({ min: 1, max: 3 }), M: fc.integer({ min: 1, max: 5 }), K: fc.integer({ min: 1, max: 5 }), N: fc.integer({ min: 1, max: 5 }) });
  fc.assert(fc.property(dims.chain((d) => fc.tuple(fc.constant(d), layoutArb(d.B, d.M, d.K), layoutArb(d.B, d.K, d.N))), ([{ B, M, K, N }, la, lb]) => {
    const size = 4 * B * (M + 3) * (K + 3) * (N + 3) + 16;
    let A: Float64Array = Float64Array.from({ length: size }, (_, i) => ((i * 7919) % 13) - 6);
    let Bd: Float64Array = Float64Array.from({ length: size }, (_, i) => ((i * 104729) % 11) - 5);
    const want: number[] = [];
    const at = (X: Float64Array, l: Layout, p: number, i: number, j: number) => X[l.offset + p * l.strides[0]! + i * l.strides[1]! + j * l.strides[2]!]!;
    for (let p = 0; p < B; p++) for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += at(A, la, p, i, k) * at(Bd, lb, p, k, j);
      want.push(s);
    }
    let plan = planGemm(la, lb, 0);
    for (let tries = 0; tries < 2 && typeof plan === 'string'; tries++) {
      if (plan === 'a') { const c = contiguousCopy(A, la); A = c.data; la = c.layout; }
      else { const c = contiguousCopy(Bd, lb); Bd = c.data; lb = c.layout; }
      plan = planGemm(la, lb, 0);
    }
    assert.equal(typeof plan, 'object', 'a contiguous operand always has a plan');
    if (typeof plan === 'string') return;
    assert.ok(plan.lda >= 1 && plan.ldb >= 1 && plan.ldc >= Math.max(1, plan.m));
    const out = new Float64Array(B * M * N);
    runPlanReference(plan, Bd, A, out, 0);
    assert.deepEqual(Array.from(out), want);
  }), { numRuns: 400 });
});

test('planGemm folds a batch against a shared weight into one GEMM', () => {
  const p = planGemm({ shape: [8, 16, 32], strides: [512, 32, 1], offset: 0 }, { shape: [8, 32, 24], strides: [0, 1, 32], offset: 0 }, 0);
  assert.ok(typeof p === 'object');
  assert.equal(p.batch, 1);
  assert.equal(p.n, 128);
  assert.equal(p.transa, 1);
});

const op = (strides: number[], offset = 0, ptr = 1 << 20, bytes = 4) => ({ strides, offset, ptr, bytes });

test('planElementwise: 128-bit path only for contiguous operands on 16-byte boundaries', () => {
  // dense float32 [2, 3, 4] (one coalesced dim), aligned
  assert.deepEqual(planElementwise([2, 3, 4], [op([12, 4, 1]), op([12, 4, 1])]), { path: PATH_VEC, shape: [24], strides: [[1], [1]] });
  // an element offset of 4 float32 is 16 bytes: still aligned; of 1 it is not
  assert.equal(planElementwise([8], [op([1], 4), op([1])]).path, PATH_VEC);
  assert.equal(planElementwise([8], [op([1], 1), op([1])]).path, PATH_STRIDED32);
  // bfloat16 at an offset of 8 elements = 16 bytes; a buffer starting 8 bytes past a boundary is not aligned
  assert.equal(planElementwise([8], [op([1], 8, 1 << 20, 2), op([1])]).path, PATH_VEC);
  assert.equal(planElementwise([8], [op([1], 0, (1 << 20) + 8), op([1])]).path, PATH_STRIDED32);
  // a bias broadcast over rows stays two dims, walked with 32-bit strides
  assert.deepEqual(planElementwise([3, 4], [op([4, 1]), op([0, 1]), op([4, 1])]), { path: PATH_STRIDED32, shape: [3, 4], strides: [[4, 1], [0, 1], [4, 1]] });
  // a scalar (0-d) and an all-size-1 shape are one contiguous element
  assert.equal(planElementwise([], [op([]), op([])]).path, PATH_VEC);
  assert.equal(planElementwise([1, 1], [op([5, 3]), op([1, 1])]).path, PATH_VEC);
});

test('planElementwise: 64-bit generic path past int32 element counts or operand reach', () => {
  const big = 2 ** 31;
  // contiguous and aligned: the vector kernel indexes in 64 bits, any size
  assert.equal(planElementwise([big], [op([1]), op([1])]).path, PATH_VEC);
  // misaligned and 2^31 elements: generic
  assert.equal(planElementwise([big], [op([1], 1), op([1])]).path, PATH_GENERIC);
  assert.equal(planElementwise([big - 1], [op([1], 1), op([1])]).path, PATH_STRIDED32);
  // few elements but a stride that reaches past 2^31 (a transposed view of a huge tensor)
  assert.equal(planElementwise([2, 3], [op([2 ** 30, 1]), op([3, 1])]).path, PATH_STRIDED32);
  assert.equal(planElementwise([3, 3], [op([2 ** 30, 1]), op([3, 1])]).path, PATH_GENERIC);
  // negative reach counts too
  assert.equal(planElementwise([3, 3], [op([-(2 ** 30), 1], 2 ** 31), op([3, 1])]).path, PATH_GENERIC);
});

test('planElementwise: the 32-bit walk the kernel does visits exactly the original offsets', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 5 }), fc.array(fc.integer({ min: -6, max: 6 }), { minLength: 10, maxLength: 10 }),
    fc.integer({ min: 0, max: 7 }), (shape, raw, off) => {
      const s1 = shape.map((_, d) => raw[d]!), s2 = shape.map((_, d) => raw[d + 5]!);
      const base = 200 + off;  // keeps negative strides inside the buffer
      const plan = planElementwise(shape, [op(s1, base), op(s2, base)]);
      const n = shape.reduce((a, b) => a * b, 1);
      for (const [k, st] of [s1, s2].entries()) {
        const want = offsets(shape, st, base);
        let got: number[];
        if (plan.path === PATH_VEC) got = Array.from({ length: n }, (_, i) => base + i);
        else {
          // map.cuh lav_strided_one: unravel i over the dims, innermost last, with int32 arithmetic
          got = [];
          for (let i = 0; i < n; i++) {
            let j = i, o = 0;
            for (let d = plan.shape.length - 1; d >= 0; d--) {
              const q = Math.trunc(j / plan.shape[d]!), r = j - q * plan.shape[d]!;
              o = (o + r * plan.strides[k]![d]!) | 0;
              j = q;
            }
            got.push(base + o);
          }
        }
        assert.deepEqual(got, want);
      }
    }), { numRuns: 300 });
});

test('scalarFirstOp: s op x equals x op\' s for every binary op, and each code exists in the addon table', () => {
  const ref: Record<string, (a: number, b: number) => number> = {
    add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b, pow: (a, b) => a ** b,
    maximum: Math.max, minimum: Math.min, eq: (a, b) => +(a === b), ne: (a, b) => +(a !== b), lt: (a, b) => +(a < b),
    le: (a, b) => +(a <= b), gt: (a, b) => +(a > b), ge: (a, b) => +(a >= b), and: (a, b) => +(!!a && !!b), or: (a, b) => +(!!a || !!b),
    rsub: (a, b) => b - a, rdiv: (a, b) => b / a, rpow: (a, b) => b ** a,
  };
  assert.deepEqual(Object.keys(BINARY_SCALAR_CODES), [...BINARY_OPS, 'rsub', 'rdiv', 'rpow']);
  for (const o of BINARY_OPS) {
    const m = scalarFirstOp(o);
    assert.ok(m in BINARY_SCALAR_CODES, m);
    for (const [s, x] of [[2, 3], [3, 2], [2, 2], [0, 5], [-1.5, 0.5]] as const) assert.equal(ref[m]!(x, s), ref[o]!(s, x), `${s} ${o} ${x}`);
  }
});

// The cpu backend's float32 fast paths (wasm SIMD row kernels, monomorphic elementwise loops, folded
// matmul) against the reference on random sizes, offsets, strides and broadcasts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { View } from '../src/backends/backend.js';
import { cpuBackend, cpuReferenceBackend } from '../src/backends/cpu/index.js';
import { CpuBuffer } from '../src/backends/cpu/buffer.js';
import { cpuFused } from '../src/backends/cpu/fused.js';
import { rowopsAvailable, rowopsSetOptions, _expf32 } from '../src/backends/cpu/fast/rowops.js';
import { rng } from './harness/compare.js';
import { skipUnless } from './harness/require.js';

// without wasm SIMD the fast paths fall back to the reference; LAVENDER_REQUIRE_SIMD=1 (.ci/run) makes that a failure
const skip = skipUnless('SIMD', rowopsAvailable(), 'the wasm row kernels did not load (no wasm SIMD here, or run `npm run build:wasm`)');


const ri = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

function buffer(n: number, r: () => number, scale = 4): CpuBuffer {
  const b = new CpuBuffer('float32', n, new Float32Array(n));
  for (let i = 0; i < n; i++) b.data[i] = (r() * 2 - 1) * scale;
  return b;
}

function clone(b: CpuBuffer): CpuBuffer {
  return new CpuBuffer(b.dtype, b.size, b.data.slice());
}

/** A random strided view of `shape`: permuted layout, padding, offset, and (if bcast) stride-0 dims. */
function randomView(shape: number[], r: () => number, bcast = false): View {
  const rank = shape.length;
  const order = [...Array(rank).keys()].sort(() => r() - 0.5);
  const strides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = order.length - 1; i >= 0; i--) {
    const d = order[i]!;
    if (bcast && r() < 0.3) { strides[d] = 0; continue; }
    strides[d] = s;
    s *= shape[d]! + (r() < 0.3 ? ri(r, 1, 3) : 0);
  }
  const offset = ri(r, 0, 5);
  return { buf: buffer(offset + s + 3, r), shape, strides, offset };
}

function denseOut(shape: number[], r: () => number): View {
  const offset = ri(r, 0, 3);
  const n = shape.reduce((a, b) => a * b, 1);
  const strides: number[] = [];
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) { strides[i] = s; s *= shape[i]!; }
  return { buf: buffer(offset + n + 2, r), shape, strides, offset };
}

function withBuf(v: View, buf: CpuBuffer): View {
  return { ...v, buf };
}

function randomShape(r: () => number, big: boolean): number[] {
  const rank = ri(r, 1, 4);
  const shape = Array.from({ length: rank }, () => ri(r, 1, 7));
  if (big) shape[rank - 1] = ri(r, 1000, 2600);
  return shape;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(w)) { assert.ok(Number.isNaN(g), `${what}[${i}]: got ${g}, want NaN`); continue; }
    if (g === w) continue;
    assert.ok(Math.abs(g - w) <= atol + rtol * Math.abs(w), `${what}[${i}]: got ${g}, want ${w}`);
  }
}

test('fast paths: wasm exp is within 2 float32 ulps of Math.exp, with the special values', { skip }, () => {
  const r = rng(1);
  const f = new Float32Array(1), u = new Int32Array(f.buffer);
  const bits = (x: number): number => { f[0] = x; return u[0]!; };
  for (let i = 0; i < 20000; i++) {
    const x = Math.fround(-87 + r() * 175.7);
    const got = _expf32(x)!, want = Math.fround(Math.exp(x));
    assert.ok(Math.abs(bits(got) - bits(want)) <= 2, `exp(${x}) = ${got}, want ${want}`);
  }
  assert.equal(_expf32(-Infinity), 0);
  assert.equal(_expf32(Infinity), Infinity);
  assert.equal(_expf32(100), Infinity);
  assert.equal(_expf32(-200), 0);
  assert.ok(Number.isNaN(_expf32(NaN)!));
});

for (const small of [true, false]) {
  const label = small ? 'tiny thresholds' : 'default thresholds';

  test(`fast paths (${label}): binary add/sub/mul/div match the reference bit for bit`, () => {
    rowopsSetOptions(small ? { minElems: 1, minBinary: 1 } : { minElems: 256, minBinary: 1024 });
    const r = rng(small ? 2 : 3);
    for (let it = 0; it < 120; it++) {
      const shape = randomShape(r, !small && it % 3 === 0);
      const a = randomView(shape, r, true), b = randomView(shape, r, true), out = denseOut(shape, r);
      for (const op of ['add', 'sub', 'mul', 'div'] as const) {
        const o1 = clone(out.buf as CpuBuffer), o2 = clone(out.buf as CpuBuffer);
        cpuBackend.binary(op, a, b, withBuf(out, o1));
        cpuReferenceBackend.binary(op, a, b, withBuf(out, o2));
        assert.deepEqual(o1.data, o2.data, `${op} ${JSON.stringify([shape, a.strides, b.strides])}`);
      }
    }
  });

  test(`fast paths (${label}): exp/sigmoid/silu match the reference`, () => {
    rowopsSetOptions(small ? { minElems: 1, minBinary: 1 } : { minElems: 256, minBinary: 1024 });
    const r = rng(small ? 4 : 5);
    for (let it = 0; it < 40; it++) {
      const shape = randomShape(r, !small);
      const x = it % 2 ? denseOut(shape, r) : randomView(shape, r);
      const X = (x.buf as CpuBuffer).data;
      if (it === 0) { X[x.offset] = -Infinity; if (X.length > x.offset + 3) { X[x.offset + 1] = Infinity; X[x.offset + 2] = NaN; } }
      if (it % 5 === 1) for (let i = 0; i < X.length; i++) X[i] = X[i]! * 40;
      const out = denseOut(shape, r);
      for (const op of ['exp', 'sigmoid', 'silu'] as const) {
        const o1 = clone(out.buf as CpuBuffer), o2 = clone(out.buf as CpuBuffer);
        cpuBackend.unary(op, x, withBuf(out, o1));
        cpuReferenceBackend.unary(op, x, withBuf(out, o2));
        assertClose(o1.data, o2.data, 1e-5, 1e-30, `${op} ${JSON.stringify(shape)}`);
      }
    }
  });

  test(`fast paths (${label}): fused softmax / log-softmax / backward / silu backward / layer norm match the TypeScript loops`, () => {
    rowopsSetOptions(small ? { minElems: 1, minBinary: 1 } : { minElems: 256, minBinary: 1024 });
    const r = rng(small ? 6 : 7);
    for (let it = 0; it < 30; it++) {
      const rows = ri(r, 1, small ? 9 : 40), cols = small ? ri(r, 1, 37) : ri(r, 200, 3000);
      const shape = [rows, cols];
      const x = denseOut(shape, r), g = denseOut(shape, r), out = denseOut(shape, r);
      if (it === 3) (x.buf as CpuBuffer).data[x.offset] = -Infinity;
      const scale = [1, 0.25, 1.7][it % 3]!;
      // softmax, log-softmax: the wasm path (cpuFused on float32) against the same loop on float64 data
      const x64: View = { ...x, buf: new CpuBuffer('float64', x.buf.size, Float64Array.from((x.buf as CpuBuffer).data)) };
      for (const log of [false, true]) {
        const o1 = clone(out.buf as CpuBuffer);
        const o2 = new CpuBuffer('float64', out.buf.size, new Float64Array(out.buf.size));
        cpuFused.softmax(x, withBuf(out, o1), log, scale);
        cpuFused.softmax(x64, withBuf(out, o2), log, scale);
        assertClose(o1.data.subarray(out.offset, out.offset + rows * cols), o2.data.subarray(out.offset, out.offset + rows * cols), 1e-5, 1e-6, `softmax log=${log}`);
      }
      const y = denseOut(shape, r);
      const y64: View = { ...y, buf: new CpuBuffer('float64', y.buf.size, Float64Array.from((y.buf as CpuBuffer).data)) };
      const g64: View = { ...g, buf: new CpuBuffer('float64', g.buf.size, Float64Array.from((g.buf as CpuBuffer).data)) };
      {
        const o1 = clone(out.buf as CpuBuffer), o2 = new CpuBuffer('float64', out.buf.size, new Float64Array(out.buf.size));
        cpuFused.softmaxBackward(y, g, withBuf(out, o1), scale);
        cpuFused.softmaxBackward(y64, g64, withBuf(out, o2), scale);
        assertClose(o1.data.subarray(out.offset, out.offset + rows * cols), o2.data.subarray(out.offset, out.offset + rows * cols), 1e-4, 1e-4, 'softmaxBackward');
      }
      {
        const o1 = clone(out.buf as CpuBuffer), o2 = new CpuBuffer('float64', out.buf.size, new Float64Array(out.buf.size));
        cpuFused.siluBackward(x, g, withBuf(out, o1));
        cpuFused.siluBackward(x64, g64, withBuf(out, o2));
        assertClose(o1.data.subarray(out.offset, out.offset + rows * cols), o2.data.subarray(out.offset, out.offset + rows * cols), 1e-5, 1e-6, 'siluBackward');
      }
      for (const affine of [false, true]) {
        const w = affine ? denseOut([cols], r) : null, bias = affine ? denseOut([cols], r) : null;
        const mk = (): [View, View] => [denseOut([rows, 1], r), denseOut([rows, 1], r)];
        const [m1, s1] = mk(), [m2, s2] = mk();
        const to64 = (v: View): View => ({ ...v, buf: new CpuBuffer('float64', v.buf.size, Float64Array.from((v.buf as CpuBuffer).data)) });
        const o1 = clone(out.buf as CpuBuffer);
        const o2 = new CpuBuffer('float64', out.buf.size, new Float64Array(out.buf.size));
        const m64 = to64(m2), s64 = to64(s2);
        cpuFused.layerNorm(x, w, bias, 1e-5, withBuf(out, o1), m1, s1);
        cpuFused.layerNorm(x64, w && to64(w), bias && to64(bias), 1e-5, withBuf(out, o2), m64, s64);
        const sl = (v: View): ArrayLike<number> => (v.buf as CpuBuffer).data.subarray(v.offset, v.offset + rows);
        assertClose(o1.data.subarray(out.offset, out.offset + rows * cols), o2.data.subarray(out.offset, out.offset + rows * cols), 1e-4, 1e-5, 'layerNorm');
        assertClose(sl(m1), sl(m64), 1e-4, 1e-6, 'layerNorm mean');
        assertClose(sl(s1), sl(s64), 1e-4, 1e-6, 'layerNorm rstd');
      }
    }
  });
}

test('fast paths: copy and copy-accumulate match the reference bit for bit', () => {
  const r = rng(8);
  for (let it = 0; it < 150; it++) {
    const shape = randomShape(r, it % 4 === 0);
    const src = randomView(shape, r, it % 3 === 0);
    const dst = randomView(shape, r);
    for (const acc of [false, true]) {
      const d1 = clone(dst.buf as CpuBuffer), d2 = clone(dst.buf as CpuBuffer);
      cpuBackend.copy(src, withBuf(dst, d1), acc);
      cpuReferenceBackend.copy(src, withBuf(dst, d2), acc);
      assert.deepEqual(d1.data, d2.data, `copy acc=${acc} ${JSON.stringify([shape, src.strides, dst.strides])}`);
    }
  }
});

test('fast paths: sum reductions match the reference bit for bit', () => {
  const r = rng(9);
  for (let it = 0; it < 150; it++) {
    const shape = randomShape(r, it % 4 === 0);
    const x = randomView(shape, r);
    const axes = shape.map((_, d) => d).filter(() => r() < 0.5);
    const outShape = shape.map((s, d) => (axes.includes(d) ? 1 : s));
    const out = denseOut(outShape, r);
    const o1 = clone(out.buf as CpuBuffer), o2 = clone(out.buf as CpuBuffer);
    cpuBackend.reduce('sum', x, axes, withBuf(out, o1));
    cpuReferenceBackend.reduce('sum', x, axes, withBuf(out, o2));
    assert.deepEqual(o1.data, o2.data, `sum ${JSON.stringify([shape, x.strides, axes])}`);
  }
});

test('fast paths: batched matmul against a broadcast B (folded into one sgemm) matches the reference', () => {
  const r = rng(10);
  for (let it = 0; it < 12; it++) {
    const batch = ri(r, 2, 5), M = ri(r, 1, 40), K = ri(r, 1, 50), N = ri(r, 1, 45);
    const lda = K + (it % 2 ? 3 : 0);
    const aOff = ri(r, 0, 4), bOff = ri(r, 0, 4);
    const a: View = { buf: buffer(aOff + batch * M * lda + 2, r), shape: [batch, M, K], strides: [M * lda, lda, 1], offset: aOff };
    const bT = it % 3 === 0;
    const b: View = { buf: buffer(bOff + K * N + 2, r), shape: [batch, K, N], strides: bT ? [0, 1, K] : [0, N, 1], offset: bOff };
    const out = denseOut([batch, M, N], r);
    const o1 = clone(out.buf as CpuBuffer), o2 = clone(out.buf as CpuBuffer);
    cpuBackend.matmul(a, b, withBuf(out, o1));
    cpuReferenceBackend.matmul(a, b, withBuf(out, o2));
    assertClose(o1.data, o2.data, 1e-4, 1e-5, `matmul ${JSON.stringify([batch, M, K, N, bT])}`);
  }
});

/** Shapes of rank 3..6 with short inner rows (rotary embeddings, head split/merge, conv unfold). */
function shortRowShape(r: () => number): number[] {
  const rank = ri(r, 3, 6);
  return Array.from({ length: rank }, (_, d) => (d === rank - 1 ? ri(r, 1, 20) : ri(r, 1, d === 0 ? 3 : 9)));
}

test('fast paths: 3-D tiles of short rows (binary, copy, copy-accumulate) match the reference bit for bit', () => {
  const r = rng(21);
  for (let it = 0; it < 150; it++) {
    const shape = shortRowShape(r);
    const a = randomView(shape, r, it % 2 === 0), b = randomView(shape, r, true), out = denseOut(shape, r);
    for (const op of ['add', 'sub', 'mul', 'div'] as const) {
      const o1 = clone(out.buf as CpuBuffer), o2 = clone(out.buf as CpuBuffer);
      cpuBackend.binary(op, a, b, withBuf(out, o1));
      cpuReferenceBackend.binary(op, a, b, withBuf(out, o2));
      assert.deepEqual(o1.data, o2.data, `${op} ${JSON.stringify([shape, a.strides, b.strides])}`);
    }
    const dst = randomView(shape, r);
    for (const acc of [false, true]) {
      const d1 = clone(dst.buf as CpuBuffer), d2 = clone(dst.buf as CpuBuffer);
      cpuBackend.copy(a, withBuf(dst, d1), acc);
      cpuReferenceBackend.copy(a, withBuf(dst, d2), acc);
      assert.deepEqual(d1.data, d2.data, `copy acc=${acc} ${JSON.stringify([shape, a.strides, dst.strides])}`);
    }
  }
});

test('fast paths: column sums (a bias gradient over many rows) match the reference bit for bit', () => {
  const r = rng(22);
  for (let it = 0; it < 40; it++) {
    const rows = ri(r, 2, 300), cols = ri(r, 1, 70);
    const pad = it % 3 === 0 ? ri(r, 1, 4) : 0;
    const off = ri(r, 0, 3);
    const x: View = { buf: buffer(off + rows * (cols + pad) + 1, r), shape: [rows, cols], strides: [cols + pad, 1], offset: off };
    const out = denseOut([1, cols], r);
    const o1 = clone(out.buf as CpuBuffer), o2 = clone(out.buf as CpuBuffer);
    cpuBackend.reduce('sum', x, [0], withBuf(out, o1));
    cpuReferenceBackend.reduce('sum', x, [0], withBuf(out, o2));
    assert.deepEqual(o1.data, o2.data, `colsum ${rows}x${cols}+${pad}`);
  }
});

test('fast paths: batched matmul (per-item and broadcast A / B batch strides) matches the reference', () => {
  const r = rng(23);
  for (let it = 0; it < 30; it++) {
    const batch = ri(r, 2, 9), M = ri(r, 1, 40), K = ri(r, 1, 50), N = ri(r, 1, 45);
    const aB = it % 4 === 1 ? 0 : 1, bB = it % 4 === 2 ? 0 : 1;
    const aT = r() < 0.5, bT = r() < 0.5, lda = (aT ? M : K) + (it % 2 ? 2 : 0);
    const aOff = ri(r, 0, 4), bOff = ri(r, 0, 4);
    const aItem = (aT ? K : M) * lda, bItem = K * N + 3;
    const a: View = { buf: buffer(aOff + (aB ? batch : 1) * aItem + 2, r), shape: [batch, M, K], strides: [aB * aItem, aT ? 1 : lda, aT ? lda : 1], offset: aOff };
    const b: View = { buf: buffer(bOff + (bB ? batch : 1) * bItem + 2, r), shape: [batch, K, N], strides: [bB * bItem, bT ? 1 : N, bT ? K : 1], offset: bOff };
    const out = denseOut([batch, M, N], r);
    const o1 = clone(out.buf as CpuBuffer), o2 = clone(out.buf as CpuBuffer);
    cpuBackend.matmul(a, b, withBuf(out, o1));
    cpuReferenceBackend.matmul(a, b, withBuf(out, o2));
    assertClose(o1.data, o2.data, 1e-4, 1e-5, `matmul ${JSON.stringify([batch, M, K, N, a.strides, b.strides])}`);
  }
});

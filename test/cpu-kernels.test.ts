// The cpu backend's wasm kernels against the TypeScript reference (the spec), as fast-check properties
// over random shapes, strides, offsets and broadcasts. Operands live in the shared heap (in place) or in
// ordinary arrays (staged), and every property asserts that the wasm path actually ran (fastHits).
// Each family runs on one thread and on two threads with tiny parallel thresholds, and the two runs
// must agree bit for bit (the task split never depends on the thread count).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as L from '../src/index.js';
import type { BinaryOp, UnaryOp, View } from '../src/backends/backend.js';
import { cpuBackend, cpuReferenceBackend } from '../src/backends/cpu/index.js';
import { CpuBuffer } from '../src/backends/cpu/buffer.js';
import { cpuFused } from '../src/backends/cpu/fused.js';
import { heap, Heap } from '../src/backends/cpu/heap.js';
import { fastHits, kernels, setThreads, _grab, _openTickets, _poolStats } from '../src/backends/cpu/fast/kernels.js';
import { tuning } from '../src/backends/cpu/fast/elementwise.js';
import { rowopsSetOptions, _expf32 } from '../src/backends/cpu/fast/rowops.js';
import { convSetOptions } from '../src/ops/conv.js';
import { sgemmSetOptions } from '../src/backends/cpu/fast/sgemm.js';
import { rng } from './harness/compare.js';
import { skipUnless } from './harness/require.js';
import { scaledMs } from './harness/load.js';

/** fc.assert that reports the underlying error's message (the runner does not print the cause). */
function fcAssert<T>(prop: fc.IProperty<T>, params: fc.Parameters<T>): void {
  const out = fc.check(prop, params);
  if (out.failed) {
    const cause = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    throw new Error(`property failed for ${fc.stringify(out.counterexample)}: ${cause}`);
  }
}

const fast = kernels() !== null;
// LAVENDER_REQUIRE_SIMD=1 (.ci/run) turns missing kernels into a failure instead of skipped tests
const skip = skipUnless('SIMD', fast, 'the wasm kernels are unavailable (no wasm SIMD here, or run `npm run build:wasm`)');
const RUNS = 25;

// ---------------------------------------------------------------------------------------------------
// Views: random layouts over heap or plain buffers.

interface Layout { shape: number[]; order: number[]; pads: number[]; zero: boolean[]; offset: number; heap: boolean; neg: number }

const layoutArb = (shape: number[], allowBroadcast: boolean): fc.Arbitrary<Layout> => fc.record({
  shape: fc.constant(shape),
  order: fc.shuffledSubarray([...shape.keys()], { minLength: shape.length, maxLength: shape.length }),
  pads: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: shape.length, maxLength: shape.length }),
  zero: fc.array(allowBroadcast ? fc.boolean() : fc.constant(false), { minLength: shape.length, maxLength: shape.length }),
  offset: fc.integer({ min: 0, max: 5 }),
  heap: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  neg: fc.integer({ min: -1, max: shape.length - 1 }),
});

function randomBuffer(n: number, onHeap: boolean, r: () => number, special = false): CpuBuffer {
  const b = onHeap ? (cpuBackend.alloc('float32', n) as CpuBuffer) : new CpuBuffer('float32', n, new Float32Array(n));
  const d = b.data as Float32Array;
  for (let i = 0; i < n; i++) d[i] = (r() * 2 - 1) * 3;
  if (special && n > 4) { d[0] = NaN; d[1] = -0; d[2] = Infinity; d[3] = 0; }
  return b;
}

/** A view of `shape` with the layout's permuted, padded strides (stride 0 on broadcast dims, one reversed dim). */
function makeView(l: Layout, r: () => number, special = false): View {
  const strides = new Array<number>(l.shape.length).fill(0);
  let s = 1;
  for (let i = l.order.length - 1; i >= 0; i--) {
    const d = l.order[i]!;
    if (l.zero[d]) continue;
    strides[d] = s;
    s *= l.shape[d]! + l.pads[d]!;
  }
  let offset = l.offset;
  if (l.neg >= 0 && strides[l.neg]! > 0) {
    offset += (l.shape[l.neg]! - 1) * strides[l.neg]!;
    strides[l.neg] = -strides[l.neg]!;
  }
  return { buf: randomBuffer(offset + s + 3, l.heap, r, special), shape: l.shape, strides, offset };
}

function denseView(shape: number[], onHeap: boolean, r: () => number, offset = 1): View {
  const strides: number[] = [];
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) { strides[i] = s; s *= shape[i]!; }
  return { buf: randomBuffer(offset + s + 2, onHeap, r), shape, strides, offset };
}

/** The same view over a copy of its buffer (so two backends can write their own outputs). */
function twin(v: View): View {
  const b = v.buf as CpuBuffer;
  const c = (b.addr >= 0 ? cpuBackend.alloc('float32', b.size) : new CpuBuffer('float32', b.size, new Float32Array(b.size))) as CpuBuffer;
  c.data.set(b.data);
  return { ...v, buf: c };
}

const data = (v: View): Float32Array => (v.buf as CpuBuffer).data as Float32Array;

function free(...vs: View[]): void {
  for (const v of vs) if ((v.buf as CpuBuffer).addr >= 0 && !(v.buf as CpuBuffer).freed) cpuBackend.free(v.buf);
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    if (Object.is(a[i], b[i]) || (Number.isNaN(a[i]!) && Number.isNaN(b[i]!))) continue;
    assert.fail(`${what}: element ${i} is ${a[i]}, reference ${b[i]}`);
  }
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(y)) { assert.ok(Number.isNaN(x), `${what}[${i}]: ${x}, reference NaN`); continue; }
    if (x === y) continue;
    assert.ok(Math.abs(x - y) <= atol + rtol * Math.abs(y), `${what}[${i}]: ${x}, reference ${y}`);
  }
}

/** Asserts that the wasm path `name` ran during fn. */
function reaches<T>(name: string, fn: () => T): T {
  const before = fastHits[name] ?? 0;
  const out = fn();
  assert.ok((fastHits[name] ?? 0) > before, `the wasm ${name} kernel did not run`);
  return out;
}

const shapeArb = fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 });

/** Runs `body` on one thread, then on two with every job split, returning both results for comparison. */
function bothThreadings(body: () => Float32Array[]): void {
  setThreads(1);
  const one = body();
  const saved = { ...tuning };
  setThreads(2);
  tuning.parallelElems = 1; tuning.pieceElems = 4;
  try {
    const two = body();
    one.forEach((a, i) => sameBits(two[i]!, a, `1 vs 2 threads, result ${i}`));
  } finally {
    Object.assign(tuning, saved);
    setThreads(1);
  }
}

// ---------------------------------------------------------------------------------------------------

test('heap: blocks never overlap, coalesce and return to the top', () => {
  const mem = new WebAssembly.Memory({ initial: 3, maximum: 64 });
  const h = new Heap(mem, false, 64 * 65536);
  const r = rng(1);
  const live: [number, number][] = [];
  for (let i = 0; i < 3000; i++) {
    if (live.length && r() < 0.45) {
      const [a, n] = live.splice(Math.floor(r() * live.length), 1)[0]!;
      h.free(a, n);
    } else {
      const n = 1 + Math.floor(r() ** 3 * 200000);
      const a = h.alloc(n);
      if (a < 0) continue;
      assert.equal(a % 64, 0);
      for (const [b, m] of live) assert.ok(a + n <= b || b + m <= a, `block ${a}+${n} overlaps ${b}+${m}`);
      live.push([a, n]);
    }
  }
  for (const [a, n] of live) h.free(a, n);
  assert.equal(h.liveBytes, 0);
  assert.equal(h.highWater, 131072, 'freeing everything coalesces back to the heap base');
});

test('heap: cpu tensors live in the shared heap (in place for the kernels)', { skip: !heap?.shared && 'no shared memory' }, () => {
  const t = L.zeros([1000]);
  const b = t.storage.buf as CpuBuffer;
  assert.ok(b.addr >= 131072 && heap!.owns(b.data));
  t.dispose();
});

test('wasm exp is within 2 float32 ulps of Math.exp, with the special values', { skip }, () => {
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

const UNARY: UnaryOp[] = ['neg', 'abs', 'sqrt', 'rsqrt', 'exp', 'sigmoid', 'silu', 'relu', 'square', 'reciprocal'];
const APPROX = new Set<UnaryOp>(['exp', 'sigmoid', 'silu']);

test('unary kernels match the reference (exact; exp/sigmoid/silu within 1e-5)', { skip }, () => {
  // outputs of unary and binary are contiguous (the seam's contract), at any offset
  fcAssert(fc.property(shapeArb.chain((s) => fc.tuple(layoutArb(s, false), fc.boolean(), fc.constantFrom(...UNARY), fc.nat())), ([lx, outHeap, op, seed]) => {
    const r = rng(seed);
    const x = makeView(lx, r, true), out = denseView(lx.shape, outHeap, r, 1 + (seed % 3));
    bothThreadings(() => {
      const o1 = twin(out), o2 = twin(out);
      reaches('unary', () => cpuBackend.unary(op, x, o1));
      cpuReferenceBackend.unary(op, x, o2);
      if (APPROX.has(op)) close(data(o1), data(o2), 1e-5, 1e-30, op);
      else sameBits(data(o1), data(o2), op);
      const res = [data(o1).slice()];
      free(o1, o2);
      return res;
    });
    free(x, out);
  }), { numRuns: RUNS, verbose: 1 });
});

const BINARY: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'];

test('binary kernels (broadcast, strided, reversed) match the reference bit for bit', { skip }, () => {
  fcAssert(fc.property(shapeArb.chain((s) => fc.tuple(layoutArb(s, true), layoutArb(s, true), fc.boolean(), fc.constantFrom(...BINARY), fc.nat())),
    ([la, lb, outHeap, op, seed]) => {
      const r = rng(seed);
      const a = makeView(la, r, true), b = makeView(lb, r, true), out = denseView(la.shape, outHeap, r, seed % 4);
      bothThreadings(() => {
        const o1 = twin(out), o2 = twin(out);
        reaches('binary', () => cpuBackend.binary(op, a, b, o1));
        cpuReferenceBackend.binary(op, a, b, o2);
        sameBits(data(o1), data(o2), op);
        const res = [data(o1).slice()];
        free(o1, o2);
        return res;
      });
      free(a, b, out);
    }), { numRuns: RUNS * 2, verbose: 1 });
});

test('scalar operands travel as kernel arguments and match a 0-d float32 operand bit for bit', { skip }, () => {
  fcAssert(fc.property(shapeArb.chain((s) => fc.tuple(layoutArb(s, false), fc.constantFrom(...BINARY), fc.double({ min: -10, max: 10, noNaN: true }), fc.boolean(), fc.nat())),
    ([la, op, s, first, seed]) => {
      const r = rng(seed);
      const a = makeView(la, r, true);
      const out = denseView(la.shape, true, r, 0);
      const scalar = cpuBackend.alloc('float32', 1) as CpuBuffer;
      scalar.data[0] = s;
      const sv: View = { buf: scalar, shape: la.shape, strides: la.shape.map(() => 0), offset: 0 };
      bothThreadings(() => {
        const o1 = twin(out), o2 = twin(out);
        reaches('binaryScalar', () => cpuBackend.binaryScalar!(op, a, s, o1, first));
        if (first) cpuReferenceBackend.binary(op, sv, a, o2);
        else cpuReferenceBackend.binary(op, a, sv, o2);
        sameBits(data(o1), data(o2), `${first ? 's op a' : 'a op s'} ${op} ${s}`);
        const res = [data(o1).slice()];
        free(o1, o2);
        return res;
      });
      cpuBackend.free(scalar);
      free(a, out);
    }), { numRuns: RUNS * 2, verbose: 1 });
});

test('strided copy and copy-accumulate match the reference bit for bit', { skip }, () => {
  fcAssert(fc.property(shapeArb.chain((s) => fc.tuple(layoutArb(s, true), layoutArb(s, false), fc.boolean(), fc.nat())), ([ls, ld, acc, seed]) => {
    const r = rng(seed);
    const src = makeView(ls, r), dst = makeView(ld, r);
    bothThreadings(() => {
      const d1 = twin(dst), d2 = twin(dst);
      reaches('copy', () => cpuBackend.copy(src, d1, acc));
      cpuReferenceBackend.copy(src, d2, acc);
      sameBits(data(d1), data(d2), `copy acc=${acc}`);
      const res = [data(d1).slice()];
      free(d1, d2);
      return res;
    });
    free(src, dst);
  }), { numRuns: RUNS * 2, verbose: 1 });
});

test('sum over any axes matches the reference (column sums bit for bit, row sums within 1e-6)', { skip }, () => {
  fcAssert(fc.property(shapeArb.chain((s) => fc.tuple(layoutArb(s, false), fc.subarray([...s.keys()]), fc.nat())), ([lx, axes, seed]) => {
    const r = rng(seed);
    const x = makeView(lx, r);
    const out = denseView(lx.shape.map((d, i) => (axes.includes(i) ? 1 : d)), true, r);
    bothThreadings(() => {
      const o1 = twin(out), o2 = twin(out);
      reaches('sum', () => cpuBackend.reduce('sum', x, axes, o1));
      cpuReferenceBackend.reduce('sum', x, axes, o2);
      close(data(o1), data(o2), 1e-6, 1e-6, `sum over ${axes}`);
      const res = [data(o1).slice()];
      free(o1, o2);
      return res;
    });
    free(x, out);
  }), { numRuns: RUNS * 2, verbose: 1 });
});

test('matmul in place on the heap (edges, transposes, broadcast batches) matches the reference', { skip }, () => {
  const arb = fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 30 }),
    fc.boolean(), fc.boolean(), fc.constantFrom(0, 1, 2), fc.nat());
  fcAssert(fc.property(arb, ([batch, M, K, N, aT, bT, share, seed]) => {
    const r = rng(seed);
    const aItem = M * K + 3, bItem = K * N + 1;
    const aB = share === 1 ? 0 : aItem, bB = share === 2 ? 0 : bItem;
    const a: View = { buf: randomBuffer(2 + batch * aItem, true, r), shape: [batch, M, K], strides: [aB, aT ? 1 : K, aT ? M : 1], offset: 2 };
    const b: View = { buf: randomBuffer(1 + batch * bItem, r() < 0.8, r), shape: [batch, K, N], strides: [bB, bT ? 1 : N, bT ? K : 1], offset: 1 };
    const out = denseView([batch, M, N], true, r, 3);
    sgemmSetOptions({ minWork: 0 });
    bothThreadings(() => {
      const o1 = twin(out), o2 = twin(out);
      reaches('matmul', () => cpuBackend.matmul(a, b, o1));
      cpuReferenceBackend.matmul(a, b, o2);
      close(data(o1), data(o2), 1e-4, 1e-5, `matmul ${[batch, M, K, N, aT, bT, share]}`);
      const res = [data(o1).slice()];
      free(o1, o2);
      return res;
    });
    sgemmSetOptions({ minWork: 4096 });
    free(a, b, out);
  }), { numRuns: RUNS, verbose: 1 });
});

/** float64 copy of a float32 view (the TypeScript loops of cpuFused then run in float64). */
function to64(v: View): View {
  const b = v.buf as CpuBuffer;
  return { ...v, buf: new CpuBuffer('float64', b.size, Float64Array.from(b.data)) };
}
const rowsOf = (v: View, rows: number, cols: number): Float32Array | Float64Array =>
  ((v.buf as CpuBuffer).data as Float32Array).subarray(v.offset, v.offset + rows * cols);

test('row kernels (softmax, log-softmax, backward, layer norm and its backward, silu backward) match the TypeScript loops', { skip }, () => {
  rowopsSetOptions({ minElems: 1 });
  try {
    fcAssert(fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 70 }), fc.constantFrom(1, 0.25, 1.7), fc.boolean(), fc.nat(), (rows, cols, scale, affine, seed) => {
      const r = rng(seed);
      const x = denseView([rows, cols], r() < 0.8, r), g = denseView([rows, cols], true, r), out = denseView([rows, cols], true, r);
      const y = denseView([rows, cols], true, r);
      const w = affine ? denseView([cols], true, r) : null, b = affine ? denseView([cols], true, r) : null;
      const mu0 = denseView([rows, 1], true, r), rs0 = denseView([rows, 1], true, r), cvec = denseView([cols], true, r);
      bothThreadings(() => {
        const res: Float32Array[] = [];
        for (const log of [false, true]) {
          const o1 = twin(out), o2 = to64(out);
          reaches('softmax', () => cpuFused.softmax(x, o1, log, scale));
          cpuFused.softmax(to64(x), o2, log, scale);
          close(rowsOf(o1, rows, cols), rowsOf(o2, rows, cols), 1e-5, 1e-6, `softmax log=${log}`);
          res.push(data(o1).slice());
          free(o1);
        }
        {
          const o1 = twin(out), o2 = to64(out);
          reaches('softmaxBackward', () => cpuFused.softmaxBackward(y, g, o1, scale));
          cpuFused.softmaxBackward(to64(y), to64(g), o2, scale);
          close(rowsOf(o1, rows, cols), rowsOf(o2, rows, cols), 1e-4, 1e-4, 'softmaxBackward');
          res.push(data(o1).slice());
          free(o1);
        }
        {
          const o1 = twin(out), o2 = to64(out);
          reaches('siluBackward', () => cpuFused.siluBackward(x, g, o1));
          cpuFused.siluBackward(to64(x), to64(g), o2);
          close(rowsOf(o1, rows, cols), rowsOf(o2, rows, cols), 1e-5, 1e-6, 'siluBackward');
          res.push(data(o1).slice());
          free(o1);
        }
        const mu = twin(mu0), rs = twin(rs0);
        const o1 = twin(out), mu64 = to64(mu), rs64 = to64(rs), o2 = to64(out);
        reaches('layerNorm', () => cpuFused.layerNorm(x, w, b, 1e-5, o1, mu, rs));
        cpuFused.layerNorm(to64(x), w && to64(w), b && to64(b), 1e-5, o2, mu64, rs64);
        close(rowsOf(o1, rows, cols), rowsOf(o2, rows, cols), 1e-4, 1e-5, 'layerNorm');
        close(rowsOf(mu, rows, 1), rowsOf(mu64, rows, 1), 1e-4, 1e-6, 'layerNorm mean');
        close(rowsOf(rs, rows, 1), rowsOf(rs64, rows, 1), 1e-4, 1e-6, 'layerNorm rstd');
        const dx1 = twin(out), dx2 = to64(out);
        const dw1 = affine ? twin(cvec) : null, db1 = affine ? twin(cvec) : null;
        const dw2 = dw1 && to64(dw1), db2 = db1 && to64(db1);
        reaches('layerNormBackward', () => cpuFused.layerNormBackward!(x, mu, rs, w, g, dx1, dw1, db1));
        cpuFused.layerNormBackward!(to64(x), to64(mu), to64(rs), w && to64(w), to64(g), dx2, dw2, db2);
        close(rowsOf(dx1, rows, cols), rowsOf(dx2, rows, cols), 1e-4, 1e-4, 'layerNormBackward dx');
        if (dw1) close(rowsOf(dw1, 1, cols), rowsOf(dw2!, 1, cols), 1e-4, 1e-4, 'layerNormBackward dw');
        if (db1) close(rowsOf(db1, 1, cols), rowsOf(db2!, 1, cols), 1e-4, 1e-4, 'layerNormBackward db');
        res.push(data(o1).slice(), data(mu).slice(), data(dx1).slice(), ...(dw1 ? [data(dw1).slice(), data(db1!).slice()] : []));
        free(o1, dx1, mu, rs, ...[dw1, db1].filter((t): t is View => !!t));
        return res;
      });
      free(x, g, out, y, mu0, rs0, cvec, ...[w, b].filter((t): t is View => !!t));
    }), { numRuns: RUNS, verbose: 1 });
  } finally {
    rowopsSetOptions({ minElems: 256 });
  }
});

// ---------------------------------------------------------------------------------------------------
// Fused ops through the ops layer.

/** Runs fn with some fused cpu kernels removed (to compare against the decomposition). */
function without<T>(names: (keyof typeof cpuFused)[], fn: () => T): T {
  const saved = names.map((n) => [n, cpuFused[n]] as const);
  for (const n of names) delete (cpuFused as unknown as Record<string, unknown>)[n];
  try {
    return fn();
  } finally {
    for (const [n, f] of saved) (cpuFused as unknown as Record<string, unknown>)[n] = f;
  }
}

/** out and input gradients of attention on [B, H, T, D] heads split from [B, T, H, D] (strided, as in a model). */
function attentionRun(B: number, H: number, Tq: number, Tk: number, D: number, Dv: number, seed: number): Float32Array[] {
  return L.scope(() => {
    const gen = new L.Generator(seed);
    const q0 = L.randn([B, Tq, H, D], { generator: gen }).requiresGrad_();
    const k0 = L.randn([B, Tk, H, D], { generator: gen }).requiresGrad_();
    const v0 = L.randn([B, Tk, H, Dv], { generator: gen }).requiresGrad_();
    const w = L.randn([B, H, Tq, Dv], { generator: gen });
    const heads = (t: L.Tensor) => L.permute(t, [0, 2, 1, 3]);
    const out = L.scaledDotProductAttention(heads(q0), heads(k0), heads(v0), 0.7);
    L.sum(L.mul(out, w)).backward();
    return [out, q0.grad!, k0.grad!, v0.grad!].map((t) => t.toArray() as Float32Array);
  });
}

test('fused attention (forward and backward) matches the composed attention; the lse decomposition too', { skip }, () => {
  const arb = fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }),
    fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), fc.nat());
  fcAssert(fc.property(arb, ([B, H, Tq, Tk, D, Dv, seed]) => {
    const ref = without(['attention', 'attentionBackward'], () => attentionRun(B, H, Tq, Tk, D, Dv, seed));
    const names = ['output', 'dq', 'dk', 'dv'];
    bothThreadings(() => {
      const got = reaches('attentionBackward', () => reaches('attention', () => attentionRun(B, H, Tq, Tk, D, Dv, seed)));
      got.forEach((a, i) => close(a, ref[i]!, 1e-4, 1e-5, `attention ${names[i]} ${[B, H, Tq, Tk, D, Dv]}`));
      return got;
    });
    const dec = reaches('attention', () => without(['attentionBackward'], () => attentionRun(B, H, Tq, Tk, D, Dv, seed)));
    dec.forEach((a, i) => close(a, ref[i]!, 1e-4, 1e-5, `attention (lse decomposition) ${names[i]}`));
  }), { numRuns: RUNS, verbose: 1 });
});

test('a long block of keys (several query-row blocks) and a big batch of heads', { skip }, () => {
  const ref = without(['attention', 'attentionBackward'], () => attentionRun(2, 3, 700, 300, 16, 8, 5));
  const got = reaches('attention', () => attentionRun(2, 3, 700, 300, 16, 8, 5));
  ['output', 'dq', 'dk', 'dv'].forEach((n, i) => close(got[i]!, ref[i]!, 1e-4, 1e-5, `attention ${n}`));
});

function trainParams(opt: 'adam' | 'adamw' | 'sgd', wd: number, seed: number, fused: boolean): Float32Array[] {
  const run = () => L.scope(() => {
    const gen = new L.Generator(seed);
    const ps = [L.randn([37, 5], { generator: gen }), L.randn([100003], { generator: gen }), L.randn([3], { generator: gen })].map((p) => L.keep(p.requiresGrad_()));
    const o = opt === 'sgd' ? new L.optim.SGD(ps, { lr: 0.05, momentum: 0.9, weightDecay: wd })
      : new (opt === 'adam' ? L.optim.Adam : L.optim.AdamW)([{ params: ps.slice(0, 2) }, { params: ps.slice(2), lr: 3e-3 }], { lr: 1e-2, weightDecay: wd, betas: [0.8, 0.95] });
    for (let i = 0; i < 3; i++) {
      L.scope(() => {
        o.zeroGrad();
        L.sum(L.mul(L.square(ps[0]!), 0.5)).backward();
        L.sum(L.sin(ps[1]!)).backward();
        if (i !== 1) L.sum(L.mul(ps[2]!, ps[2]!)).backward(); // a parameter that skips a step
        o.step();
      });
    }
    const res = ps.map((p) => p.toArray() as Float32Array);
    if ('dispose' in o) (o as { dispose(): void }).dispose();
    for (const p of ps) p.dispose();
    return res;
  });
  return fused ? reaches(opt === 'sgd' ? 'sgd' : 'adamw', run) : without(['adamw', 'sgd'], run);
}

test('fused Adam / AdamW / SGD steps equal the composed steps bit for bit', { skip }, () => {
  for (const opt of ['adam', 'adamw', 'sgd'] as const) {
    for (const wd of [0, 0.1]) {
      const ref = trainParams(opt, wd, 7, false);
      bothThreadings(() => {
        const got = trainParams(opt, wd, 7, true);
        got.forEach((p, i) => sameBits(p, ref[i]!, `${opt} wd=${wd} parameter ${i}`));
        return got;
      });
    }
  }
});

test('conv2d in several chunks matches one chunk and the reference backend (forward and gradients)', { skip }, () => {
  L.registerBackendInstance(cpuReferenceBackend);
  const run = (device: string) => L.scope(() => {
    const gen = new L.Generator(3);
    const x = L.randn([5, 3, 9, 8], { generator: gen }).to(device).requiresGrad_();
    const w = L.randn([4, 3, 3, 3], { generator: gen }).to(device).requiresGrad_();
    const b = L.randn([4], { generator: gen }).to(device).requiresGrad_();
    const y = L.conv2d(x, w, b, { stride: 2, padding: 1 });
    L.sum(L.mul(y, L.cos(y))).backward();
    return [y, x.grad!, w.grad!, b.grad!].map((t) => t.toArray());
  });
  const ref = run('cpu-reference');
  for (const chunk of [1, 100, 1 << 21]) {
    convSetOptions({ chunkFloats: chunk });
    const got = run('cpu');
    got.forEach((a, i) => close(a, ref[i]!, 1e-4, 1e-5, `conv2d chunk ${chunk} result ${i}`));
  }
  convSetOptions({ chunkFloats: 1 << 21 });
});

test('two threads: the workers take tasks and sleep when idle', { skip: (skip || (kernels()?.heap.shared ? false : 'no shared memory')) as string | false }, async () => {
  setThreads(2);
  tuning.parallelElems = 1;
  try {
    const before = _poolStats().workerTasks;
    const x = L.randn([1 << 16]);
    // on a loaded machine a sleeping worker may wake only after this thread has run a whole job alone:
    // keep issuing jobs (pausing now and then, so the workers go back to sleep) until one takes a task
    const deadline = Date.now() + scaledMs(10_000);
    for (let i = 0; _poolStats().workerTasks === before && (i < 200 || Date.now() < deadline); i++) {
      L.exp(x).dispose();
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(_poolStats().workerTasks > before, 'no task ran on a worker');
    x.dispose();
  } finally {
    tuning.parallelElems = 1 << 16;
    setThreads(1);
  }
});

test('fused swiglu and rotary (forward and backward) give the bits of their compositions', { skip }, () => {
  const run = (B: number, T: number, H: number, hd: number, seed: number) => L.scope(() => {
    const gen = new L.Generator(seed);
    const a = L.randn([B, T, 3 * hd], { generator: gen }).requiresGrad_(), b = L.randn([B, T, 3 * hd], { generator: gen }).requiresGrad_();
    const x = L.randn([B, T, H, hd], { generator: gen }).requiresGrad_();
    const tables = L.randn([T, hd / 2], { generator: gen }), tables2 = L.randn([T, hd / 2], { generator: gen });
    const y = L.swiglu(a, b), r = L.rotary(x, tables, tables2);
    const w1 = L.randn(y.shape, { generator: gen }), w2 = L.randn(r.shape, { generator: gen });
    L.add(L.sum(L.mul(y, w1)), L.sum(L.mul(r, w2))).backward();
    return [y, r, a.grad!, b.grad!, x.grad!].map((t) => t.toArray() as Float32Array);
  });
  // the composition's silu backward must take the wasm kernel too (below 256 elements it runs a float64 loop)
  rowopsSetOptions({ minElems: 1 });
  fcAssert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 12 }), fc.nat(),
    (B, T, H, half, seed) => {
      const ref = without(['swiglu', 'swigluBackward', 'rotary'], () => run(B, T, H, 2 * half, seed));
      bothThreadings(() => {
        const got = reaches('swigluBackward', () => reaches('swiglu', () => reaches('rotary', () => run(B, T, H, 2 * half, seed))));
        got.forEach((g, i) => sameBits(g, ref[i]!, ['swiglu', 'rotary', 'd swiglu / da', 'd swiglu / db', 'd rotary / dx'][i]!));
        return got;
      });
    }), { numRuns: RUNS });
  rowopsSetOptions({ minElems: 256 });
});

test('past the heap cap, buffers are ordinary arrays and every kernel stages them: a training step still matches', async () => {
  const { spawnSync } = await import('node:child_process');
  // a small DiT step with a 12 MiB heap (most buffers overflow it) against the same step with the full heap
  const script = `
    import * as L from './dist/src/index.js';
    import { DiT } from './dist/src/models/dit.js';
    import { flowLoss } from './dist/src/flow/rectified-flow.js';
    import { cpuMemoryStats } from './dist/src/backends/cpu/index.js';
    const gen = new L.Generator(0);
    const model = new DiT({ in_channels: 1, input_size: 16, dim: 64, n_layers: 2, n_heads: 4, num_classes: 10 }, { generator: gen });
    model.generator = gen;
    const opt = new L.optim.AdamW(model.parameters(), { lr: 1e-3 });
    const x = L.keep(L.randn([8, 1, 16, 16], { generator: gen })), y = L.keep(L.tensor([0, 1, 2, 3, 4, 5, 6, 7], { dtype: 'int64' }));
    const losses = [];
    for (let i = 0; i < 2; i++) losses.push(L.scope(() => {
      const { loss } = flowLoss((xt, t, c) => model.forward(xt, t, c), x, y, { generator: gen });
      opt.zeroGrad(); loss.backward(); opt.step(); return loss.item();
    }));
    const m = cpuMemoryStats();
    console.log(JSON.stringify({ losses, cap: m.heapBytes, outside: m.spilled }));`;
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  };
  const full = run({}), capped = run({ LAVENDER_CPU_HEAP_MB: '12' });
  assert.ok(capped.cap <= 12 * 2 ** 20 && capped.outside > 0, `the capped run should spill buffers out of its heap (spilled ${capped.outside}, heap ${capped.cap} bytes)`);
  assert.equal(full.outside, 0);
  full.losses.forEach((l: number, i: number) => assert.ok(Math.abs(l - capped.losses[i]) <= 1e-5 * Math.abs(l), `step ${i}: ${capped.losses[i]} vs ${l}`));
});

test('the pool\'s tickets: a participant that read job j\'s parameters never takes a task of a later job numbered alike', () => {
  // a worker descheduled between reading a job's task count and grabbing must find the tickets closed to
  // it however many jobs ran meanwhile (a 15-bit job number came round again after 32,768 jobs)
  const ctrl = new Int32Array(new SharedArrayBuffer(64 * 4));
  _openTickets(ctrl, 5, true);
  assert.deepEqual([_grab(ctrl, 5, 2), _grab(ctrl, 5, 2), _grab(ctrl, 5, 2)], [0, 1, -1]);
  _openTickets(ctrl, 5, false);
  assert.equal(_grab(ctrl, 5, 2), -1, 'closed');
  for (const later of [5 + (1 << 15), 5 + (1 << 16), 6]) {
    _openTickets(ctrl, later, true);
    assert.equal(_grab(ctrl, 5, 100), -1, `job ${later} is not job 5`);
    assert.equal(_grab(ctrl, later, 1), 0);
    _openTickets(ctrl, later, false);
  }
});

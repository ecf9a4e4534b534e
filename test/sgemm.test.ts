import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { sgemm, sgemmBatched, sgemmInfo, sgemmSetOptions, sgemmShutdown, _sgemmStats } from '../src/backends/cpu/fast/sgemm.js';
import { rng } from './harness/compare.js';
import { skipUnless } from './harness/require.js';

// ---------------------------------------------------------------------------------------------------
// Helpers.


function randArray(n: number, r: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = r() * 2 - 1;
  return x;
}

interface View { data: Float32Array; off: number; rs: number; cs: number }

/** Builds a rows x cols view of random values with the given layout. */
function makeView(rows: number, cols: number, layout: 'row' | 'col' | 'offset' | 'sparse' | 'neg' | 'bcast', r: () => number): View {
  switch (layout) {
    case 'row': return { data: randArray(rows * cols, r), off: 0, rs: cols, cs: 1 };
    case 'col': return { data: randArray(rows * cols, r), off: 0, rs: 1, cs: rows };
    case 'offset': {
      // Padded rows and a leading offset (a slice of a bigger row-major buffer).
      const ld = cols + 3, off = 7;
      return { data: randArray(off + rows * ld + 5, r), off, rs: ld, cs: 1 };
    }
    case 'sparse': {
      // Large strides in both directions: much bigger span than rows*cols (takes the gather path).
      const rs = cols * 5 + 1, cs = 3, off = 11;
      return { data: randArray(off + (rows - 1) * rs + (cols - 1) * cs + 1, r), off, rs, cs };
    }
    case 'neg': {
      // Rows in reverse order (negative row stride).
      const data = randArray(rows * cols, r);
      return { data, off: (rows - 1) * cols, rs: -cols, cs: 1 };
    }
    case 'bcast': {
      // Every row the same (row stride 0).
      return { data: randArray(cols, r), off: 0, rs: 0, cs: 1 };
    }
  }
}

/** float64 reference; also returns sum_k |a||b| per element for the error bound. */
function reference(M: number, N: number, K: number, A: View, B: View): { ref: Float64Array; mag: Float64Array } {
  const ref = new Float64Array(M * N), mag = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let k = 0; k < K; k++) {
      const a = A.data[A.off + i * A.rs + k * A.cs];
      for (let j = 0; j < N; j++) {
        const b = B.data[B.off + k * B.rs + j * B.cs];
        ref[i * N + j] += a * b;
        mag[i * N + j] += Math.abs(a * b);
      }
    }
  }
  return { ref, mag };
}

function check(M: number, N: number, K: number, A: View, B: View, ldc = N, cOff = 0, label = ''): Float32Array {
  const C = new Float32Array(cOff + (M > 0 ? (M - 1) * ldc + N : 0) + 4).fill(12345);
  const ok = sgemm(M, N, K, A.data, A.off, A.rs, A.cs, B.data, B.off, B.rs, B.cs, C, cOff, ldc);
  assert.equal(ok, true, `sgemm returned false ${label}`);
  const { ref, mag } = reference(M, N, K, A, B);
  const rel = Math.max(1e-4, K * 1.2e-7);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const got = C[cOff + i * ldc + j], want = ref[i * N + j];
      const tol = rel * mag[i * N + j] + 1e-6;
      if (!(Math.abs(got - want) <= tol)) {
        assert.fail(`${label} M=${M} N=${N} K=${K}: C[${i},${j}] = ${got}, want ${want} (tol ${tol})`);
      }
    }
  }
  // Nothing outside the M x N window (ldc padding, before the offset, after the end) was touched.
  for (let x = 0; x < C.length; x++) {
    const i = Math.floor((x - cOff) / ldc), j = (x - cOff) - i * ldc;
    const inside = x >= cOff && i < M && j < N;
    if (!inside && C[x] !== 12345) assert.fail(`${label} wrote outside C at ${x}`);
  }
  return C;
}

const fast = sgemmInfo().simd;
const skip = skipUnless('SIMD', fast, 'wasm SIMD kernels unavailable (run `npm run build:wasm`)');

// ---------------------------------------------------------------------------------------------------
// Tests.

test('sgemmInfo reports the variant', () => {
  const info = sgemmInfo();
  assert.equal(typeof info.simd, 'boolean');
  assert.equal(typeof info.relaxed, 'boolean');
  assert.ok(Number.isInteger(info.threads) && info.threads >= 1);
  if (!info.simd) assert.equal(info.relaxed, false);
});

test('odd sizes, row-major, single thread', { skip }, () => {
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const r = rng(1);
  const sizes: [number, number, number][] = [
    [1, 1, 1], [3, 17, 5], [65, 33, 129], [1, 64, 64], [64, 1, 64], [64, 64, 1], [5, 8, 3], [6, 8, 4],
    [7, 9, 11], [13, 31, 600], [100, 100, 100], [121, 17, 513], [2, 300, 7],
  ];
  for (const [M, N, K] of sizes) check(M, N, K, makeView(M, K, 'row', r), makeView(K, N, 'row', r), N, 0, 'row');
  for (let t = 0; t < 30; t++) {
    const M = 1 + Math.floor(r() * 70), N = 1 + Math.floor(r() * 70), K = 1 + Math.floor(r() * 140);
    check(M, N, K, makeView(M, K, 'row', r), makeView(K, N, 'row', r), N, 0, 'random');
  }
});

test('transposed, offset, sparse, negative and broadcast strides; ldc and C offset', { skip }, () => {
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const r = rng(2);
  const layouts = ['row', 'col', 'offset', 'sparse', 'neg', 'bcast'] as const;
  const sizes: [number, number, number][] = [[1, 1, 1], [3, 17, 5], [65, 33, 129], [20, 24, 37]];
  for (const la of layouts) {
    for (const lb of layouts) {
      for (const [M, N, K] of sizes) {
        const ldc = N + (la === lb ? 0 : 5), cOff = la === 'col' ? 3 : 0;
        check(M, N, K, makeView(M, K, la, r), makeView(K, N, lb, r), ldc, cOff, `A:${la} B:${lb}`);
      }
    }
  }
});

test('K = 0 gives zeros; M = 0 / N = 0 do nothing', { skip }, () => {
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const C = new Float32Array(12).fill(7);
  assert.equal(sgemm(3, 4, 0, new Float32Array(0), 0, 0, 1, new Float32Array(0), 0, 4, 1, C, 0, 4), true);
  assert.deepEqual(Array.from(C), new Array(12).fill(0));
  const D = new Float32Array(4).fill(7);
  assert.equal(sgemm(0, 4, 3, new Float32Array(0), 0, 3, 1, new Float32Array(12), 0, 4, 1, D, 0, 4), true);
  assert.equal(sgemm(4, 0, 3, new Float32Array(12), 0, 3, 1, new Float32Array(0), 0, 0, 1, D, 0, 0), true);
  assert.deepEqual(Array.from(D), [7, 7, 7, 7]);
});

test('tiny problems and out-of-bounds views are left to the caller', { skip }, () => {
  sgemmSetOptions({ threads: 1, minWork: 4096 });
  const C = new Float32Array(4).fill(3);
  assert.equal(sgemm(2, 2, 2, new Float32Array(4), 0, 2, 1, new Float32Array(4), 0, 2, 1, C, 0, 2), false);
  assert.deepEqual(Array.from(C), [3, 3, 3, 3]);
  sgemmSetOptions({ minWork: 0 });
  // A too short for the view.
  assert.equal(sgemm(4, 4, 4, new Float32Array(15), 0, 4, 1, new Float32Array(16), 0, 4, 1, new Float32Array(16), 0, 4), false);
  // C too short.
  assert.equal(sgemm(4, 4, 4, new Float32Array(16), 0, 4, 1, new Float32Array(16), 0, 4, 1, new Float32Array(16), 1, 4), false);
});

test('NaN and Infinity propagate only where they belong', { skip }, () => {
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const r = rng(3);
  const M = 7, N = 9, K = 5;
  const A = makeView(M, K, 'row', r), B = makeView(K, N, 'row', r);
  A.data[2 * K + 1] = NaN; // row 2
  B.data[3 * N + 4] = Infinity; // column 4
  const C = new Float32Array(M * N);
  assert.equal(sgemm(M, N, K, A.data, 0, K, 1, B.data, 0, N, 1, C, 0, N), true);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const v = C[i * N + j];
      if (i === 2) assert.ok(Number.isNaN(v));
      else if (j === 4) assert.ok(!Number.isFinite(v));
      else assert.ok(Number.isFinite(v), `C[${i},${j}] = ${v}`);
    }
  }
});

test('memory is reused and grown across calls of different sizes', { skip }, () => {
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const r = rng(4);
  for (const [M, N, K] of [[8, 8, 8], [300, 200, 250], [9, 10, 11], [40, 520, 70], [3, 3, 3]] as [number, number, number][]) {
    check(M, N, K, makeView(M, K, 'row', r), makeView(K, N, 'col', r), N, 0, 'reuse');
  }
});

test('worker threads: same bits as one thread, and the workers take part', { skip, timeout: 60000 }, async () => {
  const r = rng(5);
  const cases: [number, number, number][] = [[1, 1, 1], [3, 17, 5], [65, 33, 129], [130, 70, 90], [257, 129, 300], [50, 400, 64], [400, 12, 33], [200, 200, 200]];
  const inputs = cases.map(([M, N, K]) => ({ M, N, K, A: makeView(M, K, 'offset', r), B: makeView(K, N, 'col', r) }));
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const single = inputs.map(({ M, N, K, A, B }) => check(M, N, K, A, B, N + 1, 2, 'T=1'));

  sgemmSetOptions({ threads: 2, minWork: 0, threadWork: 0 });
  const threaded = typeof SharedArrayBuffer !== 'undefined';
  assert.equal(sgemmInfo().threads, threaded ? 2 : 1);
  // Workers start lazily and asynchronously: the first calls may run on this thread alone.
  const before = _sgemmStats().workerTasks;
  const deadline = Date.now() + 20000;
  let rounds = 0;
  do {
    for (let c = 0; c < inputs.length; c++) {
      const { M, N, K, A, B } = inputs[c];
      const C = new Float32Array(single[c].length).fill(12345);
      assert.equal(sgemm(M, N, K, A.data, A.off, A.rs, A.cs, B.data, B.off, B.rs, B.cs, C, 2, N + 1), true);
      assert.deepEqual(C, single[c], `threaded result differs for ${M}x${N}x${K}`);
    }
    rounds++;
    if ((!threaded || _sgemmStats().workerTasks > before) && rounds >= 3) break;
    await sleep(20);
  } while (Date.now() < deadline);
  if (threaded) {
    assert.ok(_sgemmStats().workerTasks > before, 'no task ran on a worker');
  }

  // Many back-to-back jobs (job ids, ticket reuse) with a large one in between.
  const big = { M: 301, N: 257, K: 190 };
  const bA = makeView(big.M, big.K, 'row', r), bB = makeView(big.K, big.N, 'row', r);
  for (let t = 0; t < 200; t++) {
    const { M, N, K, A, B } = inputs[t % inputs.length];
    const C = new Float32Array(single[t % inputs.length].length).fill(12345);
    sgemm(M, N, K, A.data, A.off, A.rs, A.cs, B.data, B.off, B.rs, B.cs, C, 2, N + 1);
    assert.deepEqual(C, single[t % inputs.length]);
    if (t % 50 === 0) check(big.M, big.N, big.K, bA, bB, big.N, 0, 'big');
  }
  sgemmShutdown();
  sgemmSetOptions({ threads: 1 });
});

// ---------------------------------------------------------------------------------------------------
// Batched sgemm.

interface BatchCase {
  batch: number; M: number; N: number; K: number;
  A: Float32Array; aOff: number; aBs: number; ars: number; acs: number;
  B: Float32Array; bOff: number; bBs: number; brs: number; bcs: number;
  cOff: number; cBs: number; ldc: number; cLen: number; label: string;
}

type Layout = 'row' | 'col' | 'offset' | 'sparse' | 'neg';

/** A batch of (rows x cols) views in one array: per-item layout, batch stride bs (0 = broadcast, < 0 = reversed). */
function batchView(batch: number, rows: number, cols: number, layout: Layout, bsKind: 'dense' | 'gap' | 'bcast' | 'neg', r: () => number):
  { data: Float32Array; off: number; bs: number; rs: number; cs: number } {
  const one = makeView(rows, cols, layout, r);
  const item = one.data.length;
  const step = bsKind === 'gap' ? item + 5 : item;
  const n = bsKind === 'bcast' ? 1 : batch;
  const data = randArray(step * n + 3, r);
  let bs = bsKind === 'bcast' ? 0 : step;
  let off = one.off + 2;
  if (bsKind === 'neg') { bs = -step; off += (n - 1) * step; }
  return { data, off, bs, rs: one.rs, cs: one.cs };
}

function randomBatchCase(r: () => number, big = false): BatchCase {
  const ri = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const layouts: Layout[] = ['row', 'col', 'offset', 'sparse', 'neg'];
  const kinds = ['dense', 'gap', 'bcast', 'neg'] as const;
  const batch = ri(1, 9);
  const M = big ? ri(40, 130) : ri(1, 40), N = big ? ri(40, 130) : ri(1, 40), K = big ? ri(30, 200) : ri(1, 60);
  const la = layouts[ri(0, 4)]!, lb = layouts[ri(0, 4)]!;
  let ka = kinds[ri(0, 3)]!, kb = kinds[ri(0, 3)]!;
  if (ka === 'bcast' && kb === 'bcast' && r() < 0.7) kb = 'dense';
  const a = batchView(batch, M, K, la, ka, r), b = batchView(batch, K, N, lb, kb, r);
  const ldc = N + ri(0, 3), cOff = ri(0, 4), cBs = M * ldc + ri(0, 7);
  return {
    batch, M, N, K, A: a.data, aOff: a.off, aBs: a.bs, ars: a.rs, acs: a.cs, B: b.data, bOff: b.off, bBs: b.bs, brs: b.rs, bcs: b.cs,
    cOff, cBs, ldc, cLen: cOff + batch * cBs + 4, label: JSON.stringify({ batch, M, N, K, la, lb, ka, kb }),
  };
}

/** The batch item by item through the single-matrix sgemm (with C prefilled with a sentinel). */
function perItem(c: BatchCase): Float32Array {
  const C = new Float32Array(c.cLen).fill(12345);
  for (let p = 0; p < c.batch; p++) {
    assert.equal(sgemm(c.M, c.N, c.K, c.A, c.aOff + p * c.aBs, c.ars, c.acs, c.B, c.bOff + p * c.bBs, c.brs, c.bcs, C, c.cOff + p * c.cBs, c.ldc), true);
  }
  return C;
}

function batched(c: BatchCase): Float32Array {
  const C = new Float32Array(c.cLen).fill(12345);
  assert.equal(sgemmBatched(c.batch, c.M, c.N, c.K, c.A, c.aOff, c.aBs, c.ars, c.acs, c.B, c.bOff, c.bBs, c.brs, c.bcs, C, c.cOff, c.cBs, c.ldc), true, c.label);
  return C;
}

test('batched sgemm: per-item bits, float64 reference, broadcast / reversed / padded batch strides', { skip }, () => {
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const r = rng(11);
  for (let it = 0; it < 120; it++) {
    const c = randomBatchCase(r, it % 10 === 0);
    const want = perItem(c);
    const got = batched(c);
    assert.deepEqual(got, want, c.label);
    // and against the float64 reference, item by item
    for (let p = 0; p < c.batch; p++) {
      const A = { data: c.A, off: c.aOff + p * c.aBs, rs: c.ars, cs: c.acs }, B = { data: c.B, off: c.bOff + p * c.bBs, rs: c.brs, cs: c.bcs };
      const { ref, mag } = reference(c.M, c.N, c.K, A, B);
      for (let i = 0; i < c.M; i++) for (let j = 0; j < c.N; j++) {
        const g = got[c.cOff + p * c.cBs + i * c.ldc + j]!, w = ref[i * c.N + j]!;
        assert.ok(Math.abs(g - w) <= 1e-5 * mag[i * c.N + j]! + 1e-6, `${c.label} item ${p} (${i},${j}): ${g} vs ${w}`);
      }
    }
  }
});

test('batched sgemm: K = 0, empty batch, tiny work and out-of-bounds views', { skip }, () => {
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const A = new Float32Array(10), B = new Float32Array(10), C = new Float32Array(3 * 2 * 2).fill(7);
  assert.equal(sgemmBatched(3, 2, 2, 0, A, 0, 0, 0, 1, B, 0, 0, 1, 1, C, 0, 4, 2), true);
  assert.deepEqual([...C], new Array(12).fill(0));
  assert.equal(sgemmBatched(0, 2, 2, 2, A, 0, 4, 2, 1, B, 0, 4, 2, 1, C, 0, 4, 2), true);
  // A's last item runs past the array: refused (the caller's reference loop reports it).
  assert.equal(sgemmBatched(3, 2, 2, 2, A, 0, 4, 2, 1, B, 0, 0, 2, 1, C, 0, 4, 2), false);
  sgemmSetOptions({ minWork: 1 << 20 });
  assert.equal(sgemmBatched(3, 2, 2, 2, A, 0, 2, 2, 1, B, 0, 0, 2, 1, C, 0, 4, 2), false);
  sgemmSetOptions({ minWork: 0 });
});

test('batched sgemm with worker threads: same bits as one thread, run to run', { skip, timeout: 60000 }, async () => {
  const r = rng(12);
  const cases = Array.from({ length: 24 }, (_, i) => randomBatchCase(r, i % 3 === 0));
  // attention-like shapes: many small items, and a broadcast A against per-item B (a conv gradient)
  const big = (batch: number, M: number, N: number, K: number, aBs: number, bBs: number): BatchCase => ({
    batch, M, N, K, A: randArray(Math.max(1, batch * (aBs ? 1 : 0)) * M * K + M * K, r), aOff: 0, aBs, ars: K, acs: 1,
    B: randArray(Math.max(1, batch * (bBs ? 1 : 0)) * K * N + K * N, r), bOff: 0, bBs, brs: 1, bcs: K,
    cOff: 1, cBs: M * N, ldc: N, cLen: 1 + batch * M * N + 4, label: `big ${batch}x${M}x${N}x${K}`,
  });
  cases.push(big(40, 64, 64, 16, 64 * 16, 64 * 16), big(33, 48, 16, 64, 48 * 64, 16 * 64), big(12, 100, 120, 20, 0, 120 * 20));
  sgemmSetOptions({ threads: 1, minWork: 0 });
  const single = cases.map((c) => batched(c));
  sgemmSetOptions({ threads: 2, minWork: 0, threadWork: 0 });
  const before = _sgemmStats().workerTasks;
  const deadline = Date.now() + 20000;
  let rounds = 0;
  do {
    for (let i = 0; i < cases.length; i++) {
      assert.deepEqual(batched(cases[i]!), single[i], `threaded batched result differs: ${cases[i]!.label}`);
    }
    rounds++;
    if ((typeof SharedArrayBuffer === 'undefined' || _sgemmStats().workerTasks > before) && rounds >= 3) break;
    await sleep(20);
  } while (Date.now() < deadline);
  if (typeof SharedArrayBuffer !== 'undefined') assert.ok(_sgemmStats().workerTasks > before, 'no batched task ran on a worker');
  sgemmShutdown();
  sgemmSetOptions({ threads: 1 });
});

// Broadcasting and view semantics against a naive index-by-index reference (property based; shapes include
// zero-size dims).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { broadcastPairArb, shapeArb, specOf } from './harness/arbitraries.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const stridesOf = (s: readonly number[]) => s.map((_, i) => numel(s.slice(i + 1)));
/** Multi-index of flat position p in a row-major shape. */
const unravel = (p: number, s: readonly number[]) => s.map((d, i) => Math.floor(p / numel(s.slice(i + 1))) % d);
const ravel = (idx: readonly number[], s: readonly number[]) => idx.reduce((acc, v, i) => acc + v * stridesOf(s)[i]!, 0);

function naiveBroadcastShape(a: number[], b: number[]): number[] | null {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[i - (r - a.length)] ?? 1, y = b[i - (r - b.length)] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x); // a 1 stretches to the other size, 0 included
  }
  return out;
}

function naiveRead(data: number[], shape: number[], outIdx: number[]): number {
  const lead = outIdx.length - shape.length;
  return Math.fround(data[ravel(shape.map((d, i) => (d === 1 ? 0 : outIdx[i + lead]!)), shape)]!);
}

test('binary broadcasting matches a naive per-element reference', () => {
  fc.assert(fc.property(broadcastPairArb.chain(([sa, sb]) => fc.tuple(specOf(sa), specOf(sb))), ([a, b]) => {
    const shape = naiveBroadcastShape(a.shape, b.shape)!;
    const out = L.scope(() => L.sub(L.mul(L.tensor(a.data, { shape: a.shape }), 3), L.tensor(b.data, { shape: b.shape })).tolist());
    const got = L.tensor(out as number[], { shape }).toArray();
    for (let p = 0; p < numel(shape); p++) {
      const idx = unravel(p, shape);
      const want = Math.fround(Math.fround(naiveRead(a.data, a.shape, idx) * 3) - Math.fround(naiveRead(b.data, b.shape, idx)));
      assert.equal(got[p], want, `at ${idx}`);
    }
  }), { numRuns: 100 });
});

test('incompatible shapes are rejected naming the op and both shapes', () => {
  fc.assert(fc.property(shapeArb(0, 2), fc.integer({ min: 2, max: 4 }), (lead, d) => {
    const s = [...lead, d];
    const other = [...lead, d + 1];
    assert.equal(naiveBroadcastShape(s, other), null);
    assert.throws(() => L.add(L.zeros(s), L.zeros(other)), (e: Error) => e.message.startsWith('add:') && e.message.includes(`[${s.join(', ')}]`));
  }), { numRuns: 30 });
});

test('permute is a view whose elements follow the permuted index', () => {
  fc.assert(fc.property(shapeArb(1, 4).chain((s) => fc.tuple(specOf(s), fc.shuffledSubarray([...s.keys()], { minLength: s.length, maxLength: s.length }))), ([x, dims]) => {
    L.scope(() => {
      const t = L.tensor(x.data, { shape: x.shape });
      const p = L.permute(t, dims);
      assert.equal(p.storage, t.storage, 'permute must not copy');
      const got = p.toArray();
      const shape = dims.map((d) => x.shape[d]!);
      for (let q = 0; q < numel(shape); q++) {
        const idx = unravel(q, shape);
        const src = new Array<number>(x.shape.length);
        dims.forEach((d, i) => (src[d] = idx[i]!));
        assert.equal(got[q], Math.fround(x.data[ravel(src, x.shape)]!));
      }
    });
  }), { numRuns: 60 });
});

test('slice with negative bounds and steps follows Python semantics', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: -12, max: 12 }), fc.integer({ min: -12, max: 12 }), fc.integer({ min: 1, max: 4 }), (n, start, end, step) => {
    L.scope(() => {
      const data = Array.from({ length: n }, (_, i) => i);
      const norm = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
      const want: number[] = [];
      for (let i = norm(start); i < norm(end); i += step) want.push(i);
      const t = L.tensor(data);
      const s = L.slice(t, 0, start, end, step);
      assert.equal(s.storage, t.storage);
      assert.deepEqual(Array.from(s.toArray()), want);
    });
  }), { numRuns: 200 });
});

test('expand shares storage with stride 0 and reads the broadcast values', () => {
  fc.assert(fc.property(shapeArb(1, 3).chain((s) => fc.tuple(specOf(s.map((d, i) => (i % 2 ? 1 : d))), fc.integer({ min: 1, max: 3 }), fc.constant(s))), ([x, lead, full]) => {
    L.scope(() => {
      const t = L.tensor(x.data, { shape: x.shape });
      const e = L.expand(t, [lead, ...full]);
      assert.equal(e.storage, t.storage);
      assert.equal(e.strides[0], 0);
      const got = e.toArray();
      for (let q = 0; q < got.length; q++) assert.equal(got[q], Math.fround(naiveRead(x.data, x.shape, unravel(q, e.shape as number[]))));
    });
  }), { numRuns: 60 });
});

test('reshape of a contiguous tensor is a view; of a transposed one, a copy in logical order', () => {
  fc.assert(fc.property(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })), ([a, b, c]) => {
    L.scope(() => {
      const t = L.arange(a * b * c, undefined, 1, { dtype: 'float32' }).reshape([a, b, c]);
      const r = t.reshape([c, -1]);
      assert.equal(r.storage, t.storage);
      const tr = t.transpose(0, 2);
      const flat = tr.reshape([-1]).toArray();
      const want: number[] = [];
      for (let k = 0; k < c; k++) for (let j = 0; j < b; j++) for (let i = 0; i < a; i++) want.push(i * b * c + j * c + k);
      assert.deepEqual(Array.from(flat), want);
      if (a > 1 && c > 1) assert.notEqual(tr.reshape([-1]).storage, t.storage);
    });
  }), { numRuns: 60 });
});

test('squeeze/unsqueeze round-trip as views', () => {
  fc.assert(fc.property(shapeArb(0, 3), fc.nat(), (s, a) => {
    L.scope(() => {
      const t = L.zeros(s);
      const axis = a % (s.length + 1);
      const u = t.unsqueeze(axis);
      assert.deepEqual([...u.shape], [...s.slice(0, axis), 1, ...s.slice(axis)]);
      assert.deepEqual([...u.squeeze(axis).shape], s);
      assert.equal(u.storage, t.storage);
    });
  }), { numRuns: 60 });
});

test('ops read strided (non-contiguous) inputs correctly', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), (m, n) => {
    L.scope(() => {
      const t = L.randn([m, n]);
      const tt = t.T;
      assert.equal(tt.isContiguous(), m === 1 || n === 1);
      const viaView = L.exp(tt).toArray();
      const viaCopy = L.exp(tt.clone()).toArray();
      assert.deepEqual(Array.from(viaView), Array.from(viaCopy));
    });
  }), { numRuns: 40 });
});

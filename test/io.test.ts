// File formats: safetensors (round trips, exact bits, validation of every malformed header), PNG (encoder
// round trip through decodePng, all five filters, imageGrid) and GIF (decoded by an LZW decoder written here).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import * as L from '../src/index.js';
import type { DType } from '../src/tensor/dtype.js';
import { inspectSafetensors, loadSafetensors, parseSafetensors, saveSafetensors, serializeSafetensors } from '../src/io/safetensors.js';
import { crc32, decodePng, encodePng, imageGrid, toByte } from '../src/io/png.js';
import { encodeGif, GIF_RGB_PALETTE, lzwEncode, nearestRgbIndex } from '../src/io/gif.js';
import { rawValues } from './harness/compare.js';

const dir = mkdtempSync(join(tmpdir(), 'lavender-io-'));
after(() => rmSync(dir, { recursive: true, force: true }));


/** Bit-exact comparison (NaN payloads and -0 included). */
function sameBits(a: L.Tensor, b: L.Tensor, what = ''): void {
  assert.equal(a.dtype, b.dtype, what);
  assert.deepEqual([...a.shape], [...b.shape], what);
  const av = rawValues(a), bv = rawValues(b);
  if (a.dtype === 'float32') {
    assert.deepEqual(Array.from(new Uint32Array(Float32Array.from(av).buffer)), Array.from(new Uint32Array(Float32Array.from(bv).buffer)), what);
  } else {
    assert.deepEqual(av.map((v) => (Object.is(v, -0) ? '-0' : v)), bv.map((v) => (Object.is(v, -0) ? '-0' : v)), what);
  }
}

/** A raw-bits half tensor (bfloat16/float16) from bit patterns. */
function halfFromBits(bits: number[], dtype: 'bfloat16' | 'float16', shape: number[]): L.Tensor {
  const t = L.zeros(shape, { dtype });
  t.backend.write(t.storage.buf, Uint16Array.from(bits));
  return t;
}

describe('safetensors', () => {
  test('every dtype round-trips bit-exactly through a file, with metadata', () => {
    const f32 = new Float32Array([1.5, -0, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, -2.25]);
    const nanBits = new Uint32Array(f32.buffer);
    nanBits[2] = 0x7fc00123; // a NaN with a payload
    const tensors: Record<string, L.Tensor> = {
      'f32': L.tensor(f32, { shape: [2, 4], dtype: 'float32' }),
      'f64': L.tensor([Math.PI, -0, 1e-310, -1e300, NaN, 2 ** 60], { dtype: 'float64', shape: [3, 2] }),
      'i32': L.tensor([0, -1, 2 ** 31 - 1, -(2 ** 31), 7], { dtype: 'int32' }),
      'i64': L.tensor([0, -1, 2 ** 53, -(2 ** 53), 2 ** 32 + 5, -(2 ** 40) - 3], { dtype: 'int64', shape: [2, 3] }),
      'bf16': halfFromBits([0x3f80, 0x8000, 0x7fc1, 0x7f81, 0xff80, 0x0001, 0x4049, 0xc2f7], 'bfloat16', [2, 2, 2]),
      'f16': halfFromBits([0x3c00, 0x8000, 0x7e01, 0x7c00, 0xfc00, 0x0001, 0x03ff, 0x7bff], 'float16', [8]),
      'mask': L.tensor([1, 0, 0, 1, 1], { dtype: 'bool' }),
      'layers.0.wq.weight': L.tensor([[1, 2, 3], [4, 5, 6]]),
    };
    const path = join(dir, 'all.safetensors');
    saveSafetensors(path, tensors, { format: 'pt', step: '1200', note: 'ünïcode ✓' });
    const { tensors: back, metadata } = loadSafetensors(path);
    assert.deepEqual(metadata, { format: 'pt', step: '1200', note: 'ünïcode ✓' });
    assert.deepEqual(Object.keys(back).sort(), Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) sameBits(back[name]!, t, name);
    assert.equal(back.bf16!.dtype, 'bfloat16');
    assert.equal(back.f16!.dtype, 'float16');
    assert.equal(back.i64!.dtype, 'int64');
    assert.deepEqual(Array.from(back.i64!.toArray()), [0, -1, 2 ** 53, -(2 ** 53), 2 ** 32 + 5, -(2 ** 40) - 3]);
    assert.deepEqual(Array.from(back.bf16!.backend.read(back.bf16!.storage.buf)), [0x3f80, 0x8000, 0x7fc1, 0x7f81, 0xff80, 0x0001, 0x4049, 0xc2f7]);
    assert.equal(back['layers.0.wq.weight']!.name, 'layers.0.wq.weight');
  });

  test('bfloat16 values encoded by L.tensor keep their bits', () => {
    const t = L.tensor([0.1, -3.14159, 65504, 1e-20, 3e38], { dtype: 'bfloat16' });
    const back = parseSafetensors(serializeSafetensors({ t })).tensors.t!;
    assert.deepEqual(Array.from(back.backend.read(back.storage.buf)), Array.from(t.backend.read(t.storage.buf)));
    assert.deepEqual(Array.from(back.toArray()), Array.from(t.toArray()));
  });

  test('views and non-contiguous tensors are written in logical order', () => {
    const base = L.tensor(Array.from({ length: 24 }, (_, i) => i * 1.5 - 7), { shape: [2, 3, 4] });
    const bfBase = L.tensor(Array.from({ length: 24 }, (_, i) => i / 7 - 1), { shape: [4, 6], dtype: 'bfloat16' });
    const i64Base = L.arange(0, 20); // int64
    const views: Record<string, L.Tensor> = {
      transposed: L.transpose(base, 0, 2),
      permuted: L.permute(base, [1, 2, 0]),
      stepped: L.slice(base, 2, 1, 4, 2),
      selected: L.select(base, 0, 1),
      expanded: L.expand(L.tensor([1, 2, 3], { shape: [3, 1] }), [3, 5]),
      bfT: L.transpose(bfBase, 0, 1),
      bfSlice: L.slice(bfBase, 1, 1, 6, 3),
      i64Slice: L.slice(i64Base, 0, 3, 17, 4),
      scalar: L.select(L.select(L.select(base, 0, 1), 0, 2), 0, 3),
    };
    assert.ok(!views.transposed!.isContiguous() && !views.stepped!.isContiguous() && !views.bfT!.isContiguous());
    const path = join(dir, 'views.safetensors');
    saveSafetensors(path, views);
    const { tensors: back } = loadSafetensors(path);
    for (const [name, v] of Object.entries(views)) {
      sameBits(back[name]!, v, name);
      assert.deepEqual(Array.from(back[name]!.toArray()), Array.from(v.toArray()), name);
      assert.ok(back[name]!.isContiguous());
    }
    assert.deepEqual(back.scalar!.shape, []);
  });

  test('empty and zero-sized tensors, and a file with no tensors', () => {
    const tensors = { empty: L.zeros([0, 3]), alsoEmpty: L.zeros([2, 0], { dtype: 'int64' }), one: L.tensor([5], { shape: [] }) };
    const back = parseSafetensors(serializeSafetensors(tensors)).tensors;
    assert.deepEqual(back.empty!.shape, [0, 3]);
    assert.deepEqual(back.alsoEmpty!.shape, [2, 0]);
    assert.equal(back.one!.item(), 5);
    const none = parseSafetensors(serializeSafetensors({}, { only: 'metadata' }));
    assert.deepEqual(none, { tensors: {}, metadata: { only: 'metadata' } });
  });

  test('the file layout is standard safetensors', () => {
    const bytes = serializeSafetensors({ b: L.tensor([1, -2], { dtype: 'int64' }), a: L.tensor([1.5, 2]) }, { k: 'v' });
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = Number(dv.getBigUint64(0, true));
    assert.equal(n % 8, 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{.*\} *$/);
    const header = JSON.parse(text);
    assert.deepEqual(header.__metadata__, { k: 'v' });
    assert.deepEqual(header.b, { dtype: 'I64', shape: [2], data_offsets: [0, 16] });
    assert.deepEqual(header.a, { dtype: 'F32', shape: [2], data_offsets: [16, 24] });
    assert.equal(bytes.length, 8 + n + 24);
    assert.equal(dv.getBigInt64(8 + n, true), 1n);
    assert.equal(dv.getBigInt64(8 + n + 8, true), -2n);
    assert.equal(dv.getFloat32(8 + n + 16, true), 1.5);
    assert.equal(dv.getFloat32(8 + n + 20, true), 2);
  });

  test('known answer: the bytes the reference writer produces for {a: F32[2]} with metadata', () => {
    const header = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    const want = new Uint8Array(8 + padded.length + 8);
    const dv = new DataView(want.buffer);
    dv.setBigUint64(0, BigInt(padded.length), true);
    want.set(new TextEncoder().encode(padded), 8);
    dv.setFloat32(8 + padded.length, 1, true);
    dv.setFloat32(12 + padded.length, 2, true);
    assert.deepEqual(serializeSafetensors({ a: L.tensor([1, 2]) }, { format: 'pt' }), want);
    assert.deepEqual(Array.from(parseSafetensors(want).tensors.a!.toArray()), [1, 2]);
  });

  test('names that are special in JavaScript objects survive', () => {
    const back = parseSafetensors(serializeSafetensors({ ['__proto__']: L.ones([1]), constructor: L.zeros([1]) }, { ['__proto__']: 'x' }));
    assert.deepEqual(Object.keys(back.tensors).sort(), ['__proto__', 'constructor']);
    assert.equal(Object.getPrototypeOf(back.tensors), Object.prototype);
    assert.equal(back.tensors['__proto__']!.item(), 1);
    assert.equal(back.metadata['__proto__'], 'x');
  });

  test('property: random shapes and dtypes round-trip, contiguous or transposed', () => {
    const dtypes: DType[] = ['float32', 'float64', 'int32', 'int64', 'bfloat16', 'float16', 'bool'];
    const valueFor = (d: DType): fc.Arbitrary<number> => {
      switch (d) {
        case 'float32': return fc.float();
        case 'float64': return fc.double();
        case 'int32': return fc.integer();
        case 'int64': return fc.integer({ min: -(2 ** 53), max: 2 ** 53 });
        case 'bfloat16': case 'float16': return fc.integer({ min: 0, max: 0xffff });
        default: return fc.integer({ min: 0, max: 1 });
      }
    };
    const entry = fc.record({
      dtype: fc.constantFrom(...dtypes),
      shape: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 }),
      transpose: fc.boolean(),
    }).chain((e) => fc.array(valueFor(e.dtype), { minLength: e.shape.reduce((a, b) => a * b, 1), maxLength: e.shape.reduce((a, b) => a * b, 1) }).map((values) => ({ ...e, values })));
    const names = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }).filter((s) => s !== '__metadata__' && s !== '__proto__'), { minLength: 0, maxLength: 4 });
    fc.assert(fc.property(names.chain((ns) => fc.tuple(fc.constant(ns), fc.array(entry, { minLength: ns.length, maxLength: ns.length }))), fc.dictionary(fc.string().filter((k) => k !== '__proto__'), fc.string()), ([ns, entries], meta) => {
      const tensors: Record<string, L.Tensor> = {};
      ns.forEach((name, i) => {
        const e = entries[i]!;
        let t: L.Tensor;
        if (e.dtype === 'bfloat16' || e.dtype === 'float16') t = halfFromBits(e.values, e.dtype, e.shape);
        else t = L.tensor(e.values, { dtype: e.dtype, shape: e.shape });
        if (e.transpose && t.ndim >= 2) t = L.transpose(t, 0, t.ndim - 1);
        tensors[name] = t;
      });
      const { tensors: back, metadata } = parseSafetensors(serializeSafetensors(tensors, meta));
      assert.deepEqual(metadata, { ...meta });
      assert.deepEqual(Object.keys(back).sort(), [...ns].sort());
      for (const n of ns) sameBits(back[n]!, tensors[n]!, n);
    }), { numRuns: 150 });
  });

  test('atomic save: no temporary file is left, an existing file is replaced whole, a failed save keeps it', () => {
    const path = join(dir, 'atomic.safetensors');
    saveSafetensors(path, { w: L.ones([4]) });
    saveSafetensors(path, { w: L.full([3], 2) });
    assert.deepEqual(Array.from(loadSafetensors(path).tensors.w!.toArray()), [2, 2, 2]);
    const dead = L.ones([2]);
    dead.dispose();
    assert.throws(() => saveSafetensors(path, { w: L.ones([2]), dead }), /atomic\.safetensors: tensor 'dead'.*disposed/);
    assert.throws(() => saveSafetensors(path, { x: L.tensor([0.5], { dtype: 'int64' }) }), /atomic\.safetensors: tensor 'x': int64 element 0 is 0\.5/);
    assert.throws(() => saveSafetensors(path, { __metadata__: L.ones([1]) }), /reserved/);
    assert.throws(() => saveSafetensors(path, { w: L.ones([1]) }, { n: 3 as unknown as string }), /metadata 'n' must be a string/);
    assert.throws(() => saveSafetensors(join(dir, 'no-such-dir', 'x.safetensors'), { w: L.ones([1]) }), /ENOENT/);
    assert.deepEqual(Array.from(loadSafetensors(path).tensors.w!.toArray()), [2, 2, 2]);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
    assert.ok(!existsSync(join(dir, 'no-such-dir')));
  });

  // ------------------------------------------------------------------------------------------------
  // malformed files

  /** A file from a header (object or raw JSON text) and data bytes, with an optional lying length. */
  function file(header: unknown, data: Uint8Array | number = 0, headerLen?: number): Uint8Array {
    const h = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
    const d = typeof data === 'number' ? new Uint8Array(data) : data;
    const out = new Uint8Array(8 + h.length + d.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? h.length), true);
    out.set(h, 8);
    out.set(d, 8 + h.length);
    return out;
  }
  const W = 'layers.0.wq.weight';
  const ok = { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] };
  const i64 = (...vals: bigint[]) => {
    const b = new Uint8Array(vals.length * 8);
    vals.forEach((v, i) => new DataView(b.buffer).setBigInt64(i * 8, v, true));
    return b;
  };

  test('the well-formed reference file parses (sanity check for the malformed cases below)', () => {
    const { tensors } = parseSafetensors(file({ [W]: ok, __metadata__: { format: 'pt' } }, 24), 'model.safetensors');
    assert.deepEqual(tensors[W]!.shape, [2, 3]);
  });

  const cases: [string, Uint8Array, RegExp][] = [
    ['shorter than 8 bytes', new Uint8Array(5), /^model\.safetensors: file is 5 bytes, shorter than the 8-byte header length/],
    ['empty file', new Uint8Array(0), /^model\.safetensors: file is 0 bytes/],
    ['header length beyond the file', file({ [W]: ok }, 24, 10_000), /^model\.safetensors: header length 10000 runs past the end of the file/],
    ['huge header length', file({}, 0, Number.MAX_SAFE_INTEGER), /^model\.safetensors: header length \d+ runs past the end/],
    ['header not JSON', file('{"a": {dtype: F32}}'), /^model\.safetensors: header \(19 bytes\) is not valid JSON/],
    ['header not UTF-8', file(new Uint8Array([0x7b, 0xff, 0x7d])), /^model\.safetensors: header \(3 bytes\) is not valid UTF-8/],
    ['header is an array', file([1, 2]), /^model\.safetensors: header must be a JSON object, got an array/],
    ['header is a number', file('42'), /^model\.safetensors: header must be a JSON object, got 42/],
    ['header is null', file('null'), /^model\.safetensors: header must be a JSON object, got null/],
    ['entry not an object', file({ [W]: [1, 2] }), /^model\.safetensors: tensor 'layers\.0\.wq\.weight': entry must be an object/],
    ['unknown dtype', file({ [W]: { ...ok, dtype: 'F17' } }, 24), /^model\.safetensors: tensor 'layers\.0\.wq\.weight': unknown dtype 'F17'/],
    ['unsupported dtype', file({ [W]: { ...ok, dtype: 'U8', data_offsets: [0, 6] } }, 6), /^model\.safetensors: tensor 'layers\.0\.wq\.weight': dtype U8 is not supported/],
    ['dtype not a string', file({ [W]: { ...ok, dtype: 4 } }, 24), /tensor 'layers\.0\.wq\.weight': dtype must be a string, got 4/],
    ['dtype missing', file({ [W]: { shape: [2, 3], data_offsets: [0, 24] } }, 24), /tensor 'layers\.0\.wq\.weight': missing field 'dtype'/],
    ['shape missing', file({ [W]: { dtype: 'F32', data_offsets: [0, 24] } }, 24), /tensor 'layers\.0\.wq\.weight': missing field 'shape'/],
    ['shape not an array', file({ [W]: { ...ok, shape: 6 } }, 24), /tensor 'layers\.0\.wq\.weight': shape must be an array of non-negative integers, got 6/],
    ['negative dim', file({ [W]: { ...ok, shape: [-2, -3] } }, 24), /tensor 'layers\.0\.wq\.weight': shape must be an array of non-negative integers, got \[-2,-3\]/],
    ['fractional dim', file({ [W]: { ...ok, shape: [1.5, 4] } }, 24), /tensor 'layers\.0\.wq\.weight': shape must be an array of non-negative integers/],
    ['string dim', file({ [W]: { ...ok, shape: ['2', 3] } }, 24), /tensor 'layers\.0\.wq\.weight': shape must be an array/],
    ['data_offsets missing', file({ [W]: { dtype: 'F32', shape: [2, 3] } }, 24), /tensor 'layers\.0\.wq\.weight': missing field 'data_offsets'/],
    ['data_offsets wrong length', file({ [W]: { ...ok, data_offsets: [0] } }, 24), /tensor 'layers\.0\.wq\.weight': data_offsets must be \[begin, end\]/],
    ['data_offsets negative', file({ [W]: { ...ok, data_offsets: [-24, 0] } }, 24), /tensor 'layers\.0\.wq\.weight': data_offsets must be \[begin, end\] of two non-negative integers/],
    ['data_offsets out of order', file({ [W]: { ...ok, data_offsets: [24, 0] } }, 24), /tensor 'layers\.0\.wq\.weight': data_offsets \[24, 0\] are out of order/],
    ['data_offsets out of bounds', file({ [W]: { ...ok, data_offsets: [0, 24] } }, 20), /tensor 'layers\.0\.wq\.weight': data_offsets \[0, 24\] run past the end of the data section \(20 bytes\)/],
    ['byte length does not match the shape', file({ [W]: { ...ok, data_offsets: [0, 12] } }, 12),
      /^model\.safetensors: tensor 'layers\.0\.wq\.weight': data_offsets \[0, 12\] hold 12 bytes but shape \[2, 3\] of F32 needs 24$/],
    ['overlapping tensors', file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, [W]: { ...ok, data_offsets: [4, 28] } }, 28),
      /tensor 'layers\.0\.wq\.weight': data_offsets \[4, 28\] overlap tensor 'a' at \[0, 8\]/],
    ['gap between tensors', file({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, [W]: { ...ok, data_offsets: [8, 32] } }, 32),
      /tensor 'layers\.0\.wq\.weight': data_offsets \[8, 32\] leave a gap of 4 unclaimed bytes at \[4, 8\] after tensor 'a'/],
    ['trailing bytes', file({ [W]: ok }, 30), /^model\.safetensors: the data section is 30 bytes but the tensors end at byte 24 \(last: tensor 'layers\.0\.wq\.weight'\)/],
    ['int64 beyond 2^53', file({ idx: { dtype: 'I64', shape: [3], data_offsets: [0, 24] } }, i64(1n, 2n ** 53n + 1n, 0n)),
      /^model\.safetensors: tensor 'idx': I64 element 1 is 9007199254740993, beyond the 2\^53/],
    ['int64 below -2^53', file({ idx: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, i64(-(2n ** 53n) - 1n)), /tensor 'idx': I64 element 0 is -9007199254740993/],
    ['bool byte not 0/1', file({ m: { dtype: 'BOOL', shape: [2], data_offsets: [0, 2] } }, new Uint8Array([1, 7])), /tensor 'm': BOOL element 1 is byte 7/],
    ['metadata not an object', file({ __metadata__: 'pt' }), /^model\.safetensors: '__metadata__' must be an object/],
    ['metadata value not a string', file({ __metadata__: { epoch: 3 } }), /^model\.safetensors: '__metadata__' field 'epoch' must be a string, got 3/],
  ];
  for (const [what, bytes, re] of cases) {
    test(`malformed: ${what}`, () => {
      assert.throws(() => parseSafetensors(bytes, 'model.safetensors'), (e: Error) => {
        assert.match(e.message, re);
        assert.match(e.message, /^model\.safetensors: /);
        return true;
      });
    });
  }

  test('loading reads tensors at their offsets: `only` skips the rest unread, inspect reads the header alone', () => {
    L.scope(() => {
      const path = join(dir, 'only.safetensors');
      saveSafetensors(path, { a: L.tensor([1, 2]), b: L.tensor([3, 4, 5], { dtype: 'int64' }), c: L.ones([2, 2]).to('bfloat16') }, { k: 'v' });
      // corrupt b's bytes into an int64 beyond 2^53: a full load fails, loading a and c alone never reads them
      const bytes = readFileSync(path);
      const head = inspectSafetensors(path);
      const b = head.entries.find((e) => e.name === 'b')!;
      bytes.writeBigInt64LE(2n ** 60n, head.dataStart + b.begin);
      writeFileSync(path, bytes);
      assert.throws(() => loadSafetensors(path), /only\.safetensors: tensor 'b': I64 element 0 is 1152921504606846976, beyond the 2\^53/);
      const got = loadSafetensors(path, { only: (n) => n !== 'b' });
      assert.deepEqual(Object.keys(got.tensors).sort(), ['a', 'c']);
      assert.deepEqual(got.tensors.a!.tolist(), [1, 2]);
      assert.deepEqual(got.metadata, { k: 'v' });
      assert.deepEqual(head.entries.map((e) => [e.name, e.dtype, e.shape]).sort(), [['a', 'float32', [2]], ['b', 'int64', [3]], ['c', 'bfloat16', [2, 2]]]);
      assert.throws(() => loadSafetensors(join(dir, 'nope.safetensors')), /nope\.safetensors: cannot read safetensors file: no such file/);
    });
  });

  test('int64 at exactly +-2^53 loads', () => {
    const t = parseSafetensors(file({ idx: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, i64(2n ** 53n, -(2n ** 53n)))).tensors.idx!;
    assert.deepEqual(Array.from(t.toArray()), [2 ** 53, -(2 ** 53)]);
  });

  test('loadSafetensors names the path in its errors; a truncated file is caught', () => {
    const path = join(dir, 'trunc.safetensors');
    saveSafetensors(path, { [W]: L.ones([2, 3]), b: L.ones([3]) });
    const full = readFileSync(path);
    writeFileSync(path, full.subarray(0, full.length - 5));
    assert.throws(() => loadSafetensors(path), (e: Error) => e.message.startsWith(`${path}: tensor '`) && /run past the end of the data section/.test(e.message));
    writeFileSync(path, full.subarray(0, 20));
    assert.throws(() => loadSafetensors(path), (e: Error) => e.message.startsWith(`${path}: header length `) && /runs past the end of the file/.test(e.message));
    assert.throws(() => loadSafetensors(join(dir, 'missing.safetensors')), /missing\.safetensors: cannot read safetensors file: no such file/);
  });
});

// --------------------------------------------------------------------------------------------------
// PNG

describe('png', () => {
  test('crc32 matches the standard check value', () => {
    assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
  });

  const rand = (n: number, seed: number) => {
    const out = new Uint8Array(n);
    let s = seed;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      out[i] = s >>> 24;
    }
    return out;
  };

  for (const channels of [1, 2, 3, 4] as const) {
    for (const filter of [0, 1, 2, 3, 4, 'adaptive'] as const) {
      test(`round trip: ${channels} channel(s), filter ${filter}`, () => {
        const w = 13, h = 7;
        // random rows, then smooth rows, so the filters see both noise and gradients
        const px = rand(w * h * channels, channels * 10 + (filter === 'adaptive' ? 9 : filter));
        for (let i = (w * h * channels) >> 1; i < px.length; i++) px[i] = (i * 3) & 0xff;
        const png = encodePng(w, h, px, channels, { filter });
        const img = decodePng(png);
        assert.deepEqual({ ...img, pixels: undefined }, { width: w, height: h, channels, pixels: undefined });
        assert.deepEqual(img.pixels, px);
      });
    }
  }

  test('property: random images round-trip', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), fc.constantFrom(1 as const, 3 as const, 4 as const), fc.integer(), (w, h, c, seed) => {
      const px = rand(w * h * c, seed);
      assert.deepEqual(decodePng(encodePng(w, h, px, c)).pixels, px);
    }), { numRuns: 100 });
  });

  test('the encoder writes a valid PNG structure; the decoder rejects corruption', () => {
    const png = encodePng(2, 2, new Uint8Array([0, 255, 255, 0]), 1);
    assert.deepEqual(Array.from(png.subarray(0, 8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(new TextDecoder().decode(png.subarray(12, 16)), 'IHDR');
    assert.equal(new TextDecoder().decode(png.subarray(png.length - 8, png.length - 4)), 'IEND');
    const bad = png.slice();
    bad[20] ^= 1; // inside IHDR
    assert.throws(() => decodePng(bad), /IHDR at byte 8 has a bad CRC/);
    assert.throws(() => decodePng(png.subarray(0, png.length - 12)), /missing IEND/);
    assert.throws(() => decodePng(new Uint8Array([1, 2, 3])), /not a PNG/);
    assert.throws(() => encodePng(2, 2, new Uint8Array(3), 1), /expected 4 bytes/);
  });

  test('imageGrid tiles [N, C, H, W] images with padding and maps [-1, 1] to bytes', () => {
    assert.deepEqual([-1, 1, 0, 5, -3, NaN, 0.5].map(toByte), [0, 255, 128, 255, 0, 0, 191]);
    // three 2x2 gray images in 2 columns, pad 1: 7x7
    const imgs = new Float32Array([-1, 1, 0, 1, /**/ 1, 1, 1, 1, /**/ -1, -1, -1, 0.5]);
    const g = imageGrid(imgs, 3, 1, 2, 2, 2, 1);
    assert.deepEqual([g.width, g.height, g.channels], [7, 7, 1]);
    const at = (x: number, y: number) => g.pixels[y * g.width + x];
    assert.deepEqual([at(1, 1), at(2, 1), at(1, 2), at(2, 2)], [0, 255, 128, 255]);
    assert.deepEqual([at(4, 1), at(5, 2)], [255, 255]);
    assert.deepEqual([at(1, 4), at(2, 5)], [0, 191]);
    assert.deepEqual([at(0, 0), at(3, 1), at(6, 6), at(4, 4), at(5, 5)], [0, 0, 0, 0, 0]); // padding, empty cell
    // RGB: channels interleave
    const rgb = imageGrid(new Float32Array([1, -1, 0]), 1, 3, 1, 1, 4, 0);
    assert.deepEqual([rgb.width, rgb.height, rgb.channels, ...rgb.pixels], [1, 1, 3, 255, 0, 128]);
    const png = decodePng(encodePng(g.width, g.height, g.pixels, 1));
    assert.deepEqual(png.pixels, g.pixels);
    assert.throws(() => imageGrid(imgs, 3, 2, 2, 2, 2), /c must be 1 \(gray\) or 3 \(RGB\)/);
    assert.throws(() => imageGrid(imgs, 4, 1, 2, 2, 2), /expected 16 values/);
  });
});

// --------------------------------------------------------------------------------------------------
// GIF, checked with an independent decoder

/** GIF LZW decode (reference-style: code width grows after the table reaches 2^width, capped at 12). */
function lzwDecode(data: Uint8Array, minCodeSize: number, expected: number): Uint8Array {
  const clear = 1 << minCodeSize, eoi = clear + 1;
  const out: number[] = [];
  let pos = 0, bitBuf = 0, bitCount = 0;
  const read = (size: number): number => {
    while (bitCount < size) {
      if (pos >= data.length) throw new Error('LZW: ran out of data before the end code');
      bitBuf |= data[pos++]! << bitCount;
      bitCount += 8;
    }
    const code = bitBuf & ((1 << size) - 1);
    bitBuf >>>= size;
    bitCount -= size;
    return code;
  };
  let prefix: number[] = [], suffix: number[] = [];
  let size = minCodeSize + 1, next = eoi + 1, prev = -1;
  const reset = () => {
    prefix = [];
    suffix = [];
    for (let i = 0; i < clear; i++) { prefix[i] = -1; suffix[i] = i; }
    size = minCodeSize + 1;
    next = eoi + 1;
    prev = -1;
  };
  const expand = (code: number): number[] => {
    const s: number[] = [];
    for (let c = code; c !== -1; c = prefix[c]!) s.push(suffix[c]!);
    return s.reverse();
  };
  reset();
  let first = true;
  for (;;) {
    const code = read(size);
    if (first && code !== clear) throw new Error('LZW: stream must start with a clear code');
    first = false;
    if (code === clear) { reset(); continue; }
    if (code === eoi) break;
    if (prev === -1) {
      if (code >= clear) throw new Error(`LZW: first code after clear is ${code}`);
      out.push(code);
      prev = code;
      continue;
    }
    let s: number[];
    if (code < next) s = expand(code);
    else if (code === next) { s = expand(prev); s.push(s[0]!); }
    else throw new Error(`LZW: code ${code} beyond the table (${next})`);
    out.push(...s);
    if (next < 4096) {
      prefix[next] = prev;
      suffix[next] = s[0]!;
      next++;
      if (next === 1 << size && size < 12) size++;
    }
    prev = code;
  }
  if (out.length !== expected) throw new Error(`LZW: decoded ${out.length} indices, expected ${expected}`);
  const rest = Math.ceil((pos * 8 - bitCount) / 8);
  if (rest !== data.length) throw new Error(`LZW: ${data.length - rest} bytes after the end code`);
  return Uint8Array.from(out);
}

interface DecodedGif {
  width: number;
  height: number;
  palette: Uint8Array;
  loop: boolean;
  frames: { delay: number; indices: Uint8Array }[];
}

function decodeGif(b: Uint8Array): DecodedGif {
  const u16 = (o: number) => b[o]! | (b[o + 1]! << 8);
  assert.equal(new TextDecoder().decode(b.subarray(0, 6)), 'GIF89a');
  const width = u16(6), height = u16(8), packed = b[10]!;
  assert.ok(packed & 0x80, 'global colour table present');
  const gctSize = 2 << (packed & 7);
  const palette = b.slice(13, 13 + gctSize * 3);
  let p = 13 + gctSize * 3;
  let loop = false, delay = -1;
  const frames: DecodedGif['frames'] = [];
  const subBlocks = (): Uint8Array => {
    const parts: number[] = [];
    for (let n = b[p++]!; n !== 0; n = b[p++]!) {
      parts.push(...b.subarray(p, p + n));
      p += n;
    }
    return Uint8Array.from(parts);
  };
  for (;;) {
    const intro = b[p++];
    if (intro === 0x3b) break;
    if (intro === 0x21) {
      const label = b[p++]!;
      if (label === 0xff) {
        const blockLen = b[p++]!;
        const id = new TextDecoder().decode(b.subarray(p, p + blockLen));
        p += blockLen;
        const data = subBlocks();
        if (id === 'NETSCAPE2.0') {
          assert.equal(data[0], 1);
          assert.equal(data[1]! | (data[2]! << 8), 0);
          loop = true;
        }
      } else if (label === 0xf9) {
        const data = subBlocks();
        assert.equal(data.length, 4);
        delay = data[1]! | (data[2]! << 8);
      } else {
        subBlocks();
      }
    } else if (intro === 0x2c) {
      assert.deepEqual([u16(p), u16(p + 2), u16(p + 4), u16(p + 6)], [0, 0, width, height]);
      assert.equal(b[p + 8]! & 0x80, 0, 'no local colour table');
      p += 9;
      const minCodeSize = b[p++]!;
      const indices = lzwDecode(subBlocks(), minCodeSize, width * height);
      frames.push({ delay, indices });
    } else {
      throw new Error(`GIF: unexpected block 0x${intro?.toString(16)} at ${p - 1}`);
    }
  }
  assert.equal(p, b.length, 'nothing after the trailer');
  return { width, height, palette, loop, frames };
}

describe('gif', () => {
  const noise = (n: number, seed: number, levels = 256) => {
    const out = new Uint8Array(n);
    let s = seed >>> 0;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
      out[i] = (s >>> 8) % levels;
    }
    return out;
  };

  test('grayscale frames round-trip exactly, with delay and loop extension', () => {
    const w = 37, h = 23;
    const frames = [
      new Uint8Array(w * h), // constant: long runs, large codes
      Uint8Array.from({ length: w * h }, (_, i) => (i * 7) & 0xff), // gradient
      noise(w * h, 1), // noise
      noise(w * h, 2, 3), // few levels
    ];
    const gif = encodeGif(frames, w, h, 1, 12);
    const d = decodeGif(gif);
    assert.deepEqual([d.width, d.height, d.loop], [w, h, true]);
    assert.equal(d.frames.length, frames.length);
    for (let i = 0; i < 256; i++) assert.deepEqual([...d.palette.subarray(i * 3, i * 3 + 3)], [i, i, i]);
    d.frames.forEach((f, i) => {
      assert.equal(f.delay, 12);
      assert.deepEqual(f.indices, frames[i]);
    });
    assert.equal(decodeGif(encodeGif(frames.slice(0, 1), w, h, 1, 8, false)).loop, false);
  });

  test('large noisy frames exercise 12-bit codes and clear codes', () => {
    const w = 200, h = 150;
    const frame = noise(w * h, 7);
    const d = decodeGif(encodeGif([frame, noise(w * h, 8, 17)], w, h, 1));
    assert.deepEqual(d.frames[0]!.indices, frame);
    assert.deepEqual(d.frames[1]!.indices, noise(w * h, 8, 17));
  });

  test('LZW round-trips every length across the code-width boundaries', () => {
    // runs of distinct pairs add one table entry per code, so lengths near 2^k - 258 codes hit each widening
    for (const levels of [2, 5, 256]) {
      for (let n = 0; n < 1400; n += n < 40 ? 1 : 7) {
        const data = noise(n, n * 31 + levels, levels);
        assert.deepEqual(lzwDecode(lzwEncode(data), 8, n), data, `n=${n} levels=${levels}`);
      }
    }
    // on 256-level noise almost every code covers one byte, so the code count tracks n: sweep densely
    // around the widenings (~254, ~766, ~1790 codes) and the table resets (~3838, ~7676 codes)
    for (const [lo, hi] of [[230, 290], [740, 800], [1760, 1820], [3800, 3880], [7620, 7720]] as const) {
      for (let n = lo; n < hi; n++) {
        const data = noise(n, n);
        assert.deepEqual(lzwDecode(lzwEncode(data), 8, n), data, `n=${n}`);
      }
    }
  });

  test('property: LZW round trip of random byte strings', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 6000, size: 'max' }), fc.integer({ min: 1, max: 256 }), (raw, levels) => {
      const data = raw.map((v) => v % levels);
      assert.deepEqual(lzwDecode(lzwEncode(data), 8, data.length), data);
    }), { numRuns: 200 });
  });

  test('RGB frames map each pixel to the nearest of the 252 palette colours', () => {
    const w = 16, h = 16;
    const frame = noise(w * h * 3, 3);
    const d = decodeGif(encodeGif([frame], w, h, 3, 5));
    assert.deepEqual(d.palette, GIF_RGB_PALETTE);
    const dist = (i: number, r: number, g: number, b: number) =>
      (d.palette[i * 3]! - r) ** 2 + (d.palette[i * 3 + 1]! - g) ** 2 + (d.palette[i * 3 + 2]! - b) ** 2;
    for (let p = 0; p < w * h; p++) {
      const [r, g, b] = [frame[p * 3]!, frame[p * 3 + 1]!, frame[p * 3 + 2]!];
      let best = Infinity;
      for (let i = 0; i < 252; i++) best = Math.min(best, dist(i, r, g, b));
      const idx = d.frames[0]!.indices[p]!;
      assert.ok(idx < 252);
      assert.equal(dist(idx, r, g, b), best, `pixel ${p} (${r},${g},${b})`);
    }
    // palette colours map to themselves
    for (let i = 0; i < 252; i++) assert.equal(nearestRgbIndex(GIF_RGB_PALETTE[i * 3]!, GIF_RGB_PALETTE[i * 3 + 1]!, GIF_RGB_PALETTE[i * 3 + 2]!), i);
    assert.equal(new Set(Array.from({ length: 252 }, (_, i) => GIF_RGB_PALETTE.subarray(i * 3, i * 3 + 3).join())).size, 252);
  });

  test('encodeGif validates its arguments', () => {
    assert.throws(() => encodeGif([], 2, 2, 1), /at least one frame/);
    assert.throws(() => encodeGif([new Uint8Array(3)], 2, 2, 1), /frame 0 has 3 bytes, expected 4/);
    assert.throws(() => encodeGif([new Uint8Array(4)], 2, 2, 2 as 1), /channels must be 1/);
    assert.throws(() => encodeGif([new Uint8Array(4)], 0, 2, 1), /width/);
  });
});

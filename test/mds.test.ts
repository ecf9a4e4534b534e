// MosaicML Streaming MDS datasets: a hand-built shard read against the format description, writer -> reader
// round trips of every encoding (fast-check, multi-shard), the errors (each names its file, field or column),
// and MdsLoader's seeded order, rank partition and exact resume.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { epochPermutation } from '../src/data/loader.js';
import {
  f64ToF16, float16BitsToFloat32, float32ToFloat16Bits, MdsLoader, MdsWriter, mdsDecode, mdsEncode, openMds, pyFloatRepr,
  type MdsColumnSpec, type MdsSampleSource,
} from '../src/data/mds/index.js';
import { f16ToF32, f32ToF16 } from '../src/tensor/dtype.js';

const root = mkdtempSync(join(tmpdir(), 'lavender-mds-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const fresh = (tag = 'ds') => join(root, `${tag}-${dirCount++}`);

// ---- byte helpers, independent of src/data/mds.ts
const u32 = (...xs: number[]) => {
  const b = new Uint8Array(4 * xs.length);
  const dv = new DataView(b.buffer);
  xs.forEach((x, i) => dv.setUint32(4 * i, x, true));
  return b;
};
const cat = (...parts: (Uint8Array | number[])[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const utf8 = (s: string) => new TextEncoder().encode(s);
/** A shard: count, count + 1 absolute offsets, an optional blob (MDSWriter puts its config JSON there), samples. */
function shardBytes(samples: Uint8Array[], blob = new Uint8Array(0)): Uint8Array {
  const n = samples.length;
  const offs = [4 * (n + 2) + blob.length];
  for (const s of samples) offs.push(offs[offs.length - 1]! + s.length);
  return cat(u32(n), u32(...offs), blob, ...samples);
}
/** A sample: the uint32 lengths of the variable columns (in column order), then every payload in column order. */
function sampleBytes(cols: { bytes: Uint8Array; variable: boolean }[]): Uint8Array {
  return cat(u32(...cols.filter((c) => c.variable).map((c) => c.bytes.length)), ...cols.map((c) => c.bytes));
}
function shardEntry(o: { names: string[]; encodings: string[]; sizes: (number | null)[]; basename: string; bytes: number; samples: number; compression?: string | null; zip?: unknown }) {
  return {
    column_encodings: o.encodings, column_names: o.names, column_sizes: o.sizes, compression: o.compression ?? null, format: 'mds', hashes: [],
    raw_data: { basename: o.basename, bytes: o.bytes, hashes: {} }, samples: o.samples, size_limit: 1 << 26, version: 2, zip_data: o.zip ?? null,
  };
}

/** Typed arrays -> "Ctor:hex" (float arrays compare by bits, NaN payloads and -0 included), recursively. */
function norm(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}
const sameValue = (a: unknown, b: unknown, msg?: string) => assert.deepStrictEqual(norm(a), norm(b), msg);

function writeDataset(columns: Record<string, MdsColumnSpec>, samples: Record<string, unknown>[], opts: { sizeLimit?: number | null; compression?: string | null } = {}, dir = fresh()): string {
  const w = new MdsWriter(dir, { columns, ...opts });
  for (const s of samples) w.write(s);
  w.finish();
  return dir;
}

// ---------------------------------------------------------------------------------------------------------------

describe('MDS reader against the format description (hand-built shards)', () => {
  // Column order of this index is deliberately not sorted: the reader must follow column_names.
  const names = ['label', 'id', 'raw', 'emb', 'score', 'arr', 'meta', 'flag'];
  const encodings = ['str', 'int', 'uint8', 'np16', 'float32', 'ndarray', 'json', 'uint8'];
  const sizes = [null, 8, null, null, 4, null, null, 1];
  const f32 = (x: number) => new Uint8Array(new Float32Array([x]).buffer);
  const i64 = (x: bigint) => new Uint8Array(new BigInt64Array([x]).buffer);
  const sample = (label: string, id: bigint, raw: number[], emb: number[], score: number, arr: number[], meta: string, flag: number) =>
    sampleBytes([
      { bytes: utf8(label), variable: true },
      { bytes: i64(id), variable: false },
      { bytes: Uint8Array.from(raw), variable: true },
      { bytes: new Uint8Array(new Uint16Array(emb).buffer), variable: true },
      { bytes: f32(score), variable: false },
      { bytes: Uint8Array.from(arr), variable: true },
      { bytes: utf8(meta), variable: true },
      { bytes: Uint8Array.of(flag), variable: false },
    ]);
  // ndarray int16 [[1, -2, 3], [4, 5, 300]]: dtype code 17, (ndim 2 << 2) | uint8 shape, dims 2 3, values (numpy's tobytes()).
  const arr0 = [17, 8, 2, 3, 1, 0, 254, 255, 3, 0, 4, 0, 5, 0, 44, 1];
  // ndarray float32 [1.5]: code 34, (1 << 2) | 0, dim 1, 1.5 little-endian.
  const arr1 = [34, 4, 1, 0x00, 0x00, 0xc0, 0x3f];
  const s0 = sample('cat', 7n, [1, 2, 3], [0x3c00, 0xc000], 0.5, arr0, '{"a": [1, 2]}', 200);
  const s1 = sample('', -1n, [], [], -1.25, arr1, '{"x": NaN, "y": [Infinity, -Infinity], "z": "NaN"}', 0);
  const s2 = sample('dog 🐕', 1n << 60n, [9], [0x7c00], 3, [16, 4, 1, 0x00, 0x3c], '[]', 255);
  const dir = fresh('hand');
  mkdirSync(dir);
  const shardA = shardBytes([s0, s1], utf8('{"some": "config", "json": 1}'));
  const shardB = shardBytes([s2]);
  writeFileSync(join(dir, 'shard.00000.mds'), shardA);
  writeFileSync(join(dir, 'shard.00001.mds'), shardB);
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    version: 2,
    shards: [
      shardEntry({ names, encodings, sizes, basename: 'shard.00000.mds', bytes: shardA.length, samples: 2 }),
      shardEntry({ names, encodings, sizes, basename: 'shard.00001.mds', bytes: shardB.length, samples: 1 }),
    ],
  }));

  test('columns, length and every sample decode as specified', () => {
    const ds = openMds(dir);
    assert.equal(ds.length, 3);
    assert.equal(ds.numShards, 2);
    assert.deepEqual(Object.entries(ds.columns), names.map((n, i) => [n, encodings[i]]));
    assert.deepEqual(ds.columnSizes, Object.fromEntries(names.map((n, i) => [n, sizes[i]])));
    sameValue(ds.get(0), {
      label: 'cat', id: 7, raw: Uint8Array.of(1, 2, 3), emb: Uint16Array.of(0x3c00, 0xc000), score: 0.5,
      arr: { dtype: 'int16', shape: [2, 3], data: Int16Array.of(1, -2, 3, 4, 5, 300) }, meta: { a: [1, 2] }, flag: 200,
    });
    sameValue(ds.get(1), {
      label: '', id: -1, raw: new Uint8Array(0), emb: new Uint16Array(0), score: -1.25,
      arr: { dtype: 'float32', shape: [1], data: Float32Array.of(1.5) }, meta: { x: NaN, y: [Infinity, -Infinity], z: 'NaN' }, flag: 0,
    });
    sameValue(ds.get(2), {
      label: 'dog 🐕', id: 1n << 60n, raw: Uint8Array.of(9), emb: Uint16Array.of(0x7c00), score: 3,
      arr: { dtype: 'uint16', shape: [1], data: Uint16Array.of(0x3c00) }, meta: [], flag: 255,
    });
    assert.deepEqual(Array.from(float16BitsToFloat32(ds.get(0).emb as Uint16Array)), [1, -2]);
    assert.deepEqual(ds.get(2, ['flag', 'label']), { label: 'dog 🐕', flag: 255 });
    sameValue(ds.getRaw(0).arr, Uint8Array.from(arr0));
    ds.verify();
    ds.close();
    assert.equal(ds.get(0).id, 7, 'usable after close (shards reopen)');
  });

  test('a small shard cache still reads every sample (shards are evicted and reopened)', () => {
    const ds = openMds(dir, { cacheShards: 1 });
    for (const i of [0, 2, 1, 2, 0, 1]) assert.equal(typeof ds.get(i).label, 'string');
    ds.close();
    assert.throws(() => openMds(dir, { cacheShards: 0 }), /cacheShards must be a positive integer/);
  });

  test('the writer produces these bytes: header, offsets, MosaicML config JSON, samples (columns sorted)', () => {
    const cols: Record<string, MdsColumnSpec> = {
      label: 'str', id: 'int', raw: { encoding: 'uint8', variable: true }, emb: 'np16', score: 'float32', arr: 'ndarray', meta: 'json', flag: 'uint8',
    };
    const out = writeDataset(cols, [{
      label: 'cat', id: 7, raw: Uint8Array.of(1, 2, 3), emb: Uint16Array.of(0x3c00, 0xc000), score: 0.5,
      arr: { shape: [2, 3], data: Int16Array.of(1, -2, 3, 4, 5, 300) }, meta: { a: [1, 2] }, flag: 200,
    }]);
    const config = '{"column_encodings": ["ndarray", "np16", "uint8", "int", "str", "json", "uint8", "float32"], '
      + '"column_names": ["arr", "emb", "flag", "id", "label", "meta", "raw", "score"], "column_sizes": [null, null, 1, 8, null, null, null, 4], '
      + '"compression": null, "format": "mds", "hashes": [], "size_limit": 67108864, "version": 2}';
    // sorted: arr emb flag id label meta raw score; variable: arr emb label meta raw
    const expectSample = sampleBytes([
      { bytes: Uint8Array.from(arr0), variable: true },
      { bytes: new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer), variable: true },
      { bytes: Uint8Array.of(200), variable: false },
      { bytes: i64(7n), variable: false },
      { bytes: utf8('cat'), variable: true },
      { bytes: utf8('{"a":[1,2]}'), variable: true },
      { bytes: Uint8Array.of(1, 2, 3), variable: true },
      { bytes: f32(0.5), variable: false },
    ]);
    const shard = new Uint8Array(readFileSync(join(out, 'shard.00000.mds')));
    assert.deepEqual(shard, shardBytes([expectSample], utf8(config)));
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
    assert.deepEqual(index, { version: 2, shards: [{ ...JSON.parse(config), raw_data: { basename: 'shard.00000.mds', bytes: shard.length, hashes: {} }, samples: 1, zip_data: null }] });
    // Python's json.dumps(sort_keys=True) spacing
    assert.match(readFileSync(join(out, 'index.json'), 'utf8'), /^\{"shards": \[\{"column_encodings": \["ndarray", "np16"/);
  });

  test('ndarray header forms: static dtype, static shape, uint16 and uint32 shape dims', () => {
    const i16 = Int16Array.of(1, -2, 3, 4, 5, 300);
    const vals = Array.from(new Uint8Array(i16.buffer));
    assert.deepEqual(Array.from(mdsEncode('ndarray', { shape: [2, 3], data: i16 })), [17, 8, 2, 3, ...vals]);
    assert.deepEqual(Array.from(mdsEncode('ndarray:int16', { shape: [2, 3], data: i16 })), [8, 2, 3, ...vals]);
    assert.deepEqual(Array.from(mdsEncode('ndarray:int16:2,3', i16)), vals);
    sameValue(mdsDecode('ndarray:int16:2,3', Uint8Array.from(vals)), { dtype: 'int16', shape: [2, 3], data: i16 });
    sameValue(mdsDecode('ndarray:int16', Uint8Array.from([8, 2, 3, ...vals])), { dtype: 'int16', shape: [2, 3], data: i16 });
    const long = new Uint8Array(300).map((_, i) => i);
    assert.deepEqual(Array.from(mdsEncode('ndarray', long).subarray(0, 4)), [8, (1 << 2) | 1, 300 & 0xff, 300 >> 8]);
    sameValue(mdsDecode('ndarray', mdsEncode('ndarray', long)), { dtype: 'uint8', shape: [300], data: long });
    const wide = new Uint8Array(65536);
    assert.deepEqual(Array.from(mdsEncode('ndarray', { shape: [1, 65536], data: wide }).subarray(0, 10)), [8, (2 << 2) | 2, 1, 0, 0, 0, 0, 0, 1, 0]);
    // a uint64 shape (dtype code 3) written by hand
    sameValue(mdsDecode('ndarray', Uint8Array.from([9, (1 << 2) | 3, 2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x7f])), { dtype: 'int8', shape: [2], data: Int8Array.of(-1, 127) });
    sameValue(mdsDecode('ndarray', Uint8Array.from([18, 4, 1, 0x00, 0x3c])), { dtype: 'float16', shape: [1], data: Uint16Array.of(0x3c00) });
  });

  test('scalars, strings and numbers in text match numpy / Python', () => {
    assert.deepEqual(Array.from(mdsEncode('int', -2)), [254, 255, 255, 255, 255, 255, 255, 255]);
    assert.deepEqual(Array.from(mdsEncode('float16', 0.1)), [102, 46]); // np.float16(0.1).tobytes()
    assert.deepEqual(Array.from(mdsEncode('float16', 65519)), [255, 123]);
    assert.deepEqual(Array.from(mdsEncode('float16', 1e-7)), [2, 0]);
    assert.equal(mdsDecode('uint64', Uint8Array.of(255, 255, 255, 255, 255, 255, 255, 255)), 2n ** 64n - 1n);
    assert.equal(mdsDecode('int', Uint8Array.of(255, 255, 255, 255, 255, 255, 31, 0)), Number.MAX_SAFE_INTEGER);
    // Python repr(float) for the same values
    const xs = [1.0, 0.1, 1e16, 1e15, 1e-5, 1e-4, 123456789.123, -0.0, 1.5e300, 5e-324, Infinity, -Infinity, NaN, 2.5e-7, 1234567890123456.7, 1 / 3, 100.0, 1e22, -3.14];
    assert.deepEqual(xs.map(pyFloatRepr), ['1.0', '0.1', '1e+16', '1000000000000000.0', '1e-05', '0.0001', '123456789.123', '-0.0', '1.5e+300', '5e-324', 'inf', '-inf', 'nan', '2.5e-07', '1234567890123456.8', '0.3333333333333333', '100.0', '1e+22', '-3.14']);
    assert.equal(new TextDecoder().decode(mdsEncode('str_float', 1e-5)), '1e-05');
    assert.equal(mdsDecode('str_float', utf8(' -Infinity ')), -Infinity);
    assert.equal(mdsDecode('str_float', utf8('1_000.5')), 1000.5);
    assert.equal(mdsDecode('str_int', utf8('123456789012345678901234567890')), 123456789012345678901234567890n);
    assert.equal(mdsDecode('str_int', utf8('-0042')), -42);
    assert.equal(mdsDecode('str_decimal', utf8('-1.50E+3')), '-1.50E+3');
    assert.equal(mdsDecode('str', utf8('\uFEFFbom kept')), '\uFEFFbom kept');
    sameValue(mdsDecode('pil', cat(u32(2, 1, 3), utf8('RGB'), [1, 2, 3, 4, 5, 6])), { width: 2, height: 1, mode: 'RGB', data: Uint8Array.of(1, 2, 3, 4, 5, 6) });
  });

  test('float16: one rounding from float64 (numpy), equal to the float32 path on float32 inputs', () => {
    fc.assert(fc.property(fc.float(), (x) => {
      assert.equal(f64ToF16(x), Number.isNaN(x) ? 0x7e00 : f32ToF16(x));
    }), { numRuns: 2000 });
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), (h) => {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff)) return; // NaNs
      assert.equal(f64ToF16(f16ToF32(h)), h);
    }), { numRuns: 3000 });
    // midway between 1 and the next half (1 + 2^-10): a tie, to even; a hair above it rounds up
    assert.equal(f64ToF16(1 + 2 ** -11), 0x3c00);
    assert.equal(f64ToF16(1 + 2 ** -11 + 2 ** -40), 0x3c01);
    assert.deepEqual(Array.from(float32ToFloat16Bits([1, -2, 65504, 1e9])), [0x3c00, 0xc000, 0x7bff, 0x7c00]);
  });
});

// ---------------------------------------------------------------------------------------------------------------

const toInt = (v: number | bigint) => (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
const JPEG = [0xff, 0xd8, 0xff];
const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const DT: Record<string, { size: number; make: (b: ArrayBuffer) => ArrayBufferView }> = {
  uint8: { size: 1, make: (b) => new Uint8Array(b) }, int8: { size: 1, make: (b) => new Int8Array(b) },
  uint16: { size: 2, make: (b) => new Uint16Array(b) }, int16: { size: 2, make: (b) => new Int16Array(b) }, float16: { size: 2, make: (b) => new Uint16Array(b) },
  uint32: { size: 4, make: (b) => new Uint32Array(b) }, int32: { size: 4, make: (b) => new Int32Array(b) }, float32: { size: 4, make: (b) => new Float32Array(b) },
  uint64: { size: 8, make: (b) => new BigUint64Array(b) }, int64: { size: 8, make: (b) => new BigInt64Array(b) }, float64: { size: 8, make: (b) => new Float64Array(b) },
};
const shapeArb = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 });
const typedArb = (dtype: string, count: number) =>
  fc.uint8Array({ minLength: count * DT[dtype]!.size, maxLength: count * DT[dtype]!.size }).map((b) => DT[dtype]!.make(Uint8Array.from(b).buffer));
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Per column: its spec and an arbitrary of [value written, value expected back]. */
const ROUND_TRIP: Record<string, [MdsColumnSpec, fc.Arbitrary<[unknown, unknown]>]> = {
  bytes: ['bytes', fc.uint8Array({ maxLength: 24 }).map((b) => [b, b])],
  str: ['str', fc.string({ unit: 'binary', maxLength: 16 }).map((s) => [s, s])],
  int: ['int', fc.oneof(fc.maxSafeInteger(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })).map((v) => [v, toInt(v)])],
  int8: ['int8', fc.integer({ min: -128, max: 127 }).map((v) => [v, v])],
  int16: ['int16', fc.integer({ min: -32768, max: 32767 }).map((v) => [v, v])],
  int32: ['int32', fc.integer().map((v) => [v, v])],
  int64: ['int64', fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((v) => [v, toInt(v)])],
  uint8: ['uint8', fc.integer({ min: 0, max: 255 }).map((v) => [v, v])],
  uint16: ['uint16', fc.integer({ min: 0, max: 65535 }).map((v) => [v, v])],
  uint32: ['uint32', fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((v) => [v, v])],
  uint64: ['uint64', fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat()).map((v) => [v, toInt(v)])],
  float16: ['float16', fc.integer({ min: 0, max: 0xffff }).map((h) => f16ToF32(h)).map((v) => [v, v])],
  float32: ['float32', fc.float().map((v) => [v, v])],
  float64: ['float64', fc.double().map((v) => [v, v])],
  str_int: ['str_int', fc.oneof(fc.maxSafeInteger(), fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n })).map((v) => [v, toInt(v)])],
  str_float: ['str_float', fc.double().map((v) => [v, v])],
  str_decimal: ['str_decimal', fc.tuple(fc.constantFrom('', '-', '+'), fc.stringMatching(/^\d{1,8}$/), fc.option(fc.stringMatching(/^\d{0,6}$/)), fc.option(fc.integer({ min: -30, max: 30 })))
    .map(([s, a, b, e]) => `${s}${a}${b === null ? '' : '.' + b}${e === null ? '' : 'E' + e}`).map((v) => [v, v])],
  // JSON has no -0 (fc.jsonValue makes some): expect what JSON itself gives back
  json: ['json', fc.jsonValue({ maxDepth: 2 }).map((v) => [v, JSON.parse(JSON.stringify(v))])],
  jpeg: ['jpeg', fc.uint8Array({ maxLength: 12 }).map((b) => Uint8Array.from([...JPEG, ...b])).map((v) => [v, v])],
  jpeg90: ['jpeg:90', fc.uint8Array({ maxLength: 12 }).map((b) => Uint8Array.from([...JPEG, ...b])).map((v) => [v, v])],
  png: ['png', fc.uint8Array({ maxLength: 12 }).map((b) => Uint8Array.from([...PNG, ...b])).map((v) => [v, v])],
  pil: ['pil', fc.record({ width: fc.nat(), height: fc.nat(), mode: fc.constantFrom('L', 'RGB', 'RGBA', 'I;16'), data: fc.uint8Array({ maxLength: 12 }) }).map((v) => [v, v])],
  nd: ['ndarray', fc.tuple(fc.constantFrom(...Object.keys(DT)), shapeArb, fc.boolean()).chain(([dtype, shape, flat]) =>
    typedArb(dtype, prod(shape)).map((data): [unknown, unknown] =>
      flat && dtype !== 'float16' ? [data, { dtype, shape: [prod(shape)], data }] : [{ dtype, shape, data }, { dtype, shape, data }]))],
  ndI16: ['ndarray:int16', shapeArb.chain((shape) => typedArb('int16', prod(shape)).map((data): [unknown, unknown] => [{ shape, data }, { dtype: 'int16', shape, data }]))],
  ndF32: ['ndarray:float32:2,3', typedArb('float32', 6).map((data): [unknown, unknown] => [data, { dtype: 'float32', shape: [2, 3], data }])],
  ndF16: ['ndarray:float16', typedArb('float16', 3).map((data): [unknown, unknown] => [data, { dtype: 'float16', shape: [3], data }])],
  rawU8: [{ encoding: 'uint8', variable: true }, fc.uint8Array({ maxLength: 24 }).map((v) => [v, v])],
  np16: ['np16', fc.uint16Array({ maxLength: 12 }).map((v) => [v, v])],
  np16f: ['np16', fc.float32Array({ maxLength: 6 }).map((v) => [v, float32ToFloat16Bits(v)])],
  varF32: [{ encoding: 'float32', variable: true }, fc.float32Array({ maxLength: 6 }).map((v) => [v, v])],
  varI64: [{ encoding: 'int64', variable: true }, fc.bigInt64Array({ maxLength: 4 }).map((v) => [v, v])],
  varF16: [{ encoding: 'float16', variable: true }, fc.uint16Array({ maxLength: 4 }).map((v) => [v, v])],
};

describe('MDS writer -> reader round trip', () => {
  const columns = Object.fromEntries(Object.entries(ROUND_TRIP).map(([k, [spec]]) => [k, spec]));
  const sampleArb = fc.record(Object.fromEntries(Object.entries(ROUND_TRIP).map(([k, [, arb]]) => [k, arb])) as Record<string, fc.Arbitrary<[unknown, unknown]>>);

  test('every encoding, random values (empty strings and arrays included), single- and multi-shard', () => {
    fc.assert(fc.property(fc.array(sampleArb, { maxLength: 10 }), fc.option(fc.integer({ min: 1, max: 4000 })), (pairs, sizeLimit) => {
      const dir = writeDataset(columns, pairs.map((p) => Object.fromEntries(Object.entries(p).map(([k, [v]]) => [k, v]))), { sizeLimit });
      const ds = openMds(dir, { cacheShards: 2 });
      assert.equal(ds.length, pairs.length);
      pairs.forEach((p, i) => sameValue(ds.get(i), Object.fromEntries(Object.entries(p).map(([k, [, e]]) => [k, e])), `sample ${i}`));
      ds.verify();
      ds.close();
      // shards stay within sizeLimit unless they hold a single sample
      const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
      for (const s of index.shards) {
        assert.equal(statSync(join(dir, s.raw_data.basename)).size, s.raw_data.bytes);
        if (sizeLimit !== null && s.samples > 1) assert.ok(s.raw_data.bytes <= sizeLimit);
      }
      rmSync(dir, { recursive: true });
    }), { numRuns: 60 });
  });

  test('a small sizeLimit rolls shards; samples keep their order across shards', () => {
    const samples = Array.from({ length: 40 }, (_, i) => ({ id: i, text: 'x'.repeat(i % 7) }));
    const dir = writeDataset({ id: 'int', text: 'str' }, samples, { sizeLimit: 420 });
    const files = readdirSync(dir).filter((f) => f.endsWith('.mds')).sort();
    assert.ok(files.length >= 3, `${files.length} shards`);
    assert.deepEqual(files.slice(0, 2), ['shard.00000.mds', 'shard.00001.mds']);
    const ds = openMds(dir);
    assert.equal(ds.numShards, files.length);
    assert.deepEqual(Array.from({ length: 40 }, (_, i) => ds.get(i)), samples);
    ds.close();
  });

  test('gz and br compressed shards round-trip (and an empty dataset is valid)', () => {
    const samples = Array.from({ length: 12 }, (_, i) => ({ id: i, v: new Uint8Array(50).fill(i) }));
    for (const compression of ['gz', 'gz:1', 'br', 'br:4']) {
      const dir = writeDataset({ id: 'int', v: 'bytes' }, samples, { compression, sizeLimit: 800 });
      const ext = compression.split(':')[0];
      assert.ok(readdirSync(dir).every((f) => f === 'index.json' || f.endsWith(`.mds.${ext}`)), readdirSync(dir).join());
      const ds = openMds(dir);
      sameValue(Array.from({ length: 12 }, (_, i) => ds.get(i)), samples);
      ds.close();
    }
    const empty = writeDataset({ id: 'int' }, []);
    assert.equal(openMds(empty).length, 0);
    assert.deepEqual(JSON.parse(readFileSync(join(empty, 'index.json'), 'utf8')), { version: 2, shards: [] });
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('MDS errors name the file, field or column', () => {
  const base = () => writeDataset({ id: 'int', label: 'str' }, [{ id: 1, label: 'a' }, { id: 2, label: 'bb' }, { id: 3, label: 'ccc' }]);
  const editIndex = (dir: string, f: (ix: any) => void) => {
    const p = join(dir, 'index.json');
    const ix = JSON.parse(readFileSync(p, 'utf8'));
    f(ix);
    writeFileSync(p, JSON.stringify(ix));
  };
  const editShard = (dir: string, f: (b: Uint8Array, dv: DataView) => Uint8Array | void) => {
    const p = join(dir, 'shard.00000.mds');
    const b = new Uint8Array(readFileSync(p));
    writeFileSync(p, f(b, new DataView(b.buffer)) ?? b);
  };
  const throwsWith = (fn: () => unknown, ...parts: (string | RegExp)[]) =>
    assert.throws(fn, (e: Error) => {
      for (const p of parts) assert.ok(typeof p === 'string' ? e.message.includes(p) : p.test(e.message), `"${e.message}" lacks ${p}`);
      return true;
    });

  test('index.json: missing, invalid JSON, unsupported version or format, bad fields', () => {
    const dir = fresh();
    mkdirSync(dir);
    throwsWith(() => openMds(dir), join(dir, 'index.json'), 'not found');
    writeFileSync(join(dir, 'index.json'), '{"version": 2, "shards": [');
    throwsWith(() => openMds(dir), join(dir, 'index.json'), 'invalid JSON');
    const d = base();
    const ip = join(d, 'index.json');
    const cases: [(ix: any) => void, ...string[]][] = [
      [(ix) => { ix.version = 3; }, '"version"', 'is 3'],
      [(ix) => { ix.shards = {}; }, '"shards"', 'must be a list'],
      [(ix) => { ix.shards[0].version = 1; }, 'shards[0].version', 'is 1'],
      [(ix) => { ix.shards[0].format = 'csv'; }, 'shards[0].format', '"csv"'],
      [(ix) => { ix.shards[0].column_encodings[1] = 'bfloat16'; }, 'shards[0].column_encodings[1]', 'column "label"', 'bfloat16'],
      [(ix) => { ix.shards[0].column_encodings[1] = 'ndarray:int16:0,2'; }, 'column "label"', 'positive integers'],
      [(ix) => { ix.shards[0].column_sizes.pop(); }, 'shards[0].column_sizes', 'one per column'],
      [(ix) => { ix.shards[0].column_sizes[0] = 5; }, 'shards[0].column_sizes[0]', 'column "id"', '"int"', 'is 5', 'wrong column type'],
      [(ix) => { ix.shards[0].samples = -1; }, 'shards[0].samples'],
      [(ix) => { ix.shards[0].raw_data.basename = '../escape.mds'; }, 'shards[0].raw_data.basename'],
      [(ix) => { ix.shards.push({ ...ix.shards[0], column_names: ['id', 'other'] }); }, 'shards[1].column_names', 'same columns'],
    ];
    const good = readFileSync(ip, 'utf8');
    for (const [edit, ...parts] of cases) {
      writeFileSync(ip, good);
      editIndex(d, edit);
      throwsWith(() => openMds(d), ip, ...parts);
    }
  });

  test('shard files: missing, wrong size, wrong sample count, offsets out of bounds, corrupt sample', () => {
    const shard = (d: string) => join(d, 'shard.00000.mds');
    let d = base();
    renameSync(shard(d), join(d, 'elsewhere'));
    let ds = openMds(d); // lazily opened
    throwsWith(() => ds.get(0), shard(d), 'missing', 'raw_data.basename');
    throwsWith(() => ds.verify(), shard(d), 'missing');

    d = base();
    editShard(d, (b) => cat(b, [0]));
    throwsWith(() => openMds(d).get(0), shard(d), 'raw_data.bytes');

    d = base();
    editIndex(d, (ix) => { ix.shards[0].samples = 4; });
    ds = openMds(d);
    assert.equal(ds.length, 4);
    throwsWith(() => ds.get(0), shard(d), 'holds 3 samples', 'shards[0].samples says 4');

    d = base();
    editShard(d, (_b, dv) => dv.setUint32(4, 3, true)); // offset 0 inside the header
    throwsWith(() => openMds(d).get(1), shard(d), 'offset 0', 'offsets out of bounds');
    d = base();
    editShard(d, (b, dv) => dv.setUint32(4 * 4, b.length + 10, true)); // last offset past the end
    throwsWith(() => openMds(d).get(1), shard(d), 'last offset', 'offsets out of bounds');
    d = base();
    editShard(d, (_b, dv) => { dv.setUint32(8, dv.getUint32(12, true) + 1, true); }); // offset 1 after offset 2
    throwsWith(() => openMds(d).verify(), shard(d), 'offset 2', 'offsets out of bounds');

    d = base();
    editShard(d, (_b, dv) => dv.setUint32(dv.getUint32(8, true), 1000, true)); // sample 1's label length
    ds = openMds(d);
    assert.equal(ds.get(0).label, 'a');
    throwsWith(() => ds.get(1), shard(d), 'sample 1', 'label=1000');

    d = base();
    editShard(d, (b, dv) => { b[dv.getUint32(8, true) + 4 + 8] = 0xff; }); // sample 1's label byte: invalid UTF-8
    throwsWith(() => openMds(d).get(1), shard(d), 'column "label"', 'UTF-8');
  });

  test('a column of the wrong type for its bytes', () => {
    throwsWith(() => mdsDecode('int', new Uint8Array(5)), '"int"', '5 bytes', 'expected 8');
    throwsWith(() => mdsDecode('float32', new Uint8Array(2)), '"float32"', 'expected 4');
    throwsWith(() => mdsDecode('ndarray', Uint8Array.of(34, 4, 2, 0, 0, 0, 0)), 'ndarray of float32 shape [2] needs 8 value bytes, found 4');
    throwsWith(() => mdsDecode('ndarray', Uint8Array.of(99, 4, 1, 0)), 'dtype code 99');
    throwsWith(() => mdsDecode('np16', new Uint8Array(3)), 'not a whole number of float16');
    throwsWith(() => mdsDecode('str_int', utf8('1.5')), 'not an integer');
    throwsWith(() => mdsDecode('json', utf8('{nope')), 'invalid JSON');
    // an `int` column read through the index with a 4-byte value in a variable-size slot
    const dir = fresh();
    mkdirSync(dir);
    const s = shardBytes([sampleBytes([{ bytes: Uint8Array.of(1, 0, 0, 0), variable: true }])]);
    writeFileSync(join(dir, 'shard.00000.mds'), s);
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ version: 2, shards: [shardEntry({ names: ['n'], encodings: ['int'], sizes: [null], basename: 'shard.00000.mds', bytes: s.length, samples: 1 })] }));
    throwsWith(() => openMds(dir).get(0), join(dir, 'shard.00000.mds'), 'column "n" (int)', '4 bytes, expected 8');
  });

  test('pkl is never unpickled: the error names the column; other columns and raw bytes stay readable', () => {
    const dir = fresh();
    mkdirSync(dir);
    const s = shardBytes([sampleBytes([{ bytes: Uint8Array.of(0x80, 4, 0x4b, 7, 0x2e), variable: true }, { bytes: utf8('ok'), variable: true }])]);
    writeFileSync(join(dir, 'shard.00000.mds'), s);
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ version: 2, shards: [shardEntry({ names: ['obj', 'name'], encodings: ['pkl', 'str'], sizes: [null, null], basename: 'shard.00000.mds', bytes: s.length, samples: 1 })] }));
    const ds = openMds(dir);
    assert.equal(ds.columns.obj, 'pkl');
    throwsWith(() => ds.get(0), 'column "obj"', 'pkl', 'never unpickles');
    assert.deepEqual(ds.get(0, ['name']), { name: 'ok' });
    assert.deepEqual(Array.from(ds.getRaw(0).obj!), [0x80, 4, 0x4b, 7, 0x2e]);
    throwsWith(() => ds.get(0, ['nope']), 'no column "nope"');
    throwsWith(() => ds.get(1), 'index 1 is out of range [0, 1)');
  });

  test('zstd shards name the shard; a decompressed copy beside it is used', () => {
    const d = base();
    const raw = join(d, 'shard.00000.mds');
    const size = statSync(raw).size;
    editIndex(d, (ix) => { ix.shards[0].compression = 'zstd:7'; ix.shards[0].zip_data = { basename: 'shard.00000.mds.zstd', bytes: 10, hashes: {} }; });
    assert.equal(openMds(d).get(2).label, 'ccc', 'the raw shard is present');
    renameSync(raw, join(d, 'shard.00000.mds.zstd'));
    throwsWith(() => openMds(d).get(0), join(d, 'shard.00000.mds.zstd'), '"zstd:7"', 'no zstd', 'decompress it to');
    assert.ok(size > 0);
    // gz with a corrupt compressed file
    const g = writeDataset({ id: 'int' }, [{ id: 1 }], { compression: 'gz' });
    writeFileSync(join(g, 'shard.00000.mds.gz'), Uint8Array.of(1, 2, 3));
    editIndex(g, (ix) => { ix.shards[0].zip_data.bytes = 3; });
    throwsWith(() => openMds(g).get(0), join(g, 'shard.00000.mds.gz'), 'gz decompression failed');
  });

  test('writer: bad columns, bad values, non-empty directories, write after finish', () => {
    throwsWith(() => new MdsWriter(fresh(), { columns: { x: 'pkl' } }), 'column "x"', 'pkl');
    throwsWith(() => new MdsWriter(fresh(), { columns: { x: 'bfloat16' } }), 'column "x"', 'not a supported MDS encoding');
    throwsWith(() => new MdsWriter(fresh(), { columns: { x: { encoding: 'str', variable: true } } }), 'column "x"', 'variable: true');
    throwsWith(() => new MdsWriter(fresh(), { columns: {} }), 'non-empty');
    throwsWith(() => new MdsWriter(fresh(), { columns: { x: 'int' }, compression: 'zstd' }), 'zstd', 'Node 20 has no zstd');
    throwsWith(() => new MdsWriter(fresh(), { columns: { x: 'int' }, compression: 'gz:12' }), 'level');
    throwsWith(() => new MdsWriter(fresh(), { columns: { x: 'int' }, sizeLimit: 0 }), 'sizeLimit');
    const used = base();
    throwsWith(() => new MdsWriter(used, { columns: { x: 'int' } }), used, 'not empty');

    const dir = fresh();
    const w = new MdsWriter(dir, { columns: { i8: 'int8', s: 'str', nd: 'ndarray:int16:2', img: 'png', j: 'json', b: 'bytes', n: 'int' } });
    const ok = { i8: 1, s: 'a', nd: Int16Array.of(1, 2), img: Uint8Array.from([...PNG]), j: { a: 1 }, b: new Uint8Array(0), n: 5 };
    const bad: [Record<string, unknown>, ...string[]][] = [
      [{ ...ok, i8: 128 }, 'column "i8"', 'int8'],
      [{ ...ok, i8: 1.5 }, 'column "i8"'],
      [{ ...ok, s: 7 }, 'column "s"', 'expected a string'],
      [{ ...ok, s: '\uD800' }, 'column "s"', 'lone surrogate'],
      [{ ...ok, nd: Int16Array.of(1, 2, 3) }, 'column "nd"', 'shape'],
      [{ ...ok, nd: Int32Array.of(1, 2) }, 'column "nd"', 'wrong dtype'],
      [{ ...ok, img: Uint8Array.of(1, 2, 3) }, 'column "img"', 'not a PNG'],
      [{ ...ok, j: { x: NaN } }, 'column "j"', 'not JSON-serialisable'],
      [{ ...ok, j: 1n }, 'column "j"', 'not JSON-serialisable'],
      [{ ...ok, b: 'text' }, 'column "b"', 'Uint8Array'],
      [{ ...ok, n: 2 ** 53 }, 'column "n"', 'integer'],
      [{ ...ok, n: 2n ** 63n }, 'column "n"', 'out of range'],
      [{ ...ok, extra: 1 }, 'key "extra"'],
      [(({ s: _s, ...rest }) => rest)(ok), 'no column "s"'],
    ];
    for (const [sample, ...parts] of bad) throwsWith(() => w.write(sample), dir, ...parts);
    w.write(ok); // a rejected sample leaves the writer usable
    assert.equal(w.samplesWritten, 1);
    w.finish();
    throwsWith(() => w.write(ok), 'after finish');
    throwsWith(() => w.finish(), 'twice');
    sameValue(openMds(dir).get(0), { ...ok, nd: { dtype: 'int16', shape: [2], data: ok.nd } });
    assert.ok(!readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temporary files left');
    throwsWith(() => mdsEncode('ndarray', new Float32Array(0)), 'non-empty list of positive integers');
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('MdsLoader', () => {
  const N = 23;
  const dsDir = writeDataset({ id: 'int', tag: 'str' }, Array.from({ length: N }, (_, i) => ({ id: i, tag: `t${i}` })), { sizeLimit: 300 });
  const ds = openMds(dsDir);
  const fake = (n: number): MdsSampleSource => ({ length: n, get: (i) => ({ i }) });
  /** One epoch of every rank: per rank, its batches' indices. */
  const epochOf = (n: number, opts: { batchSize: number; seed: number; worldSize: number; dropLast: boolean; shuffle?: boolean }) =>
    Array.from({ length: opts.worldSize }, (_, rank) => {
      const l = new MdsLoader(fake(n), { ...opts, rank });
      const batches: number[][] = [];
      for (let k = 0; k < l.batchesPerEpoch; k++) batches.push(l.nextIndices());
      assert.deepEqual(l.getState(), { seed: opts.seed, epoch: 1, position: 0 }, 'every rank ends the epoch after batchesPerEpoch steps');
      return batches;
    });

  test('batches of decoded samples in the Philox epoch order (as the DataLoader), reshuffled per epoch', () => {
    const l = new MdsLoader(ds, { batchSize: 5, seed: 11, dropLast: false });
    assert.equal(l.batchesPerEpoch, 5);
    for (let e = 0; e < 3; e++) {
      const seen: number[] = [];
      for (let k = 0; k < 5; k++) {
        const b = l.next();
        assert.equal(b.length, k < 4 ? 5 : 3);
        for (const s of b) assert.equal(s.tag, `t${s.id}`);
        seen.push(...b.map((s) => s.id as number));
      }
      assert.deepEqual(seen, Array.from(epochPermutation(N, 11, e)), `epoch ${e}`);
      assert.equal(l.currentEpoch, e + 1);
    }
    const same = new MdsLoader(ds, { batchSize: 5, seed: 11, dropLast: false });
    const other = new MdsLoader(ds, { batchSize: 5, seed: 12, dropLast: false });
    const a = same.nextIndices(), b = other.nextIndices();
    assert.deepEqual(a, Array.from(epochPermutation(N, 11, 0)).slice(0, 5));
    assert.notDeepEqual(a, b);
    const seq = new MdsLoader(ds, { batchSize: 4, shuffle: false, columns: ['id'] });
    assert.deepEqual(seq.next(), [{ id: 0 }, { id: 1 }, { id: 2 }, { id: 3 }]);
  });

  test('dropLast: full batches only; the epoch tail is skipped and differs per epoch', () => {
    const l = new MdsLoader(ds, { batchSize: 5, seed: 3 });
    assert.equal(l.batchesPerEpoch, 4);
    const e0 = [0, 1, 2, 3].flatMap(() => l.nextIndices());
    assert.deepEqual(e0, Array.from(epochPermutation(N, 3, 0)).slice(0, 20));
    assert.deepEqual(l.getState(), { seed: 3, epoch: 1, position: 0 });
    const e1 = l.nextIndices();
    assert.deepEqual(e1, Array.from(epochPermutation(N, 3, 1)).slice(0, 5));
  });

  test('rank partition: ranks take every worldSize-th sample; disjoint, union = all (dropLast false), lockstep', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 7 }), fc.nat(1000), fc.boolean(),
      (n, W, B, seed, shuffle) => {
        const order = shuffle ? Array.from(epochPermutation(n, seed, 0)) : Array.from({ length: n }, (_, i) => i);
        const all = epochOf(n, { batchSize: B, seed, worldSize: W, dropLast: false, shuffle });
        const flat = all.flat(2);
        assert.equal(new Set(flat).size, flat.length, 'disjoint');
        assert.deepEqual([...flat].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), 'union is every sample');
        all.forEach((batches, r) => assert.deepEqual(batches.flat(), order.filter((_, p) => p % W === r), `rank ${r} takes every ${W}-th`));
        const m = Math.floor(Math.floor(n / W) / B);
        if (m === 0) {
          assert.throws(() => new MdsLoader(fake(n), { batchSize: B, worldSize: W, seed }), /no batches per epoch/);
          return;
        }
        const dropped = epochOf(n, { batchSize: B, seed, worldSize: W, dropLast: true, shuffle });
        const df = dropped.flat(2);
        assert.equal(new Set(df).size, df.length);
        assert.equal(df.length, W * B * m);
        assert.deepEqual(new Set(df), new Set(order.slice(0, W * B * m)));
        for (const batches of dropped) {
          assert.equal(batches.length, m);
          for (const b of batches) assert.equal(b.length, B);
        }
      }), { numRuns: 150 });
    // with n a multiple of worldSize * batchSize, dropLast loses nothing
    const full = epochOf(24, { batchSize: 3, seed: 9, worldSize: 4, dropLast: true }).flat(2);
    assert.deepEqual(full.sort((a, b) => a - b), Array.from({ length: 24 }, (_, i) => i));
  });

  test('exact resume mid-epoch (through JSON), on every rank, across epoch boundaries', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.nat(99), fc.boolean(),
      (steps, W, B, seed, dropLast) => {
        for (let rank = 0; rank < W; rank++) {
          const a = new MdsLoader(ds, { batchSize: B, seed, rank, worldSize: W, dropLast });
          for (let k = 0; k < steps; k++) a.next();
          const state = JSON.parse(JSON.stringify(a.getState()));
          const b = new MdsLoader(ds, { batchSize: B, seed: seed + 1, rank, worldSize: W, dropLast }); // the seed comes from the state
          b.setState(state);
          for (let k = 0; k < 8; k++) assert.deepEqual(b.next(), a.next(), `rank ${rank}, batch ${steps + k}`);
          assert.deepEqual(b.getState(), a.getState());
        }
      }), { numRuns: 40 });
    // the state is the same on every rank
    const states = [0, 1, 2].map((rank) => {
      const l = new MdsLoader(ds, { batchSize: 2, seed: 5, rank, worldSize: 3 });
      l.next();
      l.next();
      return l.getState();
    });
    assert.deepEqual(states, [states[0], states[0], states[0]]);
    assert.deepEqual(states[0], { seed: 5, epoch: 0, position: 12 });
  });

  test('invalid options and states are rejected', () => {
    assert.throws(() => new MdsLoader(ds, { batchSize: 0 }), /MdsLoader: batchSize must be a positive integer/);
    assert.throws(() => new MdsLoader(ds, { batchSize: 2, seed: -1 }), /seed must be a non-negative safe integer/);
    assert.throws(() => new MdsLoader(ds, { batchSize: 2, worldSize: 0 }), /worldSize must be a positive integer/);
    assert.throws(() => new MdsLoader(ds, { batchSize: 2, rank: 2, worldSize: 2 }), /rank must be an integer in \[0, 2\)/);
    assert.throws(() => new MdsLoader(ds, { batchSize: 24 }), /23 samples give no batches per epoch with batchSize 24/);
    assert.equal(new MdsLoader(ds, { batchSize: 24, dropLast: false }).next().length, 23);
    const l = new MdsLoader(ds, { batchSize: 5 });
    assert.throws(() => l.setState({ seed: 0, epoch: 0, position: 20 }), /position must be an integer in \[0, 20\)/);
    assert.throws(() => l.setState({ seed: 0, epoch: -1, position: 0 }), /epoch must be a non-negative integer/);
    assert.throws(() => l.setState(null as never), /expected \{seed, epoch, position\}/);
  });

  after(() => ds.close());
});

// keep the helpers honest
test('fixture helpers build what the format says', () => {
  const s = shardBytes([Uint8Array.of(1, 2), Uint8Array.of(3)]);
  assert.deepEqual(Array.from(s), [...u32(2), ...u32(16, 18, 19), 1, 2, 3]);
  assert.ok(existsSync(root));
});

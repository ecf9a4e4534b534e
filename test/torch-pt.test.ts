// PyTorch checkpoints (torch.save's zip format) read as data: the fixtures written by
// scripts/make-pt-fixtures.py with torch 1.13 are compared bit for bit with expected.json; malicious,
// truncated and corrupt archives and hand-built pickles must fail with errors that name the file, and a
// pickle that calls os.system must be refused without anything being run.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import { after, describe, test } from 'node:test';
import * as L from '../src/index.js';
import { loadTorchCheckpoint, parseTorchCheckpoint } from '../src/io/torch-pt.js';
import * as writer from '../src/io/torch-pt-write.js';
import { crc32 } from '../src/io/png.js';
import { rawValues } from './harness/compare.js';

// dist/test/ -> the repository's test/fixtures/pt
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'pt');
const fixture = (name: string) => join(FIXTURES, name);

interface Expected {
  name: string;
  shape: number[];
  dtype: string;
  values: number[];
  bits?: number[];
}
const EXPECTED = JSON.parse(readFileSync(fixture('expected.json'), 'utf8')) as Record<string, Expected[]>;

const dir = mkdtempSync(join(tmpdir(), 'lavender-torch-pt-'));
after(() => rmSync(dir, { recursive: true, force: true }));


function checkAgainst(tensors: Record<string, L.Tensor>, expected: Expected[], file: string): void {
  assert.deepEqual(Object.keys(tensors), expected.map((e) => e.name), `${file}: tensor names in order`);
  for (const e of expected) {
    const t = tensors[e.name]!;
    const what = `${file}: ${e.name}`;
    assert.equal(t.dtype, e.dtype, what);
    assert.deepEqual([...t.shape], e.shape, what);
    assert.ok(t.isContiguous() && t.offset === 0, `${what}: materialised contiguously`);
    assert.equal(t.name, e.name, what);
    // deepStrictEqual compares numbers with Object.is, so -0 must stay -0
    assert.deepEqual(Array.from(t.toArray(), Number), e.values, `${what}: values`);
    const raw = rawValues(t);
    if (e.dtype === 'float16' || e.dtype === 'bfloat16') assert.deepEqual(raw, e.bits, `${what}: raw bits`);
    if (e.dtype === 'float32') assert.deepEqual(Array.from(new Uint32Array(Float32Array.from(raw).buffer)), e.bits, `${what}: float32 bits`);
  }
}

// --------------------------------------------------------------------------------------------------
// building archives and pickles by hand

interface ZipInput {
  name: string;
  data: Uint8Array | string;
  deflate?: boolean;
}

/** A zip archive of the entries (stored, or deflated), optionally with zip64 records for every entry. */
function makeZip(entries: ZipInput[], opts: { zip64?: boolean } = {}): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const enc = new TextEncoder();
  for (const e of entries) {
    const data = typeof e.data === 'string' ? enc.encode(e.data) : e.data;
    const body = e.deflate ? new Uint8Array(deflateRawSync(data)) : data;
    const name = enc.encode(e.name);
    const crc = crc32(data);
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, e.deflate ? 8 : 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const extra = opts.zip64 ? 28 : 0;
    const cd = new Uint8Array(46 + name.length + extra);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 45, true);
    cv.setUint16(6, 45, true);
    cv.setUint16(10, e.deflate ? 8 : 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, opts.zip64 ? 0xffffffff : body.length, true);
    cv.setUint32(24, opts.zip64 ? 0xffffffff : data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, extra, true);
    cv.setUint32(42, opts.zip64 ? 0xffffffff : offset, true);
    cd.set(name, 46);
    if (opts.zip64) {
      const x = 46 + name.length;
      cv.setUint16(x, 1, true);
      cv.setUint16(x + 2, 24, true);
      cv.setBigUint64(x + 4, BigInt(data.length), true);
      cv.setBigUint64(x + 12, BigInt(body.length), true);
      cv.setBigUint64(x + 20, BigInt(offset), true);
    }
    chunks.push(local, body);
    central.push(cd);
    offset += local.length + body.length;
  }
  const cdOffset = offset;
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  chunks.push(...central);
  if (opts.zip64) {
    const rec = new Uint8Array(56 + 20);
    const rv = new DataView(rec.buffer);
    rv.setUint32(0, 0x06064b50, true);
    rv.setBigUint64(4, 44n, true);
    rv.setUint16(12, 45, true);
    rv.setUint16(14, 45, true);
    rv.setBigUint64(24, BigInt(entries.length), true);
    rv.setBigUint64(32, BigInt(entries.length), true);
    rv.setBigUint64(40, BigInt(cdSize), true);
    rv.setBigUint64(48, BigInt(cdOffset), true);
    rv.setUint32(56, 0x07064b50, true);
    rv.setBigUint64(64, BigInt(cdOffset + cdSize), true);
    rv.setUint32(72, 1, true);
    chunks.push(rec);
  }
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, opts.zip64 ? 0xffff : entries.length, true);
  ev.setUint16(10, opts.zip64 ? 0xffff : entries.length, true);
  ev.setUint32(12, opts.zip64 ? 0xffffffff : cdSize, true);
  ev.setUint32(16, opts.zip64 ? 0xffffffff : cdOffset, true);
  chunks.push(end);
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

const bytes = (...parts: Array<number | number[] | Uint8Array | string>): number[] =>
  parts.flatMap((p) => (typeof p === 'number' ? [p] : typeof p === 'string' ? [...new TextEncoder().encode(p)] : [...p]));

/** Pickle opcodes, as the bytes torch.save's pickler writes them. */
const P = {
  proto: [0x80, 2],
  stop: [0x2e],
  mark: [0x28],
  emptyDict: [0x7d],
  emptyTuple: [0x29],
  tuple: [0x74],
  tuple1: [0x85],
  tuple2: [0x86],
  reduce: [0x52],
  setitem: [0x73],
  setitems: [0x75],
  build: [0x62],
  newfalse: [0x89],
  none: [0x4e],
  binpersid: [0x51],
  str(s: string): number[] {
    const b = new TextEncoder().encode(s);
    return bytes(0x58, [b.length & 0xff, (b.length >> 8) & 0xff, (b.length >> 16) & 0xff, b.length >>> 24], b);
  },
  int(n: number): number[] {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, n, true);
    return bytes(0x4a, b);
  },
  global(module: string, name: string): number[] {
    return bytes(0x63, `${module}\n${name}\n`);
  },
  ints(xs: number[]): number[] {
    return bytes(P.mark, ...xs.map((x) => P.int(x)), P.tuple);
  },
  /** _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict()) */
  tensor(type: string, key: string, numel: number, offset: number, size: number[], stride: number[]): number[] {
    return bytes(
      P.global('torch._utils', '_rebuild_tensor_v2'),
      P.mark,
      P.mark, P.str('storage'), P.global('torch', type), P.str(key), P.str('cpu'), P.int(numel), P.tuple, P.binpersid,
      P.int(offset), P.ints(size), P.ints(stride), P.newfalse,
      P.global('collections', 'OrderedDict'), P.emptyTuple, P.reduce,
      P.tuple, P.reduce,
    );
  },
};

/** A protocol-2 pickle of a dict {key: value-bytes, ...}. */
function dictPickle(items: Array<[string, number[]]>): Uint8Array {
  return Uint8Array.from(bytes(P.proto, P.emptyDict, P.mark, ...items.flatMap(([k, v]) => [...P.str(k), ...v]), P.setitems, P.stop));
}

const f32Bytes = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);

/** A torch-style archive: <root>/data.pkl, <root>/data/<key> for each storage, <root>/version. */
function archive(pickle: Uint8Array, storages: Record<string, Uint8Array>, opts: { root?: string; extra?: ZipInput[]; deflate?: boolean; zip64?: boolean } = {}): Uint8Array {
  const root = opts.root ?? 'archive';
  return makeZip([
    { name: `${root}/data.pkl`, data: pickle, deflate: opts.deflate },
    ...Object.entries(storages).map(([k, v]) => ({ name: `${root}/data/${k}`, data: v, deflate: opts.deflate })),
    ...(opts.extra ?? []),
    { name: `${root}/version`, data: '3\n' },
  ], { zip64: opts.zip64 });
}

/** The error thrown by fn, asserting it is an Error whose message starts with `source: `. */
function errorOf(fn: () => unknown, source: string): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
    assert.ok(e.message.startsWith(`${source}: `), `error should name ${source}: ${e.message}`);
    return e.message;
  }
  assert.fail('expected an error');
}

// --------------------------------------------------------------------------------------------------

describe('torch checkpoints: fixtures written by torch 1.13', () => {
  for (const file of ['state_dict.pt', 'shared.pt', 'params.pt', 'nested.pt', 'deflated.pt']) {
    test(`${file} matches expected.json exactly`, () => {
      L.scope(() => {
        const tensors = loadTorchCheckpoint(fixture(file));
        checkAgainst(tensors, EXPECTED[file]!, file);
      });
    });
  }

  test('state_dict.pt: every dtype, the model. prefix, and _metadata is not a tensor', () => {
    L.scope(() => {
      const t = loadTorchCheckpoint(fixture('state_dict.pt'));
      assert.deepEqual(Object.values(t).map((x) => x.dtype), ['float32', 'float32', 'float16', 'bfloat16', 'int64', 'float64', 'int32', 'bool']);
      assert.ok(Object.keys(t).every((k) => k.startsWith('model.')));
      assert.equal(t['model.position_ids']!.toArray()[5], -(2 ** 53));
      assert.equal(t['model.position_ids']!.toArray()[4], 2 ** 40 + 3);
    });
  });

  test('shared.pt: views of one storage, a transposed view, stride 0 and 0-d tensors', () => {
    L.scope(() => {
      const t = loadTorchCheckpoint(fixture('shared.pt'));
      assert.deepEqual(t['first']!.tolist(), [[-2, -1.5, -1], [-0.5, 0, 0.5]]);
      assert.deepEqual(t['second_t']!.tolist(), [[2, 4, 6], [2.5, 4.5, 6.5], [3, 5, 7], [3.5, 5.5, 7.5]]);
      assert.deepEqual(t['expanded']!.tolist(), [[1.25, -4], [1.25, -4], [1.25, -4]]);
      assert.deepEqual([...t['element']!.shape], []);
      assert.equal(t['element']!.item(), -0.5);
      assert.equal(t['scalar']!.item(), 3.5);
      assert.deepEqual([...t['empty']!.shape], [0, 3]);
      // each tensor owns its memory: writing one does not change another
      assert.notEqual(t['first']!.storage, t['whole']!.storage);
    });
  });

  test('nested.pt: dotted names, non-tensor leaves skipped', () => {
    L.scope(() => {
      const t = loadTorchCheckpoint(fixture('nested.pt'));
      assert.deepEqual(Object.keys(t), ['model.0.weight', 'model.0.bias', 'model.1.weight', 'model.1.bias', 'model.2.weight', 'ema.w']);
    });
  });

  test('the meta device reads shapes and dtypes only', () => {
    L.scope(() => {
      const t = loadTorchCheckpoint(fixture('state_dict.pt'), { device: 'meta' });
      assert.equal(t['model.linear.weight']!.device, 'meta');
      assert.deepEqual([...t['model.embed.weight']!.shape], [2, 5]);
    });
  });

  test('a file that does not exist', () => {
    const p = join(dir, 'missing.pt');
    assert.match(errorOf(() => loadTorchCheckpoint(p), p), /no such file/);
  });
});

describe('torch checkpoints: refusing code', () => {
  const marker = join(tmpdir(), 'lavender-torch-pt-pwned');

  test('malicious.pt (calls os.system) is refused and nothing runs', () => {
    if (existsSync(marker)) unlinkSync(marker);
    const p = fixture('malicious.pt');
    const msg = errorOf(() => loadTorchCheckpoint(p), p);
    assert.equal(msg, `${p}: refusing to load: pickle references the global 'os.system', which is not on the allow-list of tensor types`);
    assert.ok(!existsSync(marker), 'the os.system payload must not have run');
  });

  test('a fresh os.system pickle aimed at a marker file in a temporary directory', () => {
    const target = join(dir, 'pwned');
    const pkl = dictPickle([['x', bytes(P.global('os', 'system'), P.str(`touch '${target}'`), P.tuple1, P.reduce)]]);
    const msg = errorOf(() => parseTorchCheckpoint(archive(pkl, {}), 'evil.pt'), 'evil.pt');
    assert.match(msg, /refusing to load: pickle references the global 'os\.system'/);
    assert.ok(!existsSync(target));
  });

  for (const [module, name, via] of [
    ['builtins', 'eval', 'GLOBAL'],
    ['builtins', 'eval', 'STACK_GLOBAL'],
    ['posix', 'system', 'GLOBAL'],
    ['subprocess', 'Popen', 'INST'],
    ['torch', 'load', 'GLOBAL'],
    ['torch._utils', '_rebuild_tensor_v2.__globals__', 'STACK_GLOBAL'],
    ['collections', 'OrderedDict.__init__', 'GLOBAL'],
    ['__builtin__', 'getattr', 'GLOBAL'],
    ['numpy.core.multiarray', '_reconstruct', 'GLOBAL'],
  ] as const) {
    test(`${via} '${module}.${name}' is refused`, () => {
      let ref: number[];
      if (via === 'GLOBAL') ref = bytes(P.global(module, name), P.str('1+1'), P.tuple1, P.reduce);
      else if (via === 'STACK_GLOBAL') ref = bytes(P.str(module), P.str(name), 0x93, P.str('1+1'), P.tuple1, P.reduce);
      else ref = bytes(P.mark, P.str('true'), 0x69, `${module}\n${name}\n`);
      const pkl = dictPickle([['w', P.tensor('FloatStorage', '0', 2, 0, [2], [1])], ['x', ref]]);
      const msg = errorOf(() => parseTorchCheckpoint(archive(pkl, { 0: f32Bytes([1, 2]) }), 'g.pt'), 'g.pt');
      assert.equal(msg, `g.pt: refusing to load: pickle references the global '${module}.${name}', which is not on the allow-list of tensor types`);
    });
  }

  test('allow-listed types cannot be called', () => {
    const pkl = dictPickle([['x', bytes(P.global('torch', 'FloatStorage'), P.int(3), P.tuple1, P.reduce)]]);
    assert.match(errorOf(() => parseTorchCheckpoint(archive(pkl, {}), 'c.pt'), 'c.pt'), /'torch\.FloatStorage' cannot be called/);
  });

  test('a TorchScript archive is named as such', () => {
    const pkl = dictPickle([]);
    const z = archive(pkl, {}, { extra: [{ name: 'archive/constants.pkl', data: pkl }, { name: 'archive/code/__torch__.py', data: '' }] });
    assert.match(errorOf(() => parseTorchCheckpoint(z, 'ts.pt'), 'ts.pt'), /TorchScript/);
  });
});

describe('torch checkpoints: hand-built pickles', () => {
  test('storage offsets, strides, parameters, torch 2.x rebuilds, int keys, zip64 and deflate', () => {
    const storage = f32Bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const pkl = dictPickle([
      ['a', P.tensor('FloatStorage', '7', 12, 1, [2, 2], [1, 3])],
      ['p', bytes(P.global('torch._utils', '_rebuild_parameter_with_state'), P.mark, P.tensor('FloatStorage', '7', 12, 10, [2], [1]), 0x88,
        P.global('collections', 'OrderedDict'), P.emptyTuple, P.reduce, P.emptyDict, P.str('tag'), P.str('decay'), P.setitem, P.tuple,
        P.reduce)],
      ['t', bytes(P.global('torch._tensor', '_rebuild_from_type_v2'), P.mark, P.global('torch._utils', '_rebuild_tensor_v2'), P.global('torch', 'Tensor'),
        P.mark, P.mark, P.str('storage'), P.global('torch', 'FloatStorage'), P.str('7'), P.str('cpu'), P.int(12), P.tuple, P.binpersid,
        P.int(0), P.ints([3]), P.ints([4]), P.newfalse, P.global('collections', 'OrderedDict'), P.emptyTuple, P.reduce, P.tuple,
        P.emptyDict, P.str('note'), P.str('hi'), P.setitem, P.tuple, P.reduce)],
      ['nested', bytes(P.emptyDict, P.int(0), P.tensor('FloatStorage', '7', 12, 11, [], []), P.setitem, P.str('skip'), P.none, P.setitem,
        P.str('list'), 0x5d, P.tensor('FloatStorage', '7', 12, 0, [1], [1]), 0x61, P.setitem)],
      ['od', bytes(P.global('collections', 'OrderedDict'), P.emptyTuple, P.reduce, P.str('z'), P.tensor('FloatStorage', '7', 12, 2, [1], [1]), P.setitem,
        P.emptyDict, P.str('_metadata'), P.none, P.setitem, P.build)],
    ]);
    const expect = { a: [[1, 4], [2, 5]], p: [10, 11], t: [0, 4, 8], 'nested.0': 11, 'od.z': [2] };
    for (const opts of [{}, { deflate: true }, { zip64: true }, { deflate: true, zip64: true, root: 'some name' }]) {
      L.scope(() => {
        const t = parseTorchCheckpoint(archive(pkl, { 7: storage }, opts), 'hand.pt');
        assert.deepEqual(Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.tolist()])), expect, JSON.stringify(opts));
      });
    }
  });

  test('a big-endian archive (byteorder: big)', () => {
    const be = new Uint8Array(12);
    const dv = new DataView(be.buffer);
    dv.setFloat32(0, 1.5, false);
    dv.setFloat32(4, -2.25, false);
    dv.setUint16(8, 0x3c00, false); // float16 1.0
    dv.setUint16(10, 0xc000, false); // float16 -2.0
    const pkl = dictPickle([['f', P.tensor('FloatStorage', '0', 2, 0, [2], [1])], ['h', P.tensor('HalfStorage', '1', 2, 0, [2], [1])]]);
    L.scope(() => {
      const t = parseTorchCheckpoint(archive(pkl, { 0: be.subarray(0, 8), 1: be.subarray(8) }, { extra: [{ name: 'archive/byteorder', data: 'big' }] }), 'be.pt');
      assert.deepEqual(t['f']!.tolist(), [1.5, -2.25]);
      assert.deepEqual(rawValues(t['h']!), [0x3c00, 0xc000]);
    });
  });

  test('unknown and unsupported opcodes name the byte and offset', () => {
    const unknown = Uint8Array.from(bytes(P.proto, P.emptyDict, 0xff, P.stop));
    assert.match(errorOf(() => parseTorchCheckpoint(archive(unknown, {}), 'op.pt'), 'op.pt'), /op\.pt: archive\/data\.pkl: unknown pickle opcode 0xff at offset 3$/);
    const ext = Uint8Array.from(bytes(P.proto, 0x82, 1, P.stop));
    assert.match(errorOf(() => parseTorchCheckpoint(archive(ext, {}), 'op.pt'), 'op.pt'), /EXT1 \(0x82\) at offset 2: this opcode is not supported/);
  });

  test('malformed pickles', () => {
    const cases: Array<[number[], RegExp]> = [
      [bytes(P.proto, P.emptyDict), /without a STOP opcode: data\.pkl is truncated/],
      [bytes(P.proto, 0x58, 100, 0, 0, 0, 0x61), /BINUNICODE \(0x58\) at offset 2: needs 100 more bytes/],
      [bytes(P.proto, P.reduce, P.stop), /REDUCE \(0x52\) at offset 2: the stack is empty/],
      [bytes(P.proto, 0x68, 5, P.stop), /memo index 5 was never stored/],
      [bytes(P.proto, P.tuple, P.stop), /no MARK to pop to/],
      [bytes(P.proto, P.int(3), P.stop), /holds 3, not a dict of tensors/],
      // dicts nested 300 deep
      [bytes(P.proto, ...Array.from({ length: 300 }, () => bytes(P.emptyDict, P.str('k'))), P.emptyDict, ...Array.from({ length: 300 }, () => P.setitem), P.stop), /nested more than 256 deep/],
      [bytes(P.proto, P.mark, P.str('storage'), P.global('torch', 'FloatStorage'), P.str('0'), P.str('cpu'), P.tuple, P.binpersid, P.stop), /storage reference has 4 fields/],
      [bytes(P.proto, P.str('x'), P.binpersid, P.stop), /not a torch storage reference/],
      [bytes(P.proto, P.global('torch._utils', '_rebuild_tensor_v2'), P.mark, P.int(1), P.int(0), P.ints([1]), P.ints([1]), P.newfalse, P.none, P.tuple, P.reduce, P.stop), /the first argument must be a storage/],
    ];
    for (const [pkl, re] of cases) {
      assert.match(errorOf(() => parseTorchCheckpoint(archive(Uint8Array.from(pkl), {}), 'm.pt'), 'm.pt'), re);
    }
    // a dict that holds itself is walked once: no tensors, no hang
    const selfDict = Uint8Array.from(bytes(P.proto, P.emptyDict, 0x71, 0, P.str('self'), 0x68, 0, P.setitem, P.stop));
    assert.deepEqual(parseTorchCheckpoint(archive(selfDict, {}), 'm.pt'), {});
  });

  test('missing, too-small and unsupported storages', () => {
    const one = (type: string, numel: number, offset: number, size: number[], stride: number[]) => dictPickle([['w', P.tensor(type, '0', numel, offset, size, stride)]]);
    assert.match(errorOf(() => parseTorchCheckpoint(archive(one('FloatStorage', 4, 0, [4], [1]), {}), 's.pt'), 's.pt'), /storage '0' has no entry 'archive\/data\/0' in the archive/);
    assert.match(errorOf(() => parseTorchCheckpoint(archive(one('FloatStorage', 4, 0, [4], [1]), { 0: f32Bytes([1, 2, 3]) }), 's.pt'), 's.pt'), /storage '0' \('archive\/data\/0'\) holds 12 bytes but is declared as 4 float32 elements \(16 bytes\)/);
    assert.match(errorOf(() => parseTorchCheckpoint(archive(one('FloatStorage', 4, 1, [2, 2], [2, 1]), { 0: f32Bytes([1, 2, 3, 4]) }), 's.pt'), 's.pt'), /tensor 'w': size \[2, 2\], stride \[2, 1\] and storage offset 1 reach element 4, beyond storage '0' of 4 float32 elements/);
    assert.match(errorOf(() => parseTorchCheckpoint(archive(one('ByteStorage', 4, 0, [4], [1]), { 0: new Uint8Array(4) }), 's.pt'), 's.pt'), /tensor 'w': dtype uint8 \(torch\.ByteStorage\) is not supported by lavender/);
    const big = new Uint8Array(8);
    new DataView(big.buffer).setBigInt64(0, 2n ** 60n, true);
    assert.match(errorOf(() => parseTorchCheckpoint(archive(one('LongStorage', 1, 0, [1], [1]), { 0: big }), 's.pt'), 's.pt'), /tensor 'w': int64 element 0 is 1152921504606846976, beyond the 2\^53/);
    // an out-of-range int64 that no tensor uses is fine
    L.scope(() => {
      const both = new Uint8Array(16);
      new DataView(both.buffer).setBigInt64(0, 2n ** 60n, true);
      new DataView(both.buffer).setBigInt64(8, -5n, true);
      const t = parseTorchCheckpoint(archive(dictPickle([['w', P.tensor('LongStorage', '0', 2, 1, [1], [1])]]), { 0: both }), 's.pt');
      assert.deepEqual(t['w']!.tolist(), [-5]);
    });
  });
});

describe('torch checkpoints: broken archives', () => {
  const good = new Uint8Array(readFileSync(fixture('state_dict.pt')));

  test('truncated.pt', () => {
    const p = fixture('truncated.pt');
    assert.match(errorOf(() => loadTorchCheckpoint(p), p), /truncated/);
  });

  test('not a zip, the legacy format, an empty file, no data.pkl', () => {
    assert.match(errorOf(() => parseTorchCheckpoint(new TextEncoder().encode('hello world, not a checkpoint'), 'x.pt'), 'x.pt'), /not a zip archive/);
    assert.match(errorOf(() => parseTorchCheckpoint(new Uint8Array(0), 'x.pt'), 'x.pt'), /not a zip archive/);
    const legacy = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, 0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]);
    assert.match(errorOf(() => parseTorchCheckpoint(legacy, 'old.pt'), 'old.pt'), /legacy torch\.save format/);
    assert.match(errorOf(() => parseTorchCheckpoint(makeZip([{ name: 'a/other.txt', data: 'x' }]), 'x.pt'), 'x.pt'), /no '<archive>\/data\.pkl' in the zip archive \(1 entries: a\/other\.txt\)/);
    const p = join(dir, 'junk.pt');
    writeFileSync(p, 'junk');
    assert.match(errorOf(() => loadTorchCheckpoint(p), p), /not a zip archive/);
  });

  test('central directory and entries beyond the end of the file', () => {
    const z = archive(dictPickle([['w', P.tensor('FloatStorage', '0', 2, 0, [2], [1])]]), { 0: f32Bytes([1, 2]) });
    const eocd = z.length - 22;
    const dv = new DataView(z.buffer);
    const cdOffset = dv.getUint32(eocd + 16, true);
    const bad1 = z.slice();
    new DataView(bad1.buffer).setUint32(eocd + 16, z.length, true);
    assert.match(errorOf(() => parseTorchCheckpoint(bad1, 'z.pt'), 'z.pt'), /central directory .* runs past the end of the file .*truncated/);
    const bad2 = z.slice();
    new DataView(bad2.buffer).setUint32(cdOffset + 20, 1_000_000, true); // first entry's compressed size
    new DataView(bad2.buffer).setUint32(cdOffset + 24, 1_000_000, true);
    assert.match(errorOf(() => parseTorchCheckpoint(bad2, 'z.pt'), 'z.pt'), /entry 'archive\/data\.pkl' \(1000000 bytes at offset \d+\) runs past the end of the file/);
    const bad3 = z.slice();
    new DataView(bad3.buffer).setUint32(cdOffset, 0x12345678, true);
    assert.match(errorOf(() => parseTorchCheckpoint(bad3, 'z.pt'), 'z.pt'), /central directory entry 0 of 3 at offset \d+ is missing or has a bad signature/);
    const bad4 = z.slice();
    new DataView(bad4.buffer).setUint32(cdOffset + 42, z.length - 10, true);
    assert.match(errorOf(() => parseTorchCheckpoint(bad4, 'z.pt'), 'z.pt'), /local header at offset \d+ is beyond the end of the file/);
  });

  test('a corrupt storage fails its CRC-32', () => {
    const z = archive(dictPickle([['w', P.tensor('FloatStorage', '0', 2, 0, [2], [1])]]), { 0: f32Bytes([1, 2]) });
    const at = Buffer.from(z).indexOf(Buffer.from(f32Bytes([1, 2])));
    const bad = z.slice();
    bad[at] ^= 1;
    assert.match(errorOf(() => parseTorchCheckpoint(bad, 'crc.pt'), 'crc.pt'), /entry 'archive\/data\/0': CRC-32 is 0x[0-9a-f]{8} but the archive records 0x[0-9a-f]{8}/);
  });

  test('every truncation of a real checkpoint fails with an error naming the file', () => {
    for (let n = 0; n < good.length; n++) errorOf(() => parseTorchCheckpoint(good.subarray(0, n), 'cut.pt'), 'cut.pt');
  });

  test('every single-byte corruption of a real checkpoint loads or fails naming the file', () => {
    let failed = 0;
    for (let i = 0; i < good.length; i++) {
      const bad = good.slice();
      bad[i] ^= 0xa5;
      try {
        L.scope(() => {
          parseTorchCheckpoint(bad, 'flip.pt');
        });
      } catch (e) {
        assert.ok(e instanceof Error && e.message.startsWith('flip.pt: '), `byte ${i}: ${String(e)}`);
        failed++;
      }
    }
    assert.ok(failed > good.length / 2, `${failed} of ${good.length} corruptions were caught`);
  });
});

describe('torch checkpoints: writing', () => {
  const tensors = () => ({
    'layer.w': L.tensor([[1, 2, 3], [4, 5, 6]]),
    'layer.wt': L.tensor([[1, 2], [3, 4]]).T, // non-contiguous: written in logical order
    ids: L.tensor([1, -2, 2 ** 53], { dtype: 'int64' }),
    h: L.tensor([1.5, -2.25]).to('bfloat16'),
    f: L.tensor([0.5, 65504]).to('float16'),
    d: L.tensor([Math.PI], { dtype: 'float64' }),
    i: L.tensor([7, -8], { dtype: 'int32' }),
    m: L.tensor([1, 0, 1]).to('bool'),
    s: L.tensor(3),
    empty: L.zeros([0, 4]),
  });
  for (const zip64Limit of [undefined, 1]) {
    test(`every dtype round trips${zip64Limit ? ' with zip64 fields on every entry' : ''}`, () => {
      L.scope(() => {
        const want = tensors();
        const bytes = writer.serializeTorchCheckpoint(want, { zip64Limit });
        const got = parseTorchCheckpoint(bytes, 'w.pt');
        assert.deepEqual(Object.keys(got), Object.keys(want));
        for (const [k, t] of Object.entries(want)) {
          assert.equal(got[k]!.dtype, t.dtype, k);
          assert.deepEqual([...got[k]!.shape], [...t.shape], k);
          assert.deepEqual(rawValues(got[k]!), rawValues(t), k);
        }
        if (zip64Limit) assert.ok(Buffer.from(bytes).includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])), 'a zip64 end record');
      });
    });
  }

  test('saveTorchCheckpoint writes atomically: a failed save leaves no file', () => {
    const path = join(dir, 'bad.pt');
    assert.throws(() => writer.saveTorchCheckpoint(path, { x: L.tensor([0.5], { dtype: 'int64' }) }), /bad\.pt: tensor 'x': int64 element 0 is 0\.5, not an integer/);
    assert.equal(existsSync(path), false);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('bad.pt')), []);
    writer.saveTorchCheckpoint(path, { x: L.tensor([2]) });
    assert.deepEqual(loadTorchCheckpoint(path).x!.tolist(), [2]);
  });
});

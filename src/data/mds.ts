// MosaicML Streaming "MDS" datasets: read them (openMds), write them (MdsWriter), and feed them to training
// (MdsLoader: a Philox-seeded shuffle per epoch, partitioned across ranks, with an exact-resume state).
//
// Layout of a dataset directory (as written by MosaicML `streaming`'s MDSWriter):
//   index.json        {"version": 2, "shards": [{column_encodings, column_names, column_sizes, compression,
//                      format: "mds", hashes, raw_data: {basename, bytes, hashes}, samples, size_limit, version: 2,
//                      zip_data: null | {basename, bytes, hashes}}, ...]}
//   shard.00000.mds   uint32 LE num_samples; num_samples + 1 uint32 LE offsets (absolute byte offsets of each sample,
//                     the last one is the end of the file); MDSWriter then puts the shard's config as JSON (readers
//                     ignore it: they only follow the offsets); then the samples.
//   A sample          for each variable-size column (column_sizes[c] null), in column order, a uint32 LE byte
//                     length; then every column's payload, concatenated in column order.
//
// Encodings and what `get` returns for them:
//   bytes, jpeg, jpeg:<quality>, png   Uint8Array (images are not decoded)
//   str                                string (UTF-8, invalid UTF-8 is an error)
//   int, int64, uint64                 number when within +-(2^53 - 1), else bigint (writers take either)
//   int8 int16 int32 uint8 uint16 uint32 float16 float32 float64   number
//   str_int                            number or bigint, as for int;  str_float: number
//   str_decimal                        string (the decimal text; JS has no Decimal)
//   json                               the parsed value (Python's bare NaN / Infinity / -Infinity are accepted)
//   pil                                {width, height, mode, data: Uint8Array}  ([w, h, len(mode)] uint32, mode, raw)
//   ndarray[:<dtype>[:<d0,d1,...>]]    {dtype, shape, data: typed array}, MosaicML's header format (see ndarray
//                                      below); float16 data is a Uint16Array of half-precision bits
//   pkl                                refused: lavender never unpickles; the error names the column (getRaw gives
//                                      the bytes, and get(i, columns) reads the other columns)
//   np16 (LavenderFlow)                variable-size Uint16Array of float16 bits; float16BitsToFloat32 decodes it
//   <scalar> with column_sizes null    (LavenderFlow) a variable-size typed array of that dtype, e.g. `uint8` raw
//                                      bytes as a Uint8Array. With column_sizes = itemsize it is the MosaicML scalar.
// Compression: null; gz and br (zlib) are read and written; zstd, bz2 and snappy are not available in Node, so a
// shard that only exists compressed that way is an error naming it (a decompressed shard.NNNNN.mds next to it,
// as streaming leaves in its local cache, is used instead).
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants, gunzipSync, gzipSync } from 'node:zlib';
import { epochPermutation } from './loader.js';
import { f16ToF32 } from '../tensor/dtype.js';

// ---------------------------------------------------------------------------------------------------------------
// dtypes, float16

export type MdsDtype = 'uint8' | 'int8' | 'uint16' | 'int16' | 'float16' | 'uint32' | 'int32' | 'float32' | 'uint64' | 'int64' | 'float64';

export type MdsTypedArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

type TypedArrayCtor = { new (buffer: ArrayBuffer, byteOffset: number, length: number): MdsTypedArray; BYTES_PER_ELEMENT: number };

/** Per dtype: byte size, MosaicML ndarray dtype code, typed array (float16 is held as Uint16Array bits). */
const DTYPES: Record<MdsDtype, { size: number; code: number; ctor: TypedArrayCtor }> = {
  uint8: { size: 1, code: 8, ctor: Uint8Array },
  int8: { size: 1, code: 9, ctor: Int8Array },
  uint16: { size: 2, code: 16, ctor: Uint16Array },
  int16: { size: 2, code: 17, ctor: Int16Array },
  float16: { size: 2, code: 18, ctor: Uint16Array },
  uint32: { size: 4, code: 32, ctor: Uint32Array },
  int32: { size: 4, code: 33, ctor: Int32Array },
  float32: { size: 4, code: 34, ctor: Float32Array },
  uint64: { size: 8, code: 64, ctor: BigUint64Array },
  int64: { size: 8, code: 65, ctor: BigInt64Array },
  float64: { size: 8, code: 66, ctor: Float64Array },
};
const DTYPE_OF_CODE = new Map<number, MdsDtype>(Object.entries(DTYPES).map(([k, v]) => [v.code, k as MdsDtype]));
const isDtype = (s: unknown): s is MdsDtype => typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** A float64 -> IEEE half bits, one rounding (nearest, ties to even), as numpy's np.float16(x). */
export function f64ToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (1024 rounds up into the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven((a / 2 ** e) * 1024);
  if (m === 2048) {
    m = 1024;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (m - 1024);
}

/** float16 bits (an `np16` column, or float16 ndarray data) -> Float32Array. */
export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16ToF32(bits[i]!);
  return out;
}

/** Numbers -> float16 bits, rounding to nearest even (as numpy's astype(np.float16)). */
export function float32ToFloat16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f64ToF16(values[i]!);
  return out;
}

function typedArrayDtype(a: unknown): MdsDtype | null {
  if (a instanceof Uint8Array || a instanceof Uint8ClampedArray) return 'uint8';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint16Array) return 'uint16';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Uint32Array) return 'uint32';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof BigUint64Array) return 'uint64';
  return null;
}

function typedBytes(a: ArrayBufferView): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error('MDS: typed arrays need a little-endian host');
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A fresh, aligned typed array of `dtype` over a copy of `bytes` (length a multiple of the item size). */
function typedFromBytes(dtype: MdsDtype, bytes: Uint8Array): MdsTypedArray {
  if (!LITTLE_ENDIAN) throw new Error('MDS: typed arrays need a little-endian host');
  const { size, ctor } = DTYPES[dtype];
  if (bytes.length % size !== 0) throw new Error(`${bytes.length} bytes is not a whole number of ${dtype} values (${size} bytes each)`);
  const copy = Uint8Array.prototype.slice.call(bytes);
  return new ctor(copy.buffer as ArrayBuffer, 0, bytes.length / size);
}

// ---------------------------------------------------------------------------------------------------------------
// Python-compatible text: float repr, str(int), json.dumps(sort_keys=True)

/** Python's repr(float): shortest round-trip digits, exponent form when the decimal point is < -4 or > 16 away. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0.0`;
  const [mant, expStr] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expStr);
  const decpt = exp + 1;
  if (decpt <= -4 || decpt > 16) {
    const e = Math.abs(exp);
    return `${sign}${digits[0]}${digits.length > 1 ? '.' + digits.slice(1) : ''}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
  if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
  return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
}

/** Order of Python's sorted() on str: by code point (UTF-8 byte order is code point order). */
function codePointCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function pyJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c < 0x20 || c > 0x7e) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += s[i];
  }
  return out + '"';
}

/** json.dumps(value, sort_keys=True) for the index and shard configs (ints, strings, null, bools, lists, dicts). */
function pyJsonDumps(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloatRepr(v);
  if (typeof v === 'string') return pyJsonString(v);
  if (Array.isArray(v)) return '[' + v.map(pyJsonDumps).join(', ') + ']';
  const o = v as Record<string, unknown>;
  return '{' + Object.keys(o).sort(codePointCompare).map((k) => `${pyJsonString(k)}: ${pyJsonDumps(o[k])}`).join(', ') + '}';
}

const PY_MARK = '\u0000lavender-mds\u0000';

/** JSON.parse that also accepts the bare NaN, Infinity and -Infinity that Python's json.dumps writes. */
function parsePyJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    let out = '';
    let changed = false;
    for (let i = 0; i < text.length; ) {
      const c = text[i]!;
      if (c === '"') {
        let j = i + 1;
        while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
        out += text.slice(i, j + 1);
        i = j + 1;
        continue;
      }
      const tok = text.startsWith('NaN', i) ? 'NaN' : text.startsWith('-Infinity', i) ? '-Infinity' : text.startsWith('Infinity', i) ? 'Infinity' : null;
      if (tok) {
        out += JSON.stringify(PY_MARK + tok);
        i += tok.length;
        changed = true;
        continue;
      }
      out += c;
      i++;
    }
    if (!changed) throw err;
    return JSON.parse(out, (_k, v) => (typeof v === 'string' && v.startsWith(PY_MARK) ? Number(v.slice(PY_MARK.length)) : v));
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8enc = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function decodeUtf8(b: Uint8Array): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new Error('bytes are not valid UTF-8');
  }
}

function encodeUtf8(s: unknown, what = 'a string'): Uint8Array {
  if (typeof s !== 'string') throw new Error(`expected ${what}, got ${describe(s)}`);
  if (LONE_SURROGATE.test(s)) throw new Error('string has a lone surrogate, which UTF-8 cannot encode');
  return utf8enc.encode(s);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  return typeof v;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const toIntResult = (b: bigint): number | bigint => (b <= SAFE && b >= -SAFE ? Number(b) : b);

function parsePyInt(text: string): bigint {
  const t = text.trim();
  if (!/^[+-]?\d+(?:_\d+)*$/.test(t)) throw new Error(`${JSON.stringify(text)} is not an integer`);
  return BigInt(t.replace(/_/g, ''));
}

function parsePyFloat(text: string): number {
  const t = text.trim().toLowerCase();
  const special = /^([+-]?)(inf|infinity|nan)$/.exec(t);
  if (special) return special[2] === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
  const d = '\\d+(?:_\\d+)*';
  if (!new RegExp(`^[+-]?(?:${d}(?:\\.(?:${d})?)?|\\.${d})(?:e[+-]?${d})?$`).test(t)) throw new Error(`${JSON.stringify(text)} is not a float`);
  return Number(t.replace(/_/g, ''));
}

const DECIMAL = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?|inf(?:inity)?|s?nan\d*)$/i;

// ---------------------------------------------------------------------------------------------------------------
// Codecs

type Codec =
  | { kind: 'bytes' | 'str' | 'int' | 'str_int' | 'str_float' | 'str_decimal' | 'json' | 'pkl' | 'pil' | 'np16' }
  | { kind: 'image'; format: 'jpeg' | 'png' }
  | { kind: 'scalar'; dtype: MdsDtype }
  | { kind: 'ndarray'; dtype: MdsDtype | null; shape: number[] | null };

const SIMPLE = ['bytes', 'str', 'int', 'str_int', 'str_float', 'str_decimal', 'json', 'pkl', 'pil', 'np16'] as const;

/** Encodings this module knows (MosaicML's plus LavenderFlow's np16); jpeg and ndarray take arguments after ':'. */
export const MDS_ENCODINGS: readonly string[] = [...SIMPLE, 'jpeg', 'png', 'ndarray', ...Object.keys(DTYPES)].sort();

/** Parse an encoding string; throws with the reason. */
function parseEncoding(enc: unknown): Codec {
  if (typeof enc !== 'string') throw new Error(`encoding must be a string, got ${describe(enc)}`);
  const colon = enc.indexOf(':');
  const name = colon < 0 ? enc : enc.slice(0, colon);
  const arg = colon < 0 ? null : enc.slice(colon + 1);
  const bad = (why: string): never => {
    throw new Error(`encoding ${JSON.stringify(enc)}: ${why}`);
  };
  if (name === 'ndarray') {
    const args = arg ? arg.split(':') : [];
    if (args.length > 2) bad('expected ndarray, ndarray:<dtype> or ndarray:<dtype>:<d0,d1,...>');
    let dtype: MdsDtype | null = null;
    let shape: number[] | null = null;
    if (args.length >= 1) {
      if (!isDtype(args[0])) bad(`unknown dtype ${JSON.stringify(args[0])} (one of ${Object.keys(DTYPES).join(', ')})`);
      dtype = args[0] as MdsDtype;
    }
    if (args.length === 2) {
      shape = args[1]!.split(',').map((s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : NaN));
      if (shape.some((d) => !Number.isSafeInteger(d) || d < 1)) bad('shape must be positive integers separated by commas');
    }
    return { kind: 'ndarray', dtype, shape };
  }
  if (name === 'jpeg') {
    if (arg !== null && (!/^\d+$/.test(arg) || Number(arg) > 100)) bad('the JPEG quality must be an integer in [0, 100]');
    return { kind: 'image', format: 'jpeg' };
  }
  if (arg !== null) bad(`"${name}" takes no arguments`);
  if (name === 'png') return { kind: 'image', format: 'png' };
  if (isDtype(name)) return { kind: 'scalar', dtype: name };
  if ((SIMPLE as readonly string[]).includes(name)) return { kind: name as (typeof SIMPLE)[number] };
  return bad(`not a supported MDS encoding (supported: ${MDS_ENCODINGS.join(', ')})`);
}

/** Byte size every value of the encoding has, or null when it varies. */
function naturalSize(c: Codec): number | null {
  if (c.kind === 'int') return 8;
  if (c.kind === 'scalar') return DTYPES[c.dtype].size;
  if (c.kind === 'ndarray' && c.dtype && c.shape) return c.shape.reduce((a, b) => a * b, 1) * DTYPES[c.dtype].size;
  return null;
}

/** A resolved column: `array` marks a scalar encoding stored variable-size, read as a typed array. */
interface Column {
  name: string;
  encoding: string;
  codec: Codec;
  size: number | null;
  array: boolean;
}

function checkSize(b: Uint8Array, n: number, what: string): void {
  if (b.length !== n) throw new Error(`has ${b.length} bytes, expected ${n} for ${what}`);
}

/** The MosaicML ndarray encoding: [dtype: 1 if not static] [ndim << 2 | shape dtype: 1, shape if not static] values. */
function decodeNdarray(c: { dtype: MdsDtype | null; shape: number[] | null }, b: Uint8Array): MdsNdArray {
  let p = 0;
  let dtype = c.dtype;
  if (!dtype) {
    if (b.length < 1) throw new Error('ndarray data is empty (expected a dtype byte)');
    dtype = DTYPE_OF_CODE.get(b[p]!) ?? null;
    if (!dtype) throw new Error(`ndarray dtype code ${b[p]} is not one of ${[...DTYPE_OF_CODE.keys()].join(', ')}`);
    p++;
  }
  let shape = c.shape;
  if (!shape) {
    if (b.length < p + 1) throw new Error('ndarray data ends before its shape byte');
    const ndim = b[p]! >> 2;
    const k = b[p]! & 3;
    p++;
    const w = 2 ** k;
    if (b.length < p + ndim * w) throw new Error(`ndarray data ends inside its shape (${ndim} dims of ${w} bytes)`);
    const dv = new DataView(b.buffer, b.byteOffset + p, ndim * w);
    shape = [];
    for (let i = 0; i < ndim; i++) {
      const d = k === 0 ? dv.getUint8(i) : k === 1 ? dv.getUint16(2 * i, true) : k === 2 ? dv.getUint32(4 * i, true) : Number(dv.getBigUint64(8 * i, true));
      if (!Number.isSafeInteger(d)) throw new Error(`ndarray dimension ${i} is too large`);
      shape.push(d);
    }
    p += ndim * w;
  }
  const count = shape.reduce((a, d) => a * d, 1);
  const nbytes = b.length - p;
  if (nbytes !== count * DTYPES[dtype].size) {
    throw new Error(`ndarray of ${dtype} shape [${shape.join(', ')}] needs ${count * DTYPES[dtype].size} value bytes, found ${nbytes}`);
  }
  return { dtype, shape: [...shape], data: typedFromBytes(dtype, b.subarray(p)) };
}

function decodeScalar(dtype: MdsDtype, b: Uint8Array): number | bigint {
  checkSize(b, DTYPES[dtype].size, dtype);
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  switch (dtype) {
    case 'uint8': return dv.getUint8(0);
    case 'int8': return dv.getInt8(0);
    case 'uint16': return dv.getUint16(0, true);
    case 'int16': return dv.getInt16(0, true);
    case 'float16': return f16ToF32(dv.getUint16(0, true));
    case 'uint32': return dv.getUint32(0, true);
    case 'int32': return dv.getInt32(0, true);
    case 'float32': return dv.getFloat32(0, true);
    case 'uint64': return toIntResult(dv.getBigUint64(0, true));
    case 'int64': return toIntResult(dv.getBigInt64(0, true));
    case 'float64': return dv.getFloat64(0, true);
  }
}

function decodeColumn(col: Pick<Column, 'codec' | 'array' | 'name'>, b: Uint8Array): unknown {
  const c = col.codec;
  if (col.array && c.kind === 'scalar') return typedFromBytes(c.dtype, b);
  switch (c.kind) {
    case 'bytes':
    case 'image':
      return Uint8Array.prototype.slice.call(b);
    case 'str': return decodeUtf8(b);
    case 'int': return decodeScalar('int64', b);
    case 'scalar': return decodeScalar(c.dtype, b);
    case 'str_int': return toIntResult(parsePyInt(decodeUtf8(b)));
    case 'str_float': return parsePyFloat(decodeUtf8(b));
    case 'str_decimal': {
      const t = decodeUtf8(b).trim();
      if (!DECIMAL.test(t.replace(/(\d)_(?=\d)/g, '$1'))) throw new Error(`${JSON.stringify(t)} is not a decimal number`);
      return t;
    }
    case 'json': {
      const t = decodeUtf8(b);
      try {
        return parsePyJson(t);
      } catch (e) {
        throw new Error(`invalid JSON: ${(e as Error).message}`);
      }
    }
    case 'pkl':
      throw new Error('the "pkl" encoding (a Python pickle) is refused: lavender never unpickles data. Re-write the column as json (or another encoding), read the other columns with get(i, columns), or take the bytes with getRaw(i)');
    case 'pil': {
      if (b.length < 12) throw new Error(`pil data has ${b.length} bytes, shorter than its 12-byte header`);
      const dv = new DataView(b.buffer, b.byteOffset, b.length);
      const width = dv.getUint32(0, true), height = dv.getUint32(4, true), modeLen = dv.getUint32(8, true);
      if (12 + modeLen > b.length) throw new Error(`pil mode length ${modeLen} runs past the ${b.length}-byte value`);
      return { width, height, mode: decodeUtf8(b.subarray(12, 12 + modeLen)), data: Uint8Array.prototype.slice.call(b, 12 + modeLen) };
    }
    case 'ndarray': return decodeNdarray(c, b);
    case 'np16': return typedFromBytes('float16', b);
  }
}

function int64Bytes(v: unknown, dtype: 'int64' | 'uint64'): Uint8Array {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else throw new Error(`expected an integer (a safe-integer number or a bigint), got ${describe(v)}`);
  const [lo, hi] = dtype === 'int64' ? [-(1n << 63n), (1n << 63n) - 1n] : [0n, (1n << 64n) - 1n];
  if (b < lo || b > hi) throw new Error(`${b} is out of range for ${dtype}`);
  const out = new Uint8Array(8);
  const dv = new DataView(out.buffer);
  if (dtype === 'int64') dv.setBigInt64(0, b, true);
  else dv.setBigUint64(0, b, true);
  return out;
}

const INT_RANGES: Partial<Record<MdsDtype, [number, number]>> = {
  uint8: [0, 0xff], int8: [-0x80, 0x7f], uint16: [0, 0xffff], int16: [-0x8000, 0x7fff], uint32: [0, 0xffffffff], int32: [-0x80000000, 0x7fffffff],
};

function encodeScalar(dtype: MdsDtype, v: unknown): Uint8Array {
  if (dtype === 'int64' || dtype === 'uint64') return int64Bytes(v, dtype);
  if (typeof v !== 'number') throw new Error(`expected a number, got ${describe(v)}`);
  const out = new Uint8Array(DTYPES[dtype].size);
  const dv = new DataView(out.buffer);
  const range = INT_RANGES[dtype];
  if (range) {
    if (!Number.isInteger(v) || v < range[0] || v > range[1]) throw new Error(`${v} is not an integer in [${range[0]}, ${range[1]}] (${dtype})`);
    if (dtype === 'uint8') dv.setUint8(0, v);
    else if (dtype === 'int8') dv.setInt8(0, v);
    else if (dtype === 'uint16') dv.setUint16(0, v, true);
    else if (dtype === 'int16') dv.setInt16(0, v, true);
    else if (dtype === 'uint32') dv.setUint32(0, v, true);
    else dv.setInt32(0, v, true);
  } else if (dtype === 'float16') dv.setUint16(0, f64ToF16(v), true);
  else if (dtype === 'float32') dv.setFloat32(0, v, true);
  else dv.setFloat64(0, v, true);
  return out;
}

/** A variable-size typed array column (`uint8` raw bytes, `np16`, ...): the matching typed array; float16 also takes floats. */
function encodeArray(dtype: MdsDtype, v: unknown): Uint8Array {
  const got = typedArrayDtype(v);
  if (dtype === 'float16' && (got === 'float32' || got === 'float64')) return typedBytes(float32ToFloat16Bits(v as Float32Array));
  const want = dtype === 'float16' ? 'uint16' : dtype;
  if (got !== want) {
    throw new Error(`expected a ${DTYPES[dtype].ctor.name}${dtype === 'float16' ? ' of float16 bits (or a Float32Array)' : ''}, got ${describe(v)}`);
  }
  return Uint8Array.prototype.slice.call(typedBytes(v as ArrayBufferView));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

function encodeNdarray(c: { dtype: MdsDtype | null; shape: number[] | null }, v: unknown): Uint8Array {
  let data: unknown, dtype: unknown, shape: unknown;
  if (ArrayBuffer.isView(v)) data = v;
  else if (isObject(v)) ({ data, dtype, shape } = v);
  else throw new Error(`expected a typed array or {dtype?, shape?, data}, got ${describe(v)}`);
  const inferred = typedArrayDtype(data);
  if (!inferred) throw new Error(`ndarray data must be a typed array, got ${describe(data)}`);
  const arr = data as MdsTypedArray;
  if (dtype === undefined) dtype = c.dtype === 'float16' && inferred === 'uint16' ? 'float16' : inferred;
  if (!isDtype(dtype)) throw new Error(`unknown ndarray dtype ${describe(dtype)}`);
  if ((dtype === 'float16' ? 'uint16' : dtype) !== inferred) throw new Error(`dtype ${dtype} does not match data ${arr.constructor.name}`);
  if (c.dtype && dtype !== c.dtype) throw new Error(`wrong dtype: expected ${c.dtype}, got ${dtype}`);
  if (shape === undefined) shape = c.shape ?? [arr.length];
  if (!Array.isArray(shape) || shape.length === 0 || shape.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    throw new Error(`ndarray shape must be a non-empty list of positive integers (MDS stores no empty arrays or scalars), got ${JSON.stringify(shape)}`);
  }
  const dims = shape as number[];
  if (dims.length >= 64) throw new Error(`ndarray has ${dims.length} axes, at most 63`);
  const count = dims.reduce((a, d) => a * d, 1);
  if (count !== arr.length) throw new Error(`shape [${dims.join(', ')}] holds ${count} values, data has ${arr.length}`);
  if (c.shape && (c.shape.length !== dims.length || c.shape.some((d, i) => d !== dims[i]))) {
    throw new Error(`wrong shape: expected [${c.shape.join(', ')}], got [${dims.join(', ')}]`);
  }
  const parts: Uint8Array[] = [];
  if (!c.dtype) parts.push(Uint8Array.of(DTYPES[dtype].code));
  if (!c.shape) {
    const max = Math.max(...dims);
    const k = max < 2 ** 8 ? 0 : max < 2 ** 16 ? 1 : max < 2 ** 32 ? 2 : 3;
    const sh = new Uint8Array(1 + dims.length * 2 ** k);
    const dv = new DataView(sh.buffer);
    sh[0] = (dims.length << 2) | k;
    dims.forEach((d, i) => {
      if (k === 0) dv.setUint8(1 + i, d);
      else if (k === 1) dv.setUint16(1 + 2 * i, d, true);
      else if (k === 2) dv.setUint32(1 + 4 * i, d, true);
      else dv.setBigUint64(1 + 8 * i, BigInt(d), true);
    });
    parts.push(sh);
  }
  parts.push(typedBytes(arr));
  return concat(parts);
}

const JPEG_MAGIC = [0xff, 0xd8, 0xff];
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function encodeColumn(col: Pick<Column, 'codec' | 'array' | 'name'>, v: unknown): Uint8Array {
  const c = col.codec;
  if (col.array && c.kind === 'scalar') return encodeArray(c.dtype, v);
  switch (c.kind) {
    case 'bytes':
      if (!(v instanceof Uint8Array)) throw new Error(`expected a Uint8Array, got ${describe(v)}`);
      return v;
    case 'image': {
      const magic = c.format === 'jpeg' ? JPEG_MAGIC : PNG_MAGIC;
      if (!(v instanceof Uint8Array)) throw new Error(`expected the encoded ${c.format.toUpperCase()} file as a Uint8Array, got ${describe(v)}`);
      if (magic.some((m, i) => v[i] !== m)) throw new Error(`bytes are not a ${c.format.toUpperCase()} file (they must start ${magic.map((m) => m.toString(16).padStart(2, '0')).join(' ')})`);
      return v;
    }
    case 'str': return encodeUtf8(v);
    case 'int': return int64Bytes(v, 'int64');
    case 'scalar': return encodeScalar(c.dtype, v);
    case 'str_int':
      if (typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v))) return utf8enc.encode(String(v));
      throw new Error(`expected an integer (a safe-integer number or a bigint), got ${describe(v)}`);
    case 'str_float':
      if (typeof v !== 'number') throw new Error(`expected a number, got ${describe(v)}`);
      return utf8enc.encode(pyFloatRepr(v));
    case 'str_decimal':
      if (typeof v === 'bigint') return utf8enc.encode(String(v));
      if (typeof v === 'number') return utf8enc.encode(Number.isSafeInteger(v) ? String(v) : pyFloatRepr(v));
      if (typeof v !== 'string' || !DECIMAL.test(v)) throw new Error(`expected a decimal string (e.g. "-12.5e3"), a number or a bigint, got ${describe(v)}`);
      return utf8enc.encode(v);
    case 'json': {
      let text: string | undefined;
      try {
        text = JSON.stringify(v, (_k, x) => {
          if (typeof x === 'number' && !Number.isFinite(x)) throw new Error(`${x} is not representable in JSON`);
          return x;
        });
      } catch (e) {
        throw new Error(`value is not JSON-serialisable: ${(e as Error).message}`);
      }
      if (text === undefined) throw new Error(`value is not JSON-serialisable: ${describe(v)}`);
      return encodeUtf8(text);
    }
    case 'pkl':
      throw new Error('the "pkl" encoding is not supported; lavender never pickles or unpickles data (use json)');
    case 'pil': {
      if (!isObject(v)) throw new Error(`expected {width, height, mode, data}, got ${describe(v)}`);
      const { width, height, mode, data } = v;
      for (const [k, x] of [['width', width], ['height', height]] as const) {
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new Error(`pil ${k} must be a uint32, got ${describe(x)}`);
      }
      const m = encodeUtf8(mode, 'a mode string');
      if (!(data instanceof Uint8Array)) throw new Error(`pil data must be a Uint8Array, got ${describe(data)}`);
      const head = new Uint8Array(12);
      const dv = new DataView(head.buffer);
      dv.setUint32(0, width as number, true);
      dv.setUint32(4, height as number, true);
      dv.setUint32(8, m.length, true);
      return concat([head, m, data]);
    }
    case 'ndarray': return encodeNdarray(c, v);
    case 'np16': return encodeArray('float16', v);
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Decode one value of `encoding` from its bytes (MosaicML's mds_decode; a variable-size scalar column is not this). */
export function mdsDecode(encoding: string, data: Uint8Array): unknown {
  const codec = parseEncoding(encoding);
  try {
    return decodeColumn({ codec, array: false, name: '' }, data);
  } catch (e) {
    throw new Error(`mdsDecode(${JSON.stringify(encoding)}): ${(e as Error).message}`);
  }
}

/** Encode one value as `encoding` (MosaicML's mds_encode). */
export function mdsEncode(encoding: string, value: unknown): Uint8Array {
  const codec = parseEncoding(encoding);
  try {
    return encodeColumn({ codec, array: false, name: '' }, value);
  } catch (e) {
    throw new Error(`mdsEncode(${JSON.stringify(encoding)}): ${(e as Error).message}`);
  }
}

export interface MdsNdArray {
  dtype: MdsDtype;
  shape: number[];
  /** float16 data is a Uint16Array of half bits (float16BitsToFloat32 decodes it). */
  data: MdsTypedArray;
}

export interface MdsPilImage {
  width: number;
  height: number;
  mode: string;
  data: Uint8Array;
}

// ---------------------------------------------------------------------------------------------------------------
// Reader

interface FileInfo {
  basename: string;
  bytes: number | null;
}

interface ShardInfo {
  index: number;
  samples: number;
  compression: string | null;
  raw: FileInfo;
  zip: FileInfo | null;
}

interface OpenShard {
  /** Path of the file the bytes come from (the decompressed one is named by its raw basename). */
  file: string;
  fd: number | null;
  mem: Uint8Array | null;
  offsets: Uint32Array;
}

export interface MdsOpenOptions {
  /** Shards held open (file descriptor and offset table; compressed shards are held decompressed). Default 4. */
  cacheShards?: number;
}

const ZLIB_COMPRESSIONS: Record<string, { ext: string; levels: [number, number] }> = { gz: { ext: 'gz', levels: [0, 9] }, br: { ext: 'br', levels: [0, 11] } };
const OTHER_COMPRESSIONS = new Set(['zstd', 'bz2', 'snappy']);

export class MdsDataset {
  /** Number of samples. */
  readonly length: number;
  /** Column name -> encoding, in the dataset's column order. */
  readonly columns: Readonly<Record<string, string>>;
  /** Column name -> fixed byte size, or null for variable-size columns. */
  readonly columnSizes: Readonly<Record<string, number | null>>;
  readonly numShards: number;
  private readonly cols: Column[];
  private readonly shards: ShardInfo[];
  /** starts[s] = dataset index of shard s's first sample; starts[numShards] = length. */
  private readonly starts: number[];
  private readonly cache = new Map<number, OpenShard>();
  private readonly cacheShards: number;

  /** @internal use openMds */
  constructor(readonly dir: string, readonly indexPath: string, cols: Column[], shards: ShardInfo[], opts: MdsOpenOptions) {
    this.cols = cols;
    this.shards = shards;
    this.columns = Object.fromEntries(cols.map((c) => [c.name, c.encoding]));
    this.columnSizes = Object.fromEntries(cols.map((c) => [c.name, c.size]));
    this.starts = [0];
    for (const s of shards) this.starts.push(this.starts[this.starts.length - 1]! + s.samples);
    this.length = this.starts[shards.length]!;
    this.numShards = shards.length;
    const cs = opts.cacheShards ?? 4;
    if (!Number.isInteger(cs) || cs < 1) throw new Error(`openMds: cacheShards must be a positive integer, got ${cs}`);
    this.cacheShards = cs;
  }

  /** Sample i decoded (all columns, or only `columns`). */
  get(i: number, columns?: readonly string[]): Record<string, unknown> {
    const want = columns ? new Set(columns) : null;
    if (want) for (const n of want) if (!(n in this.columns)) throw new Error(`MdsDataset.get: no column "${n}" (columns: ${Object.keys(this.columns).join(', ')})`);
    const { shard, local, sizes, bytes, file } = this.locate(i);
    const out: Record<string, unknown> = {};
    let p = sizes.start;
    this.cols.forEach((col, c) => {
      const n = sizes.sizes[c]!;
      if (!want || want.has(col.name)) {
        try {
          out[col.name] = decodeColumn(col, bytes.subarray(p, p + n));
        } catch (e) {
          throw new Error(`${file}: sample ${local} (dataset index ${i}, shard ${shard}): column "${col.name}" (${col.encoding}${col.array ? ', variable-size array' : ''}): ${(e as Error).message}`);
        }
      }
      p += n;
    });
    return out;
  }

  /** Sample i as each column's undecoded bytes. */
  getRaw(i: number): Record<string, Uint8Array> {
    const { sizes, bytes } = this.locate(i);
    const out: Record<string, Uint8Array> = {};
    let p = sizes.start;
    this.cols.forEach((col, c) => {
      out[col.name] = bytes.slice(p, p + sizes.sizes[c]!);
      p += sizes.sizes[c]!;
    });
    return out;
  }

  /** Open every shard and check its size, sample count and offsets (get() does this lazily, shard by shard). */
  verify(): void {
    for (let s = 0; s < this.shards.length; s++) {
      const sh = this.loadShard(s);
      if (sh.fd !== null) closeSync(sh.fd);
    }
  }

  /** Close the shard files held open. The dataset stays usable (shards reopen on demand). */
  close(): void {
    for (const sh of this.cache.values()) if (sh.fd !== null) closeSync(sh.fd);
    this.cache.clear();
  }

  private locate(i: number) {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`MdsDataset: index ${i} is out of range [0, ${this.length})`);
    let lo = 0, hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    const shard = lo;
    const local = i - this.starts[shard]!;
    const sh = this.shard(shard);
    const begin = sh.offsets[local]!, end = sh.offsets[local + 1]!;
    const bytes = this.read(sh, begin, end - begin);
    const sizes = this.sampleLayout(bytes, sh.file, local);
    return { shard, local, sizes, bytes, file: sh.file };
  }

  /** Per-column byte sizes of a sample: the uint32 lengths of the variable columns first, then fixed sizes. */
  private sampleLayout(b: Uint8Array, file: string, local: number): { start: number; sizes: number[] } {
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    let p = 0;
    const sizes: number[] = [];
    for (const col of this.cols) {
      if (col.size !== null) sizes.push(col.size);
      else {
        if (p + 4 > b.length) throw new Error(`${file}: sample ${local} has ${b.length} bytes, too short for the length of column "${col.name}"`);
        sizes.push(dv.getUint32(p, true));
        p += 4;
      }
    }
    let total = p;
    for (const n of sizes) total += n;
    if (total !== b.length) {
      throw new Error(`${file}: sample ${local} has ${b.length} bytes, but its column sizes (${this.cols.map((c, k) => `${c.name}=${sizes[k]}`).join(', ')}) and ${p} bytes of lengths add up to ${total}`);
    }
    return { start: p, sizes };
  }

  private read(sh: OpenShard, pos: number, len: number): Uint8Array {
    if (sh.mem) return sh.mem.subarray(pos, pos + len);
    const out = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const n = readSync(sh.fd!, out, got, len - got, pos + got);
      if (n === 0) throw new Error(`${sh.file}: file ended at byte ${pos + got} while reading bytes [${pos}, ${pos + len}) (was it truncated after opening?)`);
      got += n;
    }
    return out;
  }

  private shard(s: number): OpenShard {
    const hit = this.cache.get(s);
    if (hit) {
      this.cache.delete(s);
      this.cache.set(s, hit);
      return hit;
    }
    const sh = this.loadShard(s);
    this.cache.set(s, sh);
    while (this.cache.size > this.cacheShards) {
      const [k, old] = this.cache.entries().next().value as [number, OpenShard];
      if (old.fd !== null) closeSync(old.fd);
      this.cache.delete(k);
    }
    return sh;
  }

  private loadShard(s: number): OpenShard {
    const info = this.shards[s]!;
    const field = `index.json shards[${s}]`;
    const rawPath = join(this.dir, info.raw.basename);
    let sh: OpenShard;
    let size: number;
    if (existsSync(rawPath)) {
      const fd = openSync(rawPath, 'r');
      size = fstatSync(fd).size;
      sh = { file: rawPath, fd, mem: null, offsets: new Uint32Array(0) };
    } else if (info.compression) {
      const zipPath = info.zip ? join(this.dir, info.zip.basename) : null;
      if (!zipPath) throw new Error(`MDS: shard file ${rawPath} is missing (${field}.raw_data.basename), and ${field}.zip_data names no compressed file`);
      const family = info.compression.split(':')[0]!;
      if (!ZLIB_COMPRESSIONS[family]) {
        throw new Error(`MDS: shard ${zipPath} is compressed with "${info.compression}" (${field}.compression), which Node cannot decompress` +
          (OTHER_COMPRESSIONS.has(family) ? ` (Node 20 has no ${family})` : '') + `; decompress it to ${rawPath} (e.g. \`${family === 'zstd' ? 'zstd -d' : family === 'bz2' ? 'bunzip2 -k' : family} ${info.zip!.basename}\`) and retry`);
      }
      if (!existsSync(zipPath)) throw new Error(`MDS: shard file ${zipPath} is missing (${field}.zip_data.basename), and so is ${rawPath}`);
      const zipped = readFileSync(zipPath);
      if (info.zip!.bytes !== null && zipped.length !== info.zip!.bytes) {
        throw new Error(`MDS: ${zipPath} has ${zipped.length} bytes, but ${field}.zip_data.bytes says ${info.zip!.bytes}`);
      }
      let raw: Buffer;
      try {
        raw = family === 'gz' ? gunzipSync(zipped) : brotliDecompressSync(zipped);
      } catch (e) {
        throw new Error(`MDS: ${zipPath}: ${family} decompression failed: ${(e as Error).message}`);
      }
      size = raw.length;
      sh = { file: `${zipPath} (decompressed)`, fd: null, mem: new Uint8Array(raw.buffer, raw.byteOffset, raw.length), offsets: new Uint32Array(0) };
    } else {
      throw new Error(`MDS: shard file ${rawPath} is missing (${field}.raw_data.basename)`);
    }
    try {
      if (info.raw.bytes !== null && size !== info.raw.bytes) {
        throw new Error(`MDS: ${sh.file} has ${size} bytes, but ${field}.raw_data.bytes says ${info.raw.bytes}`);
      }
      if (size < 4) throw new Error(`MDS: ${sh.file} has ${size} bytes, too short for the sample count`);
      const n = new DataView(this.read(sh, 0, 4).buffer).getUint32(0, true);
      if (n !== info.samples) throw new Error(`MDS: ${sh.file} holds ${n} samples, but ${field}.samples says ${info.samples}`);
      const headEnd = 4 * (n + 2);
      if (headEnd > size) throw new Error(`MDS: ${sh.file} has ${size} bytes, too short for ${n} samples' ${n + 1} offsets (${headEnd} bytes)`);
      const tab = this.read(sh, 4, 4 * (n + 1));
      const dv = new DataView(tab.buffer, tab.byteOffset, tab.length);
      const offsets = new Uint32Array(n + 1);
      for (let k = 0; k <= n; k++) offsets[k] = dv.getUint32(4 * k, true);
      if (offsets[0]! < headEnd) throw new Error(`MDS: ${sh.file}: offset 0 is ${offsets[0]}, inside the ${headEnd}-byte header (offsets out of bounds)`);
      for (let k = 0; k < n; k++) {
        if (offsets[k + 1]! < offsets[k]!) throw new Error(`MDS: ${sh.file}: offset ${k + 1} (${offsets[k + 1]}) is before offset ${k} (${offsets[k]}) (offsets out of bounds)`);
      }
      if (offsets[n]! !== size) throw new Error(`MDS: ${sh.file}: the last offset is ${offsets[n]}, but the file has ${size} bytes (offsets out of bounds)`);
      sh.offsets = offsets;
      return sh;
    } catch (e) {
      if (sh.fd !== null) closeSync(sh.fd);
      throw e;
    }
  }
}

function safeBasename(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && !/[/\\]/.test(v) && v !== '.' && v !== '..';
}

/**
 * Open the MDS dataset in `dir` (reads and validates index.json; shard files are opened when first read, and
 * at most `cacheShards` are held open at once).
 */
export function openMds(dir: string, opts: MdsOpenOptions = {}): MdsDataset {
  const indexPath = join(dir, 'index.json');
  let text: string;
  try {
    text = readFileSync(indexPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`MDS: ${indexPath} not found (an MDS dataset directory holds index.json and its shard files)`);
    throw new Error(`MDS: cannot read ${indexPath}: ${(e as Error).message}`);
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    throw new Error(`MDS: ${indexPath}: invalid JSON: ${(e as Error).message}`);
  }
  const fail = (field: string, msg: string): never => {
    throw new Error(`MDS: ${indexPath}: ${field} ${msg}`);
  };
  if (!isObject(index)) fail('(top level)', 'must be an object {"version": 2, "shards": [...]}');
  const top = index as Record<string, unknown>;
  if (top.version !== 2) fail('"version"', `is ${JSON.stringify(top.version)}; only version 2 is supported`);
  if (!Array.isArray(top.shards)) fail('"shards"', `must be a list, got ${describe(top.shards)}`);
  let cols: Column[] | null = null;
  const shards: ShardInfo[] = [];
  (top.shards as unknown[]).forEach((sv, s) => {
    const f = `shards[${s}]`;
    if (!isObject(sv)) fail(f, `must be an object, got ${describe(sv)}`);
    const sh = sv as Record<string, unknown>;
    if (sh.format !== 'mds') fail(`${f}.format`, `is ${JSON.stringify(sh.format)}; only "mds" is supported`);
    if (sh.version !== 2) fail(`${f}.version`, `is ${JSON.stringify(sh.version)}; only version 2 is supported`);
    const names = sh.column_names, encs = sh.column_encodings, sizes = sh.column_sizes;
    if (!Array.isArray(names) || names.length === 0 || names.some((n) => typeof n !== 'string')) fail(`${f}.column_names`, 'must be a non-empty list of strings');
    const nm = names as string[];
    if (new Set(nm).size !== nm.length) fail(`${f}.column_names`, `has a duplicate name (${JSON.stringify(nm)})`);
    if (!Array.isArray(encs) || encs.length !== nm.length) fail(`${f}.column_encodings`, `must be a list of ${nm.length} encodings, one per column`);
    if (!Array.isArray(sizes) || sizes.length !== nm.length) fail(`${f}.column_sizes`, `must be a list of ${nm.length} sizes (null for variable-size), one per column`);
    const here: Column[] = nm.map((name, c) => {
      const enc = (encs as unknown[])[c];
      let codec: Codec;
      try {
        codec = parseEncoding(enc);
      } catch (e) {
        return fail(`${f}.column_encodings[${c}] (column "${name}")`, `is invalid: ${(e as Error).message}`);
      }
      const sz = (sizes as unknown[])[c];
      if (sz !== null && (typeof sz !== 'number' || !Number.isSafeInteger(sz) || sz < 0)) fail(`${f}.column_sizes[${c}] (column "${name}")`, `must be null or a non-negative integer, got ${describe(sz)}`);
      // As MosaicML's reader: a size of 0 (falsy) means variable-size.
      const size = (sz as number | null) || null;
      const nat = naturalSize(codec);
      let array = false;
      if (size === null) array = codec.kind === 'scalar';
      else if (nat !== null && size !== nat) {
        fail(`${f}.column_sizes[${c}] (column "${name}")`, `is ${size}, but encoding "${enc}" has ${nat}-byte values (wrong column type)`);
      } else if (codec.kind === 'np16' && size % 2 !== 0) fail(`${f}.column_sizes[${c}] (column "${name}")`, `is ${size}, not a whole number of float16 values`);
      return { name, encoding: enc as string, codec, size, array };
    });
    if (!cols) cols = here;
    else {
      for (const [key, get] of [['column_names', (c: Column): unknown => c.name], ['column_encodings', (c: Column): unknown => c.encoding], ['column_sizes', (c: Column): unknown => c.size]] as const) {
        const a = JSON.stringify(cols.map(get)), b = JSON.stringify(here.map(get));
        if (a !== b) fail(`${f}.${key}`, `is ${b}, but shards[0] has ${a}; all shards of a dataset must have the same columns`);
      }
    }
    if (!Number.isSafeInteger(sh.samples) || (sh.samples as number) < 0) fail(`${f}.samples`, `must be a non-negative integer, got ${describe(sh.samples)}`);
    const fileInfo = (v: unknown, key: string): FileInfo => {
      if (!isObject(v)) return fail(`${f}.${key}`, `must be an object {basename, bytes}, got ${describe(v)}`);
      if (!safeBasename(v.basename)) fail(`${f}.${key}.basename`, `must be a file name in the dataset directory, got ${describe(v.basename)}`);
      if (v.bytes !== undefined && v.bytes !== null && (!Number.isSafeInteger(v.bytes) || (v.bytes as number) < 0)) fail(`${f}.${key}.bytes`, `must be a non-negative integer, got ${describe(v.bytes)}`);
      return { basename: v.basename as string, bytes: (v.bytes as number | undefined) ?? null };
    };
    const raw = fileInfo(sh.raw_data, 'raw_data');
    const comp = sh.compression ?? null;
    if (comp !== null && typeof comp !== 'string') fail(`${f}.compression`, `must be null or a string, got ${describe(comp)}`);
    const zip = sh.zip_data === null || sh.zip_data === undefined ? null : fileInfo(sh.zip_data, 'zip_data');
    shards.push({ index: s, samples: sh.samples as number, compression: comp as string | null, raw, zip });
  });
  if (!cols) cols = [];
  return new MdsDataset(dir, indexPath, cols, shards, opts);
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

/**
 * A column of MdsWriter: an encoding string (MosaicML meaning), or {encoding, variable: true} for a scalar
 * encoding stored as a variable-size typed array (LavenderFlow's `uint8` raw-byte columns).
 */
export type MdsColumnSpec = string | { encoding: string; variable?: boolean };

export interface MdsWriterOptions {
  columns: Record<string, MdsColumnSpec>;
  /** Start a new shard before a sample would take the shard past this many bytes (default 1 << 26; null: one shard). */
  sizeLimit?: number | null;
  /** null (default), 'gz', 'gz:<0-9>', 'br' or 'br:<0-11>'. */
  compression?: string | null;
}

function writeAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export class MdsWriter {
  readonly sizeLimit: number | null;
  readonly compression: string | null;
  private readonly cols: Column[];
  private readonly configData: Uint8Array;
  private readonly shardEntries: Record<string, unknown>[] = [];
  private pending: Uint8Array[] = [];
  private pendingSize: number;
  private written = 0;
  private finished = false;

  constructor(readonly dir: string, opts: MdsWriterOptions) {
    const fail = (msg: string): never => {
      throw new Error(`MdsWriter(${dir}): ${msg}`);
    };
    if (!opts || !isObject(opts.columns) || Object.keys(opts.columns).length === 0) fail('columns must be a non-empty {name: encoding} object');
    const { sizeLimit = 1 << 26, compression = null } = opts;
    if (sizeLimit !== null && (!Number.isSafeInteger(sizeLimit) || sizeLimit < 1)) fail(`sizeLimit must be a positive integer or null, got ${describe(sizeLimit)}`);
    if (compression !== null) {
      const [fam, lvl] = String(compression).split(':');
      const z = ZLIB_COMPRESSIONS[fam!];
      if (!z) {
        fail(`compression ${JSON.stringify(compression)} is not supported` + (OTHER_COMPRESSIONS.has(fam!) ? ` (Node 20 has no ${fam})` : '') + "; use null, 'gz' or 'br'");
      }
      if (lvl !== undefined && (!/^\d+$/.test(lvl) || Number(lvl) < z!.levels[0] || Number(lvl) > z!.levels[1])) fail(`compression level in ${JSON.stringify(compression)} must be in [${z!.levels.join(', ')}]`);
    }
    this.sizeLimit = sizeLimit;
    this.compression = compression;
    // MDSWriter stores columns sorted by name.
    this.cols = Object.keys(opts.columns).sort(codePointCompare).map((name) => {
      const spec = opts.columns[name];
      const encoding = typeof spec === 'string' ? spec : isObject(spec) ? spec.encoding : undefined;
      const variable = isObject(spec) && spec.variable === true;
      let codec: Codec;
      try {
        codec = parseEncoding(encoding);
      } catch (e) {
        return fail(`column "${name}": ${(e as Error).message}`);
      }
      if (codec.kind === 'pkl') fail(`column "${name}": the "pkl" encoding is not supported; lavender never pickles or unpickles data (use json)`);
      if (variable && codec.kind !== 'scalar') fail(`column "${name}": variable: true is for scalar encodings (a variable-size typed array); "${encoding}" is already variable-size or fixed by design`);
      return { name, encoding: encoding as string, codec, size: variable ? null : naturalSize(codec), array: variable };
    });
    mkdirSync(dir, { recursive: true });
    const present = readdirSync(dir);
    if (present.length) fail(`the directory is not empty (holds ${present.slice(0, 3).join(', ')}${present.length > 3 ? ', ...' : ''}); write a dataset into a new or empty directory`);
    const config = {
      column_encodings: this.cols.map((c) => c.encoding),
      column_names: this.cols.map((c) => c.name),
      column_sizes: this.cols.map((c) => c.size),
      compression: this.compression,
      format: 'mds',
      hashes: [],
      size_limit: this.sizeLimit,
      version: 2,
    };
    this.configData = utf8enc.encode(pyJsonDumps(config));
    this.pendingSize = this.emptyShardSize;
  }

  /** Column name -> encoding, in stored (sorted) order. */
  get columns(): Record<string, string> {
    return Object.fromEntries(this.cols.map((c) => [c.name, c.encoding]));
  }

  get samplesWritten(): number {
    return this.written;
  }

  get shardsWritten(): number {
    return this.shardEntries.length;
  }

  /** num_samples + first offset + the config JSON (MosaicML's extra_bytes_per_shard). */
  private get emptyShardSize(): number {
    return 8 + this.configData.length;
  }

  /** Encode and buffer a sample; writes the current shard first when the sample would take it past sizeLimit. */
  write(sample: Record<string, unknown>): void {
    if (this.finished) throw new Error(`MdsWriter(${this.dir}): write() after finish()`);
    if (!isObject(sample)) throw new Error(`MdsWriter(${this.dir}): a sample must be an object {column: value}, got ${describe(sample)}`);
    for (const k of Object.keys(sample)) {
      if (!this.cols.some((c) => c.name === k)) throw new Error(`MdsWriter(${this.dir}): sample ${this.written} has key "${k}", which is not a column (columns: ${this.cols.map((c) => c.name).join(', ')})`);
    }
    const heads: number[] = [];
    const bodies: Uint8Array[] = [];
    for (const col of this.cols) {
      if (!(col.name in sample)) throw new Error(`MdsWriter(${this.dir}): sample ${this.written} has no column "${col.name}"`);
      let b: Uint8Array;
      try {
        b = encodeColumn(col, sample[col.name]);
        if (col.size !== null && b.length !== col.size) throw new Error(`encoded to ${b.length} bytes, expected ${col.size}`);
        if (b.length > 0xffffffff) throw new Error(`${b.length} bytes is over the 4 GiB a uint32 length holds`);
      } catch (e) {
        throw new Error(`MdsWriter(${this.dir}): sample ${this.written}, column "${col.name}" (${col.encoding}${col.array ? ', variable-size array' : ''}): ${(e as Error).message}`);
      }
      if (col.size === null) heads.push(b.length);
      bodies.push(b);
    }
    const head = new Uint8Array(4 * heads.length);
    const dv = new DataView(head.buffer);
    heads.forEach((n, k) => dv.setUint32(4 * k, n, true));
    const data = concat([head, ...bodies]);
    const add = data.length + 4; // plus its offset entry
    if (this.emptyShardSize + add > 0xffffffff) throw new Error(`MdsWriter(${this.dir}): sample ${this.written} is ${data.length} bytes; a shard holds at most 4 GiB (uint32 offsets)`);
    if (this.pending.length && ((this.sizeLimit !== null && this.sizeLimit < this.pendingSize + add) || this.pendingSize + add > 0xffffffff)) this.flush();
    this.pending.push(data);
    this.pendingSize += add;
    this.written++;
  }

  private flush(): void {
    const n = this.pending.length;
    const head = new Uint8Array(4 * (n + 2));
    const dv = new DataView(head.buffer);
    dv.setUint32(0, n, true);
    let off = head.length + this.configData.length;
    for (let k = 0; k <= n; k++) {
      dv.setUint32(4 * (k + 1), off, true);
      if (k < n) off += this.pending[k]!.length;
    }
    const raw = concat([head, this.configData, ...this.pending]);
    const basename = `shard.${String(this.shardEntries.length).padStart(5, '0')}.mds`;
    let zip: Record<string, unknown> | null = null;
    if (this.compression) {
      const [fam, lvl] = this.compression.split(':');
      const z = fam === 'gz'
        ? gzipSync(raw, { level: lvl === undefined ? 9 : Number(lvl) })
        : brotliCompressSync(raw, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: lvl === undefined ? 11 : Number(lvl), [zlibConstants.BROTLI_PARAM_SIZE_HINT]: raw.length } });
      const zname = `${basename}.${ZLIB_COMPRESSIONS[fam!]!.ext}`;
      writeAtomic(join(this.dir, zname), z);
      zip = { basename: zname, bytes: z.length, hashes: {} };
    } else {
      writeAtomic(join(this.dir, basename), raw);
    }
    this.shardEntries.push({
      column_encodings: this.cols.map((c) => c.encoding),
      column_names: this.cols.map((c) => c.name),
      column_sizes: this.cols.map((c) => c.size),
      compression: this.compression,
      format: 'mds',
      hashes: [],
      raw_data: { basename, bytes: raw.length, hashes: {} },
      samples: n,
      size_limit: this.sizeLimit,
      version: 2,
      zip_data: zip,
    });
    this.pending = [];
    this.pendingSize = this.emptyShardSize;
  }

  /** Write the last shard and index.json (atomically: a temporary file renamed into place). */
  finish(): void {
    if (this.finished) throw new Error(`MdsWriter(${this.dir}): finish() called twice`);
    if (this.pending.length) this.flush();
    writeAtomic(join(this.dir, 'index.json'), pyJsonDumps({ shards: this.shardEntries, version: 2 }));
    this.finished = true;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loader

/** What MdsLoader reads from: an MdsDataset, or anything with the same length/get. */
export interface MdsSampleSource {
  readonly length: number;
  get(i: number, columns?: readonly string[]): Record<string, unknown>;
}

export interface MdsLoaderOptions {
  batchSize: number;
  /** Seed of the shuffle (default 0). */
  seed?: number;
  /** This process's rank in [0, worldSize) (default 0). */
  rank?: number;
  /** Number of ranks (default 1). */
  worldSize?: number;
  /** Reshuffle every epoch (default true); false visits samples in index order. */
  shuffle?: boolean;
  /** Drop the end of each epoch that does not fill a whole batch on every rank (default true). */
  dropLast?: boolean;
  /** Decode only these columns (default all). */
  columns?: readonly string[];
}

export interface MdsLoaderState {
  seed: number;
  epoch: number;
  /** Samples of this epoch's order already taken, by all ranks together (the same on every rank). */
  position: number;
}

/**
 * Batches of decoded samples, in a per-epoch order that is the same on every rank, partitioned across ranks.
 *
 * Epoch e's order is epochPermutation(length, seed, e) from loader.ts (a Fisher-Yates shuffle on the Philox stream,
 * the DataLoader's order for the same seed), or 0..length-1 with shuffle off. Rank r takes every worldSize-th
 * entry of that order starting at r: a step of the loader consumes the next batchSize * worldSize entries, and
 * rank r's batch is entries position + r, position + r + worldSize, ..., position + r + (batchSize-1) * worldSize.
 * Batches never straddle epochs.
 *   dropLast (default): an epoch visits the first worldSize * batchSize * floor(floor(length / worldSize) / batchSize)
 *     entries, so every rank gets the same number of full batches; the tail of the order is skipped that epoch
 *     (a different tail each epoch when shuffled).
 *   dropLast false: every entry is visited once per epoch; the last step of an epoch gives shorter batches (and
 *     may give an empty one on the higher ranks), but every rank makes the same number of steps per epoch,
 *     ceil(length / (batchSize * worldSize)), so ranks stay in lockstep.
 * Either way the ranks' samples in an epoch are disjoint, and with dropLast false their union is every sample.
 * The state {seed, epoch, position} is the same on all ranks, so one saved copy resumes every rank exactly (and
 * a resume with another worldSize continues the same epoch order from the same point).
 */
export class MdsLoader {
  readonly batchSize: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly columns?: readonly string[];
  private seed: number;
  private epoch = 0;
  private position = 0;
  private order: Uint32Array;

  constructor(readonly dataset: MdsSampleSource, opts: MdsLoaderOptions) {
    const { batchSize, seed = 0, rank = 0, worldSize = 1, shuffle = true, dropLast = true, columns } = opts ?? ({} as MdsLoaderOptions);
    const fail = (msg: string): never => {
      throw new Error(`MdsLoader: ${msg}`);
    };
    if (!dataset || !Number.isSafeInteger(dataset.length) || typeof dataset.get !== 'function') fail('dataset must be an MdsDataset (or {length, get(i)})');
    if (!Number.isInteger(batchSize) || batchSize < 1) fail(`batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isSafeInteger(seed) || seed < 0) fail(`seed must be a non-negative safe integer, got ${seed}`);
    if (!Number.isInteger(worldSize) || worldSize < 1) fail(`worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) fail(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
    if (dataset.length > 0xffffffff) fail(`datasets of more than 2^32 - 1 samples are not supported (got ${dataset.length})`);
    this.batchSize = batchSize;
    this.rank = rank;
    this.worldSize = worldSize;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.columns = columns;
    this.seed = seed;
    if (this.epochEnd === 0) {
      fail(`the dataset's ${dataset.length} samples give no batches per epoch with batchSize ${batchSize} and worldSize ${worldSize}` + (dropLast ? ' and dropLast (each rank needs a full batch)' : ''));
    }
    this.order = this.makeOrder();
  }

  /** Entries of each epoch's order that are visited (the rest are dropped when dropLast). */
  get epochEnd(): number {
    const n = this.dataset.length, W = this.worldSize, B = this.batchSize;
    return this.dropLast ? W * B * Math.floor(Math.floor(n / W) / B) : n;
  }

  /** Steps (next() calls) per epoch, the same on every rank. */
  get batchesPerEpoch(): number {
    return Math.ceil(this.epochEnd / (this.worldSize * this.batchSize));
  }

  /** The epoch the next batch comes from (0-based). */
  get currentEpoch(): number {
    return this.epoch;
  }

  private makeOrder(): Uint32Array {
    if (this.shuffle) return epochPermutation(this.dataset.length, this.seed, this.epoch);
    const o = new Uint32Array(this.dataset.length);
    for (let i = 0; i < o.length; i++) o[i] = i;
    return o;
  }

  getState(): MdsLoaderState {
    return { seed: this.seed, epoch: this.epoch, position: this.position };
  }

  setState(s: MdsLoaderState): void {
    if (!s || typeof s !== 'object') throw new Error('MdsLoader.setState: expected {seed, epoch, position}');
    if (!Number.isSafeInteger(s.seed) || s.seed < 0) throw new Error(`MdsLoader.setState: seed must be a non-negative safe integer, got ${s.seed}`);
    if (!Number.isSafeInteger(s.epoch) || s.epoch < 0) throw new Error(`MdsLoader.setState: epoch must be a non-negative integer, got ${s.epoch}`);
    if (!Number.isInteger(s.position) || s.position < 0 || s.position >= this.epochEnd) {
      throw new Error(`MdsLoader.setState: position must be an integer in [0, ${this.epochEnd}), got ${s.position}`);
    }
    const reorder = s.seed !== this.seed || s.epoch !== this.epoch;
    this.seed = s.seed;
    this.epoch = s.epoch;
    this.position = s.position;
    if (reorder) this.order = this.makeOrder();
  }

  /** Dataset indices of this rank's next batch (advances the state). */
  nextIndices(): number[] {
    const end = this.epochEnd, W = this.worldSize;
    const idx: number[] = [];
    for (let k = 0; k < this.batchSize; k++) {
      const p = this.position + this.rank + k * W;
      if (p >= end) break;
      idx.push(this.order[p]!);
    }
    this.position = Math.min(this.position + this.batchSize * W, end);
    if (this.position >= end) {
      this.position = 0;
      this.epoch++;
      this.order = this.makeOrder();
    }
    return idx;
  }

  /** This rank's next batch of decoded samples. */
  next(): Record<string, unknown>[] {
    return this.nextIndices().map((i) => this.dataset.get(i, this.columns));
  }
}

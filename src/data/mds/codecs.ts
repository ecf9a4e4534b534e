// MDS column encodings: parse an encoding string, encode a value to its bytes and decode it back
// (MosaicML's mds_encode / mds_decode, plus LavenderFlow's np16 and variable-size scalar arrays).
import { f16ToF32, f64ToF16, toHalfBits as float32ToFloat16Bits } from '../../tensor/dtype.js';
import { DECIMAL, DTYPES, DTYPE_OF_CODE, MdsDtype, MdsTypedArray, decodeUtf8, describe, encodeUtf8, isDtype, parsePyFloat, parsePyInt, parsePyJson, pyFloatRepr, toIntResult, typedArrayDtype, typedBytes, typedFromBytes, utf8enc } from './format.js';

// ---------------------------------------------------------------------------------------------------------------
// Codecs

export type Codec =
  | { kind: 'bytes' | 'str' | 'int' | 'str_int' | 'str_float' | 'str_decimal' | 'json' | 'pkl' | 'pil' | 'np16' }
  | { kind: 'image'; format: 'jpeg' | 'png' }
  | { kind: 'scalar'; dtype: MdsDtype }
  | { kind: 'ndarray'; dtype: MdsDtype | null; shape: number[] | null };

export const SIMPLE = ['bytes', 'str', 'int', 'str_int', 'str_float', 'str_decimal', 'json', 'pkl', 'pil', 'np16'] as const;

/** Encodings this module knows (MosaicML's plus LavenderFlow's np16); jpeg and ndarray take arguments after ':'. */
export const MDS_ENCODINGS: readonly string[] = [...SIMPLE, 'jpeg', 'png', 'ndarray', ...Object.keys(DTYPES)].sort();

/** Parse an encoding string; throws with the reason. */
export function parseEncoding(enc: unknown): Codec {
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
export function naturalSize(c: Codec): number | null {
  if (c.kind === 'int') return 8;
  if (c.kind === 'scalar') return DTYPES[c.dtype].size;
  if (c.kind === 'ndarray' && c.dtype && c.shape) return c.shape.reduce((a, b) => a * b, 1) * DTYPES[c.dtype].size;
  return null;
}

/** A resolved column: `array` marks a scalar encoding stored variable-size, read as a typed array. */
export interface Column {
  name: string;
  encoding: string;
  codec: Codec;
  size: number | null;
  array: boolean;
}

export function checkSize(b: Uint8Array, n: number, what: string): void {
  if (b.length !== n) throw new Error(`has ${b.length} bytes, expected ${n} for ${what}`);
}

/** The MosaicML ndarray encoding: [dtype: 1 if not static] [ndim << 2 | shape dtype: 1, shape if not static] values. */
export function decodeNdarray(c: { dtype: MdsDtype | null; shape: number[] | null }, b: Uint8Array): MdsNdArray {
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

export function decodeScalar(dtype: MdsDtype, b: Uint8Array): number | bigint {
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

export function decodeColumn(col: Pick<Column, 'codec' | 'array' | 'name'>, b: Uint8Array): unknown {
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

export function int64Bytes(v: unknown, dtype: 'int64' | 'uint64'): Uint8Array {
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

export const INT_RANGES: Partial<Record<MdsDtype, [number, number]>> = {
  uint8: [0, 0xff], int8: [-0x80, 0x7f], uint16: [0, 0xffff], int16: [-0x8000, 0x7fff], uint32: [0, 0xffffffff], int32: [-0x80000000, 0x7fffffff],
};

export function encodeScalar(dtype: MdsDtype, v: unknown): Uint8Array {
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
export function encodeArray(dtype: MdsDtype, v: unknown): Uint8Array {
  const got = typedArrayDtype(v);
  if (dtype === 'float16' && (got === 'float32' || got === 'float64')) return typedBytes(float32ToFloat16Bits(v as Float32Array));
  const want = dtype === 'float16' ? 'uint16' : dtype;
  if (got !== want) {
    throw new Error(`expected a ${DTYPES[dtype].ctor.name}${dtype === 'float16' ? ' of float16 bits (or a Float32Array)' : ''}, got ${describe(v)}`);
  }
  return Uint8Array.prototype.slice.call(typedBytes(v as ArrayBufferView));
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

export function encodeNdarray(c: { dtype: MdsDtype | null; shape: number[] | null }, v: unknown): Uint8Array {
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

export const JPEG_MAGIC = [0xff, 0xd8, 0xff];
export const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function encodeColumn(col: Pick<Column, 'codec' | 'array' | 'name'>, v: unknown): Uint8Array {
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

export function concat(parts: Uint8Array[]): Uint8Array {
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


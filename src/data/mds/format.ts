// MDS format basics: the column dtypes and their typed arrays, Python-compatible text (json.dumps with
// sorted keys, float repr, Python's number syntax) so index.json matches MosaicML's byte for byte, UTF-8
// helpers, and the compressions. float16 conversion is tensor/dtype.ts's.


// ---------------------------------------------------------------------------------------------------------------
// dtypes, float16

export type MdsDtype = 'uint8' | 'int8' | 'uint16' | 'int16' | 'float16' | 'uint32' | 'int32' | 'float32' | 'uint64' | 'int64' | 'float64';

export type MdsTypedArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

export type TypedArrayCtor = { new (buffer: ArrayBuffer, byteOffset: number, length: number): MdsTypedArray; BYTES_PER_ELEMENT: number };

/** Per dtype: byte size, MosaicML ndarray dtype code, typed array (float16 is held as Uint16Array bits). */
export const DTYPES: Record<MdsDtype, { size: number; code: number; ctor: TypedArrayCtor }> = {
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
export const DTYPE_OF_CODE = new Map<number, MdsDtype>(Object.entries(DTYPES).map(([k, v]) => [v.code, k as MdsDtype]));
export const isDtype = (s: unknown): s is MdsDtype => typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** float16 <-> numbers for np16 columns and float16 ndarrays: tensor/dtype.ts's conversions, under the names this module has always exported. */
export { halfBitsToFloat32 as float16BitsToFloat32, toHalfBits as float32ToFloat16Bits, f64ToF16 } from '../../tensor/dtype.js';

export function typedArrayDtype(a: unknown): MdsDtype | null {
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

export function typedBytes(a: ArrayBufferView): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error('MDS: typed arrays need a little-endian host');
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A fresh, aligned typed array of `dtype` over a copy of `bytes` (length a multiple of the item size). */
export function typedFromBytes(dtype: MdsDtype, bytes: Uint8Array): MdsTypedArray {
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
export function codePointCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function pyJsonString(s: string): string {
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
export function pyJsonDumps(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloatRepr(v);
  if (typeof v === 'string') return pyJsonString(v);
  if (Array.isArray(v)) return '[' + v.map(pyJsonDumps).join(', ') + ']';
  const o = v as Record<string, unknown>;
  return '{' + Object.keys(o).sort(codePointCompare).map((k) => `${pyJsonString(k)}: ${pyJsonDumps(o[k])}`).join(', ') + '}';
}

export const PY_MARK = '\u0000lavender-mds\u0000';

/** JSON.parse that also accepts the bare NaN, Infinity and -Infinity that Python's json.dumps writes. */
export function parsePyJson(text: string): unknown {
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

export const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
export const utf8enc = new TextEncoder();
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function decodeUtf8(b: Uint8Array): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new Error('bytes are not valid UTF-8');
  }
}

export function encodeUtf8(s: unknown, what = 'a string'): Uint8Array {
  if (typeof s !== 'string') throw new Error(`expected ${what}, got ${describe(s)}`);
  if (LONE_SURROGATE.test(s)) throw new Error('string has a lone surrogate, which UTF-8 cannot encode');
  return utf8enc.encode(s);
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  return typeof v;
}

export const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
export const toIntResult = (b: bigint): number | bigint => (b <= SAFE && b >= -SAFE ? Number(b) : b);

export function parsePyInt(text: string): bigint {
  const t = text.trim();
  if (!/^[+-]?\d+(?:_\d+)*$/.test(t)) throw new Error(`${JSON.stringify(text)} is not an integer`);
  return BigInt(t.replace(/_/g, ''));
}

export function parsePyFloat(text: string): number {
  const t = text.trim().toLowerCase();
  const special = /^([+-]?)(inf|infinity|nan)$/.exec(t);
  if (special) return special[2] === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
  const d = '\\d+(?:_\\d+)*';
  if (!new RegExp(`^[+-]?(?:${d}(?:\\.(?:${d})?)?|\\.${d})(?:e[+-]?${d})?$`).test(t)) throw new Error(`${JSON.stringify(text)} is not a float`);
  return Number(t.replace(/_/g, ''));
}

export const DECIMAL = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?|inf(?:inity)?|s?nan\d*)$/i;


/** The compressions zlib provides (read and written), and those Node lacks (named in errors). */
export const ZLIB_COMPRESSIONS: Record<string, { ext: string; levels: [number, number] }> = { gz: { ext: 'gz', levels: [0, 9] }, br: { ext: 'br', levels: [0, 11] } };
export const OTHER_COMPRESSIONS = new Set(['zstd', 'bz2', 'snappy']);

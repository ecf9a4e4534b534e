// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {..}}
// padded with spaces, then the raw little-endian tensor bytes. Offsets are relative to the start of the
// data section; tensors tile it exactly (no gaps, no overlap, nothing after the last one).
//
// Loading validates every field and names the file and the tensor at fault. Saving writes to a temporary
// file, fsyncs it and renames it over the target, so an interrupted save never leaves a truncated file.
import { closeSync, fsyncSync, openSync, readFileSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import '../backends/index.js';
import { getBackend, getDefaultDevice } from '../backends/registry.js';
import { bytesPerElement, type DType, type TypedArray } from '../tensor/dtype.js';
import { numel, shapeStr } from '../tensor/shape.js';
import { emptyTensor, type Tensor } from '../tensor/tensor.js';

/** safetensors dtype code <-> lavender dtype. */
const CODE_OF: Record<DType, string> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int32: 'I32', int64: 'I64', bool: 'BOOL',
};
const DTYPE_OF: Record<string, DType> = Object.fromEntries(Object.entries(CODE_OF).map(([d, c]) => [c, d as DType]));
/** Position of each dtype in the safetensors crate's Dtype enum (it writes tensors in descending order). */
const WRITE_RANK: Record<DType, number> = { bool: 0, float16: 11, bfloat16: 12, int32: 13, float32: 15, float64: 17, int64: 18 };
/** Codes of the format that lavender has no dtype for (named in the error). */
const UNSUPPORTED_CODES = ['I8', 'U8', 'I16', 'U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64'];

const MAX_HEADER = 100 * 1024 * 1024; // the reference implementation's limit
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI_LIMIT = 2 ** 21; // high 32 bits of 2^53

export interface SafetensorsResult {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

// --------------------------------------------------------------------------------------------------
// saving

/** The tensor's elements in logical (row-major) order as raw storage values (float16/bfloat16 as bits). */
function logicalValues(name: string, t: Tensor, where: string): TypedArray {
  t.assertAlive(`saveSafetensors: ${where}: tensor '${name}'`);
  const raw = t.backend.read(t.storage.buf);
  const n = t.size;
  if (t.isContiguous()) return raw.subarray(t.offset, t.offset + n) as TypedArray;
  const out = new (raw.constructor as new (n: number) => TypedArray)(n);
  const shape = t.shape, strides = t.strides, rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = t.offset;
  for (let i = 0; i < n; i++) {
    out[i] = raw[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) {
        src += strides[d]!;
        break;
      }
      src -= strides[d]! * (shape[d]! - 1);
      idx[d] = 0;
    }
  }
  return out;
}

/** Little-endian bytes of a tensor in safetensors layout. */
function tensorBytes(name: string, t: Tensor, where: string): Uint8Array {
  const values = logicalValues(name, t, where);
  const n = values.length;
  const bytes = new Uint8Array(n * bytesPerElement(t.dtype));
  const dv = new DataView(bytes.buffer);
  switch (t.dtype) {
    case 'int64':
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        if (!Number.isInteger(v) || Math.abs(v) > 2 ** 53) throw new Error(`saveSafetensors: ${where}: tensor '${name}': int64 element ${i} is ${v}, not an integer within +-2^53`);
        dv.setBigInt64(i * 8, BigInt(v), true);
      }
      break;
    case 'bool':
      for (let i = 0; i < n; i++) bytes[i] = values[i] ? 1 : 0;
      break;
    default:
      if (LITTLE_ENDIAN) {
        bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      } else {
        const size = bytesPerElement(t.dtype);
        for (let i = 0; i < n; i++) {
          const v = values[i]!;
          if (t.dtype === 'float32') dv.setFloat32(i * 4, v, true);
          else if (t.dtype === 'float64') dv.setFloat64(i * 8, v, true);
          else if (t.dtype === 'int32') dv.setInt32(i * 4, v, true);
          else dv.setUint16(i * size, v, true);
        }
      }
  }
  return bytes;
}

/** Serialise tensors (and optional string metadata) to safetensors bytes, as a list of chunks. */
function serialise(tensors: Record<string, Tensor>, metadata: Record<string, string> | undefined, where: string): Uint8Array[] {
  if (tensors === null || typeof tensors !== 'object') throw new Error(`saveSafetensors: ${where}: tensors must be an object of name -> Tensor`);
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name];
    if (name === '__metadata__') throw new Error(`saveSafetensors: ${where}: '__metadata__' is reserved and cannot name a tensor`);
    if (name.length === 0) throw new Error(`saveSafetensors: ${where}: a tensor name must not be empty`);
    if (!t || typeof t !== 'object' || !('storage' in t) || !('dtype' in t)) throw new Error(`saveSafetensors: ${where}: tensor '${name}' is not a Tensor`);
    if (!(t.dtype in CODE_OF)) throw new Error(`saveSafetensors: ${where}: tensor '${name}' has dtype ${t.dtype}, which safetensors cannot hold`);
  }
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new Error(`saveSafetensors: ${where}: metadata must be an object of string -> string`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`saveSafetensors: ${where}: metadata '${k}' must be a string, got ${typeof v}`);
    }
  }
  // The reference writer's order: descending dtype (its enum order, which is also descending alignment, so
  // every tensor stays aligned to its element size), then name by bytes.
  names.sort((a, b) => WRITE_RANK[tensors[b]!.dtype] - WRITE_RANK[tensors[a]!.dtype] || Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata)) define(meta, k, v);
    header.__metadata__ = meta;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const bytes = tensorBytes(name, t, where);
    define(header, name, { dtype: CODE_OF[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes.length] });
    offset += bytes.length;
    chunks.push(bytes);
  }
  let json = JSON.stringify(header);
  const jsonBytes = new TextEncoder().encode(json);
  const padded = Math.ceil(jsonBytes.length / 8) * 8;
  json += ' '.repeat(padded - jsonBytes.length);
  const head = new Uint8Array(8 + padded);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(new TextEncoder().encode(json), 8);
  return [head, ...chunks];
}

/** safetensors bytes of the given tensors, in memory. */
export function serializeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  return new Uint8Array(Buffer.concat(serialise(tensors, metadata, '<buffer>')));
}

/** Write `bytes` chunks to `path` atomically: a temporary file in the same directory, fsync, rename. */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const c of chunks) {
      let done = 0;
      while (done < c.length) done += writeSync(fd, c, done, c.length - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try { closeSync(fd); } catch { /* already failing */ }
    }
    try { unlinkSync(tmp); } catch { /* may not exist */ }
    throw e;
  }
  // Make the rename itself durable; not every platform lets a directory be fsynced.
  try {
    const dfd = openSync(dirname(path), 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* best effort */ }
}

/** Save tensors to a safetensors file (atomically). Non-contiguous tensors are written in logical order. */
export function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, serialise(tensors, metadata, path));
}

// --------------------------------------------------------------------------------------------------
// loading

/** obj[key] = value, also for keys like '__proto__' that plain assignment would treat specially. */
function define<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function describeValue(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

interface Entry {
  name: string;
  dtype: DType;
  code: string;
  shape: number[];
  begin: number;
  end: number;
}

/** Read element values out of the data section (little-endian, any alignment). */
function decodeValues(bytes: Uint8Array, e: Entry, fail: (msg: string) => never): TypedArray {
  const n = numel(e.shape);
  const start = bytes.byteOffset + e.begin;
  const dv = new DataView(bytes.buffer, start, e.end - e.begin);
  switch (e.dtype) {
    case 'float32': {
      if (LITTLE_ENDIAN) return new Float32Array(bytes.buffer.slice(start, start + n * 4));
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case 'float64': {
      if (LITTLE_ENDIAN) return new Float64Array(bytes.buffer.slice(start, start + n * 8));
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    case 'int32': {
      if (LITTLE_ENDIAN) return new Int32Array(bytes.buffer.slice(start, start + n * 4));
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    }
    case 'float16': case 'bfloat16': {
      if (LITTLE_ENDIAN) return new Uint16Array(bytes.buffer.slice(start, start + n * 2));
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getUint16(i * 2, true);
      return out;
    }
    case 'int64': {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const lo = dv.getUint32(i * 8, true), hi = dv.getInt32(i * 8 + 4, true);
        // |v| <= 2^53 is exact in a double; decide on the integer parts, since hi * 2^32 + lo may round
        if (hi > HI_LIMIT || (hi === HI_LIMIT && lo > 0) || hi < -HI_LIMIT) {
          fail(`element ${i} is ${dv.getBigInt64(i * 8, true)}, beyond the 2^53 that lavender's int64 (held as float64) represents exactly`);
        }
        out[i] = hi * 2 ** 32 + lo;
      }
      return out;
    }
    case 'bool': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const b = bytes[e.begin + i]!;
        if (b > 1) fail(`element ${i} is byte ${b}, not a bool (0 or 1)`);
        out[i] = b;
      }
      return out;
    }
  }
}

/** Parse safetensors bytes; `source` names the file in error messages. */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>', opts: { device?: string } = {}): SafetensorsResult {
  const err = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (!(bytes instanceof Uint8Array)) err('expected the file contents as a Uint8Array');
  if (bytes.length < 8) err(`file is ${bytes.length} bytes, shorter than the 8-byte header length of a safetensors file`);
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(bytes.length - 8)) err(`header length ${headerLen} runs past the end of the file (${bytes.length} bytes, ${bytes.length - 8} after the length field); the file is truncated or not safetensors`);
  if (headerLen > BigInt(MAX_HEADER)) err(`header length ${headerLen} exceeds the ${MAX_HEADER}-byte limit`);
  const hlen = Number(headerLen);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hlen));
  } catch {
    return err(`header (${hlen} bytes) is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return err(`header (${hlen} bytes) is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(header)) return err(`header must be a JSON object, got ${Array.isArray(header) ? 'an array' : describeValue(header)}`);

  const metadata: Record<string, string> = {};
  const dataStart = 8 + hlen;
  const dataLen = bytes.length - dataStart;
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(raw)) err(`'__metadata__' must be an object of string -> string, got ${describeValue(raw)}`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') err(`'__metadata__' field '${k}' must be a string, got ${describeValue(v)}`);
        define(metadata, k, v as string);
      }
      continue;
    }
    const bad = (msg: string): never => err(`tensor '${name}': ${msg}`);
    if (!isPlainObject(raw)) bad(`entry must be an object with dtype, shape and data_offsets, got ${describeValue(raw)}`);
    const info = raw as Record<string, unknown>;
    if (!('dtype' in info)) bad(`missing field 'dtype'`);
    const code = info.dtype;
    if (typeof code !== 'string') return bad(`dtype must be a string, got ${describeValue(code)}`);
    const dtype = DTYPE_OF[code];
    if (!dtype) {
      const known = Object.keys(DTYPE_OF).join(', ');
      return bad(UNSUPPORTED_CODES.includes(code) ? `dtype ${code} is not supported by lavender (supported: ${known})` : `unknown dtype '${code}' (supported: ${known})`);
    }
    if (!('shape' in info)) bad(`missing field 'shape'`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
      return bad(`shape must be an array of non-negative integers, got ${describeValue(shape)}`);
    }
    if (!('data_offsets' in info)) bad(`missing field 'data_offsets'`);
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      return bad(`data_offsets must be [begin, end] of two non-negative integers, got ${describeValue(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) bad(`data_offsets [${begin}, ${end}] are out of order (end before begin)`);
    if (end > dataLen) bad(`data_offsets [${begin}, ${end}] run past the end of the data section (${dataLen} bytes); the file is truncated`);
    const n = numel(shape);
    const need = n * bytesPerElement(dtype);
    if (!Number.isSafeInteger(need)) bad(`shape ${shapeStr(shape)} is too large`);
    if (end - begin !== need) bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${shapeStr(shape)} of ${code} needs ${need}`);
    entries.push({ name, dtype, code, shape: shape as number[], begin, end });
  }

  // The tensors must tile the data section: sorted by offset, each starts where the previous ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: Entry | undefined;
  for (const e of sorted) {
    if (e.begin < pos) {
      err(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev!.name}' at [${prev!.begin}, ${prev!.end}]`);
    }
    if (e.begin > pos) {
      err(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] leave a gap of ${e.begin - pos} unclaimed bytes at [${pos}, ${e.begin}]${prev ? ` after tensor '${prev.name}'` : ''}`);
    }
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLen) {
    err(`the data section is ${dataLen} bytes but the tensors end at byte ${pos}${prev ? ` (last: tensor '${prev.name}')` : ''}; ${dataLen - pos} trailing bytes are unclaimed`);
  }

  const backend = getBackend(opts.device ?? getDefaultDevice());
  const data = bytes.subarray(dataStart);
  const tensors: Record<string, Tensor> = {};
  const made: Tensor[] = [];
  try {
    for (const e of entries) {
      const values = decodeValues(data, e, (msg) => err(`tensor '${e.name}': ${e.code} ${msg}`));
      const t = emptyTensor(backend, e.shape, e.dtype);
      made.push(t);
      if (values.length) backend.write(t.storage.buf, values);
      t.name = e.name;
      define(tensors, e.name, t);
    }
  } catch (ex) {
    for (const t of made) t.dispose();
    throw ex;
  }
  return { tensors, metadata };
}

/** The metadata of a safetensors file, read from its header only. */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${path}: cannot open${code === 'ENOENT' ? ': no such file' : ` (${code ?? (e as Error).message})`}`);
  }
  try {
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) throw new Error(`${path}: too short for a safetensors header`);
    const n = Number(head.readBigUInt64LE(0));
    if (!(n > 0 && n < 100 * 2 ** 20)) throw new Error(`${path}: implausible safetensors header length ${n}`);
    const buf = Buffer.alloc(n);
    if (readSync(fd, buf, 0, n, 8) !== n) throw new Error(`${path}: truncated safetensors header`);
    let header: { __metadata__?: Record<string, string> };
    try {
      header = JSON.parse(buf.toString('utf8'));
    } catch {
      throw new Error(`${path}: the safetensors header is not valid JSON`);
    }
    return header.__metadata__ ?? {};
  } finally {
    closeSync(fd);
  }
}

/** Load every tensor (and the string metadata) of a safetensors file. */
export function loadSafetensors(path: string, opts: { device?: string } = {}): SafetensorsResult {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${path}: cannot read safetensors file${code === 'ENOENT' ? ': no such file' : `: ${(e as Error).message}`}`);
  }
  return parseSafetensors(bytes, path, opts);
}

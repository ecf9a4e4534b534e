// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {..}}
// padded with spaces, then the raw little-endian tensor bytes. Offsets are relative to the start of the
// data section; tensors tile it exactly (no gaps, no overlap, nothing after the last one).
//
// Loading validates every field and names the file and the tensor at fault; it reads each tensor at its
// offset (files of any size; `only` skips tensors unread). Saving streams one tensor at a time to a
// temporary file, fsyncs it and renames it over the target, so an interrupted save never leaves a truncated file.
import '../backends/index.js';
import { getBackend, getDefaultDevice } from '../backends/registry.js';
import { bytesPerElement, type DType } from '../tensor/dtype.js';
import { numel, shapeStr } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { fileSource, memorySource, withSource, writeFileStreamed, type ByteSource } from './byte-source.js';
import { encodeRaw, logicalValues, readTensor } from './tensor-bytes.js';

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

export interface SafetensorsResult {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

// --------------------------------------------------------------------------------------------------
// saving

interface Planned {
  header: Uint8Array;
  /** Tensors in file order. */
  order: Array<[string, Tensor]>;
}

/** Validate the tensors and lay out the file: the header bytes and the tensors in the order they follow it. */
function plan(tensors: Record<string, Tensor>, metadata: Record<string, string> | undefined, where: string): Planned {
  if (tensors === null || typeof tensors !== 'object') throw new Error(`saveSafetensors: ${where}: tensors must be an object of name -> Tensor`);
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name];
    if (name === '__metadata__') throw new Error(`saveSafetensors: ${where}: '__metadata__' is reserved and cannot name a tensor`);
    if (name.length === 0) throw new Error(`saveSafetensors: ${where}: a tensor name must not be empty`);
    if (!t || typeof t !== 'object' || !('storage' in t) || !('dtype' in t)) throw new Error(`saveSafetensors: ${where}: tensor '${name}' is not a Tensor`);
    if (!(t.dtype in CODE_OF)) throw new Error(`saveSafetensors: ${where}: tensor '${name}' has dtype ${t.dtype}, which safetensors cannot hold`);
    t.assertAlive(`saveSafetensors: ${where}: tensor '${name}'`);
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
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const len = t.size * bytesPerElement(t.dtype);
    define(header, name, { dtype: CODE_OF[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + len] });
    offset += len;
  }
  let json = JSON.stringify(header);
  const jsonBytes = new TextEncoder().encode(json);
  const padded = Math.ceil(jsonBytes.length / 8) * 8;
  json += ' '.repeat(padded - jsonBytes.length);
  const head = new Uint8Array(8 + padded);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(new TextEncoder().encode(json), 8);
  return { header: head, order: names.map((n) => [n, tensors[n]!]) };
}

/** Write the planned file to `sink`, one tensor's bytes at a time. */
function emit(p: Planned, sink: (chunk: Uint8Array) => void, where: string): void {
  sink(p.header);
  for (const [name, t] of p.order) {
    const values = logicalValues(t, `saveSafetensors: ${where}: tensor '${name}'`);
    sink(encodeRaw(values, t.dtype, (i, problem) => {
      throw new Error(`saveSafetensors: ${where}: tensor '${name}': ${t.dtype} element ${i} ${problem}`);
    }));
  }
}

/** safetensors bytes of the given tensors, in memory. */
export function serializeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const chunks: Uint8Array[] = [];
  emit(plan(tensors, metadata, '<buffer>'), (c) => chunks.push(c.slice()), '<buffer>');
  return new Uint8Array(Buffer.concat(chunks));
}

export { writeFileAtomic } from './byte-source.js';

/**
 * Save tensors to a safetensors file. Streamed: one tensor's bytes are in memory at a time, so the file
 * may be far larger than a Node buffer. Atomic: written to a temporary file, fsynced and renamed over the
 * target, so an interrupted save never leaves a truncated file. Non-contiguous tensors are written in
 * logical order.
 */
export function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  const p = plan(tensors, metadata, path);
  writeFileStreamed(path, (sink) => emit(p, (c) => sink.write(c), path));
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

export interface Entry {
  name: string;
  dtype: DType;
  code: string;
  shape: number[];
  begin: number;
  end: number;
}

/** The validated header of a safetensors source: every tensor's name, dtype, shape and data offsets. */
export interface SafetensorsHeader {
  entries: Entry[];
  metadata: Record<string, string>;
  /** Byte offset of the data section in the source. */
  dataStart: number;
}

/** Read and validate the header (the tensors' bytes are not read). */
export function readSafetensorsHeader(src: ByteSource): SafetensorsHeader {
  const err = (msg: string): never => {
    throw new Error(`${src.name}: ${msg}`);
  };
  const size = src.size;
  if (size < 8) err(`file is ${size} bytes, shorter than the 8-byte header length of a safetensors file`);
  const lenBytes = src.read(0, 8);
  const headerLen = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(size - 8)) err(`header length ${headerLen} runs past the end of the file (${size} bytes, ${size - 8} after the length field); the file is truncated or not safetensors`);
  if (headerLen > BigInt(MAX_HEADER)) err(`header length ${headerLen} exceeds the ${MAX_HEADER}-byte limit`);
  const hlen = Number(headerLen);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(src.read(8, hlen));
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
  const dataLen = size - dataStart;
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

  return { entries, metadata, dataStart };
}

export interface SafetensorsLoadOptions {
  /** Backend the tensors are created on (default: the default device; 'meta' reads no data). */
  device?: string;
  /** Load only the tensors this accepts (the others' bytes are never read). */
  only?: (name: string) => boolean;
}

/** Load tensors from a source, each read at its offset, one chunk at a time. */
export function readSafetensors(src: ByteSource, opts: SafetensorsLoadOptions = {}): SafetensorsResult {
  const { entries, metadata, dataStart } = readSafetensorsHeader(src);
  const backend = getBackend(opts.device ?? getDefaultDevice());
  const tensors: Record<string, Tensor> = {};
  const made: Tensor[] = [];
  try {
    for (const e of entries) {
      if (opts.only && !opts.only(e.name)) continue;
      const t = readTensor({
        source: src, at: dataStart + e.begin, dtype: e.dtype, shape: e.shape, littleEndian: true, backend,
        bad: (i, problem) => {
          throw new Error(`${src.name}: tensor '${e.name}': ${e.code} element ${i} ${problem}`);
        },
      });
      made.push(t);
      t.name = e.name;
      define(tensors, e.name, t);
    }
  } catch (ex) {
    for (const t of made) t.dispose();
    throw ex;
  }
  return { tensors, metadata };
}

/** The metadata of a safetensors file, read from its header only (no tensor is read). */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  return inspectSafetensors(path).metadata;
}

/** Parse safetensors bytes held in memory; `source` names them in error messages. */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>', opts: SafetensorsLoadOptions = {}): SafetensorsResult {
  if (!(bytes instanceof Uint8Array)) throw new Error(`${source}: expected the file contents as a Uint8Array`);
  return readSafetensors(memorySource(bytes, source), opts);
}

/**
 * Load the tensors (and the string metadata) of a safetensors file. The file is read at each tensor's
 * offset, never whole: any size works, memory holds the tensors plus one read chunk.
 */
export function loadSafetensors(path: string, opts: SafetensorsLoadOptions = {}): SafetensorsResult {
  return withSource(fileSource(path, 'safetensors file'), (src) => readSafetensors(src, opts));
}

/** The header of a safetensors file (names, dtypes, shapes, metadata) without reading any tensor. */
export function inspectSafetensors(path: string): SafetensorsHeader {
  return withSource(fileSource(path, 'safetensors file'), readSafetensorsHeader);
}

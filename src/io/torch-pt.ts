// PyTorch checkpoints (torch.save since PyTorch 1.6) read as data, never as code.
//
// The file is a zip archive: `<root>/data.pkl` is a pickle (protocol 2) of the saved object, with every
// tensor storage replaced by a persistent id ('storage', storage_type, key, location, numel) whose bytes
// are the entry `<root>/data/<key>` (little-endian unless `<root>/byteorder` says 'big'). `<root>` varies
// (torch uses the file's stem, or 'archive').
//
// The pickle is run by a small virtual machine written here. It builds plain values (numbers, strings,
// lists, tuples, dicts) and resolves GLOBAL / STACK_GLOBAL against an allow-list of the names torch.save
// emits for tensors (collections.OrderedDict, torch._utils._rebuild_tensor_v2, the storage types, ...);
// anything else is refused before anything could happen. "Calling" an allowed global only builds a
// description of a tensor, so nothing in the file is ever executed. The top-level dict (and nested dicts,
// with dotted names) is then flattened to name -> Tensor, each materialised as a contiguous tensor from
// its storage bytes (views, storage offsets and arbitrary strides included), read at its offset in the
// file (never the whole file: checkpoints of any size load with memory for the tensors plus one chunk).
//
// Every error names the file. saveTorchCheckpoint (torch-pt-write.ts) writes the same format.
import * as zlib from 'node:zlib';
import '../backends/index.js';
import { getBackend, getDefaultDevice } from '../backends/registry.js';
import type { DType, TypedArray } from '../tensor/dtype.js';
import { isContiguous, numel, shapeStr } from '../tensor/shape.js';
import { emptyTensor, type Tensor } from '../tensor/tensor.js';
import { crc32 as jsCrc32 } from './png.js';
import { fileSource, memorySource, withSource, type ByteSource } from './byte-source.js';
import { decodeRaw, READ_CHUNK, readTensor } from './tensor-bytes.js';

/** Node >= 20.15 has a native CRC-32; older versions fall back to the table-driven one. */
const crc32: (b: Uint8Array, crc?: number) => number = (zlib as unknown as { crc32?: (b: Uint8Array, crc?: number) => number }).crc32 ?? ((b, c) => jsCrc32(b, c));

// --------------------------------------------------------------------------------------------------
// zip

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compSize: number;
  size: number;
  dataStart: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
/** pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) without the STOP: how the pre-1.6 format starts. */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

/** The central directory of a zip archive, every entry checked to lie inside the file. Reads only the
 *  end of the file, the central directory and each entry's local header. */
function readZip(src: ByteSource, err: (msg: string) => never): Map<string, ZipEntry> {
  const len = src.size;
  /** Little-endian fields of a block of the file that starts at absolute offset `base`. */
  const block = (base: number, length: number) => {
    const b = src.read(base, length);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return {
      bytes: b,
      u16: (o: number) => dv.getUint16(o - base, true),
      u32: (o: number) => dv.getUint32(o - base, true),
      u64: (o: number, what: string): number => {
        const v = dv.getBigUint64(o - base, true);
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) err(`zip64 ${what} ${v} is too large: the archive is corrupt`);
        return Number(v);
      },
    };
  };

  // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes, at the very end.
  const tailStart = Math.max(0, len - 22 - 0xffff - 20);
  const tail = block(tailStart, len - tailStart);
  let eocd = -1;
  for (let o = len - 22; o >= tailStart && o >= len - 22 - 0xffff; o--) {
    if (tail.u32(o) === SIG_EOCD && o + 22 + tail.u16(o + 20) <= len) {
      eocd = o;
      break;
    }
  }
  if (eocd < 0) {
    if (startsWith(src.read(0, LEGACY_MAGIC.length), LEGACY_MAGIC)) {
      err('this is the legacy torch.save format (PyTorch < 1.6, or _use_new_zipfile_serialization=False), which is not supported; re-save it with a current PyTorch');
    }
    if (len >= 4 && block(0, 4).u32(0) === SIG_LOCAL) {
      err(`zip archive is truncated: no end-of-central-directory record in its ${len} bytes (the file was cut short)`);
    }
    err(`not a zip archive (no end-of-central-directory record in ${len} bytes): a torch.save checkpoint (PyTorch >= 1.6) is a zip file`);
  }
  let count = tail.u16(eocd + 10);
  let cdSize = tail.u32(eocd + 12);
  let cdOffset = tail.u32(eocd + 16);
  if (tail.u16(eocd + 4) !== 0 || tail.u16(eocd + 6) !== 0) err('multi-disk zip archives are not supported');
  if (eocd - 20 >= tailStart && tail.u32(eocd - 20) === SIG_EOCD64_LOCATOR) {
    const at = tail.u64(eocd - 20 + 8, 'end-of-central-directory offset');
    if (at + 56 > eocd) err(`zip64 end-of-central-directory record at offset ${at} is missing or corrupt: the archive is truncated or corrupt`);
    const z = block(at, 56);
    if (z.u32(at) !== SIG_EOCD64) err(`zip64 end-of-central-directory record at offset ${at} is missing or corrupt: the archive is truncated or corrupt`);
    count = z.u64(at + 32, 'entry count');
    cdSize = z.u64(at + 40, 'central directory size');
    cdOffset = z.u64(at + 48, 'central directory offset');
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    err('zip64 end-of-central-directory locator is missing: the archive is truncated or corrupt');
  }
  if (cdOffset + cdSize > len) {
    err(`central directory (${cdSize} bytes at offset ${cdOffset}) runs past the end of the file (${len} bytes): the archive is truncated`);
  }

  const cd = block(cdOffset, cdSize);
  const decoder = new TextDecoder('utf-8');
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  const cdEnd = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdEnd || cd.u32(p) !== SIG_CENTRAL) err(`central directory entry ${i} of ${count} at offset ${p} is missing or has a bad signature: the archive is corrupt or truncated`);
    const flags = cd.u16(p + 8);
    const method = cd.u16(p + 10);
    const crc = cd.u32(p + 16);
    let compSize = cd.u32(p + 20);
    let size = cd.u32(p + 24);
    const nameLen = cd.u16(p + 28), extraLen = cd.u16(p + 30), commentLen = cd.u16(p + 32);
    let localOffset = cd.u32(p + 42);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > cdEnd) err(`central directory entry ${i} at offset ${p} runs past the end of the central directory: the archive is corrupt`);
    const name = decoder.decode(cd.bytes.subarray(p + 46 - cdOffset, p + 46 + nameLen - cdOffset));
    // zip64 extended information: the 8-byte values of the fields that are saturated, in this order.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = cd.u16(e), sz = cd.u16(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (what: string): number => {
          if (q + 8 > e + 4 + sz) err(`entry '${name}': zip64 extra field is too short for its ${what}`);
          const v = cd.u64(q, what);
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = take('size');
        if (compSize === 0xffffffff) compSize = take('compressed size');
        if (localOffset === 0xffffffff) localOffset = take('local header offset');
      }
      e += 4 + sz;
    }
    if (flags & 1) err(`entry '${name}' is encrypted, which is not supported`);
    const local = localOffset + 30 > len ? null : block(localOffset, 30);
    if (!local || local.u32(localOffset) !== SIG_LOCAL) {
      err(`entry '${name}': local header at offset ${localOffset} is ${!local ? `beyond the end of the file (${len} bytes): the archive is truncated` : 'missing (bad signature): the archive is corrupt'}`);
    }
    const dataStart = localOffset + 30 + local!.u16(localOffset + 26) + local!.u16(localOffset + 28);
    if (dataStart + compSize > len) {
      err(`entry '${name}' (${compSize} bytes at offset ${dataStart}) runs past the end of the file (${len} bytes): the archive is truncated`);
    }
    if (entries.has(name)) err(`entry '${name}' appears twice in the central directory`);
    entries.set(name, { name, method, crc, compSize, size, dataStart });
    p = next;
  }
  return entries;
}

function crcError(e: ZipEntry, crc: number, err: (msg: string) => never): never {
  return err(`entry '${e.name}': CRC-32 is 0x${(crc >>> 0).toString(16).padStart(8, '0')} but the archive records 0x${(e.crc >>> 0).toString(16).padStart(8, '0')}: the archive is corrupt`);
}

/** An entry's whole uncompressed bytes, CRC-checked (for the pickle, byteorder and deflated storages). */
function readEntry(src: ByteSource, e: ZipEntry, err: (msg: string) => never): Uint8Array {
  const raw = src.read(e.dataStart, e.compSize);
  let data: Uint8Array;
  if (e.method === 0) {
    if (e.compSize !== e.size) err(`entry '${e.name}' is stored uncompressed but its sizes differ (${e.compSize} vs ${e.size}): the archive is corrupt`);
    data = raw;
  } else if (e.method === 8) {
    try {
      data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) });
    } catch (ex) {
      return err(`entry '${e.name}': cannot inflate its deflate data (${(ex as Error).message}): the archive is corrupt`);
    }
    if (data.length !== e.size) err(`entry '${e.name}' inflates to ${data.length} bytes, not the ${e.size} its header declares: the archive is corrupt`);
  } else {
    return err(`entry '${e.name}' uses zip compression method ${e.method}; only stored (0) and deflate (8) are supported`);
  }
  const crc = crc32(data) >>> 0;
  if (crc !== e.crc >>> 0) crcError(e, crc, err);
  return data;
}

/** Check a stored entry's CRC-32 by streaming over it (used when no tensor read covered it whole). */
function checkStoredCrc(src: ByteSource, e: ZipEntry, err: (msg: string) => never): void {
  let crc = 0;
  for (let done = 0; done < e.size;) {
    const chunk = src.read(e.dataStart + done, Math.min(READ_CHUNK, e.size - done));
    if (chunk.length === 0) break;
    crc = crc32(chunk, crc);
    done += chunk.length;
  }
  if (crc >>> 0 !== e.crc >>> 0) crcError(e, crc, err);
}

// --------------------------------------------------------------------------------------------------
// pickle values

class PTuple {
  constructor(readonly items: unknown[]) {}
}

class PDict {
  readonly map = new Map<unknown, unknown>();
  constructor(readonly ordered: boolean) {}
}

class PSet {
  readonly items: unknown[] = [];
}

/** An allow-listed global: a type marker or a function the VM knows how to "call" as data. */
class PGlobal {
  constructor(readonly qualname: string, readonly kind: GlobalKind) {}
}

interface StorageType {
  /** torch's class name, e.g. 'FloatStorage'. */
  torch: string;
  /** lavender's dtype, or null when lavender has none (named in the error when a tensor uses it). */
  dtype: DType | null;
  /** torch's dtype name, for messages. */
  torchDtype: string;
  itemSize: number;
}

class StorageRef {
  constructor(
    readonly key: string,
    readonly type: StorageType,
    readonly numel: number,
    readonly location: string,
    readonly entry: ZipEntry,
  ) {}
}

class TensorSpec {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly strides: number[],
  ) {}
}

type GlobalKind = 'ordered-dict' | 'rebuild-tensor-v2' | 'rebuild-tensor' | 'rebuild-parameter' | 'rebuild-parameter-with-state' | 'rebuild-from-type-v2' | 'storage' | 'tensor-type';

const STORAGE_TYPES: Record<string, StorageType> = {};
for (const [cls, dtype, torchDtype, itemSize] of [
  ['FloatStorage', 'float32', 'float32', 4],
  ['DoubleStorage', 'float64', 'float64', 8],
  ['HalfStorage', 'float16', 'float16', 2],
  ['BFloat16Storage', 'bfloat16', 'bfloat16', 2],
  ['IntStorage', 'int32', 'int32', 4],
  ['LongStorage', 'int64', 'int64', 8],
  ['BoolStorage', 'bool', 'bool', 1],
  ['ByteStorage', null, 'uint8', 1],
  ['CharStorage', null, 'int8', 1],
  ['ShortStorage', null, 'int16', 2],
  ['ComplexFloatStorage', null, 'complex64', 8],
  ['ComplexDoubleStorage', null, 'complex128', 16],
  ['UntypedStorage', null, 'uint8 (untyped)', 1],
] as const) {
  STORAGE_TYPES[cls] = { torch: cls, dtype, torchDtype, itemSize };
}

/** Every global a checkpoint may name, and what it is. Nothing else is resolved. */
const ALLOWED: Record<string, GlobalKind> = {
  'collections.OrderedDict': 'ordered-dict',
  'torch._utils._rebuild_tensor_v2': 'rebuild-tensor-v2',
  'torch._utils._rebuild_tensor': 'rebuild-tensor',
  'torch._utils._rebuild_parameter': 'rebuild-parameter',
  'torch._utils._rebuild_parameter_with_state': 'rebuild-parameter-with-state',
  'torch._tensor._rebuild_from_type_v2': 'rebuild-from-type-v2',
  'torch.Tensor': 'tensor-type',
  'torch.nn.parameter.Parameter': 'tensor-type',
};
for (const cls of Object.keys(STORAGE_TYPES)) ALLOWED[`torch.${cls}`] = 'storage';
const STORAGE_OF_QUALNAME = (q: string): StorageType | undefined => (q.startsWith('torch.') ? STORAGE_TYPES[q.slice(6)] : undefined);

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PTuple) return `a tuple of ${v.items.length}`;
  if (v instanceof PDict) return v.ordered ? 'an OrderedDict' : 'a dict';
  if (v instanceof PGlobal) return `'${v.qualname}'`;
  if (v instanceof TensorSpec) return 'a tensor';
  if (v instanceof StorageRef) return 'a storage';
  if (v instanceof PSet) return 'a set';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  return String(v);
}

// --------------------------------------------------------------------------------------------------
// pickle VM

const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

interface PickleContext {
  /** '<file>: <entry>' for messages. */
  where: string;
  /** The file, for the allow-list refusal. */
  source: string;
  /** Storage reference for a persistent id's key, or an error. */
  storage: (type: StorageType, key: string, numel: number, location: string, fail: (msg: string) => never) => StorageRef;
}

/** Two's-complement little-endian integer of `b` (LONG1 / LONG4): a number when safe, else a bigint. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function runPickle(data: Uint8Array, ctx: PickleContext): unknown {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;
  let op = 0, opAt = 0;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): never => {
    throw new Error(`${ctx.where}: ${msg}`);
  };
  const opName = () => `${OPCODE_NAMES[op] ?? '?'} (0x${op.toString(16).padStart(2, '0')}) at offset ${opAt}`;
  const bad = (msg: string): never => fail(`${opName()}: ${msg}`);

  const need = (n: number): number => {
    if (!Number.isSafeInteger(n) || n < 0 || pos + n > data.length) bad(`needs ${n} more bytes but data.pkl ends at offset ${data.length}: the pickle is truncated`);
    const at = pos;
    pos += n;
    return at;
  };
  const take = (n: number): Uint8Array => {
    const at = need(n);
    return data.subarray(at, at + n);
  };
  const str = (n: number): string => {
    const b = take(n);
    try {
      return utf8.decode(b);
    } catch {
      return bad('string is not valid UTF-8');
    }
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) bad('its text argument has no terminating newline: the pickle is truncated');
    const s = new TextDecoder('latin1').decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  // The stack is read when the value is pushed, after the value (which may pop to a MARK) is computed.
  const push = (v: unknown): void => {
    stack.push(v);
  };
  const pop = (): unknown => {
    if (stack.length === 0) bad('the stack is empty');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) bad('the stack is empty');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    if (metastack.length === 0) bad('no MARK to pop to');
    const items = stack;
    stack = metastack.pop()!;
    return items;
  };
  const resolve = (module: string, name: string): PGlobal => {
    const qualname = `${module}.${name}`;
    const kind = Object.prototype.hasOwnProperty.call(ALLOWED, qualname) ? ALLOWED[qualname] : undefined;
    if (kind === undefined) throw new Error(`${ctx.source}: refusing to load: pickle references the global '${qualname}', which is not on the allow-list of tensor types`);
    return new PGlobal(qualname, kind);
  };
  const setItems = (target: unknown, kv: unknown[]): void => {
    if (!(target instanceof PDict)) bad(`cannot set items on ${describe(target)}, only on a dict`);
    const d = target as PDict;
    for (let i = 0; i + 1 < kv.length; i += 2) d.map.set(kv[i], kv[i + 1]);
  };
  const int = (v: unknown, what: string, fn: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) bad(`${fn}: ${what} must be an integer, got ${describe(v)}`);
    return v as number;
  };
  const intTuple = (v: unknown, what: string, fn: string): number[] => {
    if (!(v instanceof PTuple) && !Array.isArray(v)) bad(`${fn}: ${what} must be a tuple of integers, got ${describe(v)}`);
    const items = v instanceof PTuple ? v.items : (v as unknown[]);
    return items.map((x) => {
      const n = int(x, what, fn);
      if (n < 0) bad(`${fn}: ${what} ${shapeStr(items as number[])} has a negative entry`);
      return n;
    });
  };
  const args = (v: unknown, fn: string): unknown[] => {
    if (!(v instanceof PTuple)) bad(`${fn}: arguments must be a tuple, got ${describe(v)}`);
    return (v as PTuple).items;
  };

  /** The data-only meaning of calling an allow-listed global. */
  const call = (f: unknown, a: unknown[], depth = 0): unknown => {
    if (!(f instanceof PGlobal)) return bad(`cannot call ${describe(f)}`);
    if (depth > 16) bad('tensor rebuilds are nested more than 16 deep');
    const fn = f.qualname;
    const tensorArg = (v: unknown, what: string): TensorSpec => {
      if (!(v instanceof TensorSpec)) bad(`${fn}: ${what} must be a tensor, got ${describe(v)}`);
      return v as TensorSpec;
    };
    switch (f.kind) {
      case 'ordered-dict': {
        const d = new PDict(true);
        if (a.length > 1) bad(`${fn}: expected at most one argument, got ${a.length}`);
        if (a.length === 1) {
          const pairs = a[0];
          if (!Array.isArray(pairs) && !(pairs instanceof PTuple)) bad(`${fn}: expected a list of pairs, got ${describe(pairs)}`);
          for (const p of pairs instanceof PTuple ? pairs.items : (pairs as unknown[])) {
            const kv = p instanceof PTuple ? p.items : Array.isArray(p) ? p : null;
            if (!kv || kv.length !== 2) bad(`${fn}: expected (key, value) pairs, got ${describe(p)}`);
            d.map.set(kv![0], kv![1]);
          }
        }
        return d;
      }
      case 'rebuild-tensor-v2':
      case 'rebuild-tensor': {
        const min = f.kind === 'rebuild-tensor' ? 4 : 6;
        if (a.length < min || a.length > 7) bad(`${fn}: expected ${min === 4 ? '4' : '6 or 7'} arguments, got ${a.length}`);
        const storage = a[0];
        if (!(storage instanceof StorageRef)) return bad(`${fn}: the first argument must be a storage (a persistent id), got ${describe(storage)}`);
        const offset = int(a[1], 'storage_offset', fn);
        if (offset < 0) bad(`${fn}: storage_offset ${offset} is negative`);
        const shape = intTuple(a[2], 'size', fn);
        const strides = intTuple(a[3], 'stride', fn);
        if (strides.length !== shape.length) bad(`${fn}: size ${shapeStr(shape)} and stride ${shapeStr(strides)} differ in rank`);
        return new TensorSpec(storage, offset, shape, strides);
      }
      case 'rebuild-parameter':
        if (a.length !== 3) bad(`${fn}: expected 3 arguments, got ${a.length}`);
        return tensorArg(a[0], 'data');
      case 'rebuild-parameter-with-state':
        if (a.length !== 4) bad(`${fn}: expected 4 arguments, got ${a.length}`);
        return tensorArg(a[0], 'data');
      case 'rebuild-from-type-v2': {
        if (a.length !== 4) bad(`${fn}: expected 4 arguments, got ${a.length}`);
        const [inner, type, innerArgs] = a;
        if (!(type instanceof PGlobal) || type.kind !== 'tensor-type') bad(`${fn}: the type must be torch.Tensor or torch.nn.parameter.Parameter, got ${describe(type)}`);
        return tensorArg(call(inner, args(innerArgs, fn), depth + 1), 'the rebuilt value');
      }
      case 'storage':
      case 'tensor-type':
        return bad(`'${fn}' cannot be called: it is only allowed as a type in a storage reference or tensor rebuild`);
    }
  };

  const persistentLoad = (pid: unknown): StorageRef => {
    const items = pid instanceof PTuple ? pid.items : null;
    if (!items || items[0] !== 'storage') return bad(`persistent id ${describe(pid)} is not a torch storage reference ('storage', type, key, location, numel)`);
    if (items.length !== 5) bad(`storage reference has ${items.length} fields, expected 5 ('storage', type, key, location, numel)`);
    const [, type, key, location, n] = items;
    const st = type instanceof PGlobal && type.kind === 'storage' ? STORAGE_OF_QUALNAME(type.qualname) : undefined;
    if (!st) return bad(`storage reference: the storage type must be a torch storage class, got ${describe(type)}`);
    if (typeof key !== 'string') bad(`storage reference: the key must be a string, got ${describe(key)}`);
    if (typeof location !== 'string') bad(`storage reference: the location must be a string, got ${describe(location)}`);
    const count = int(n, 'numel', 'storage reference');
    if (count < 0) bad(`storage reference: numel ${count} is negative`);
    return ctx.storage(st, key as string, count, location as string, bad);
  };

  for (;;) {
    if (pos >= data.length) fail(`the pickle ends at offset ${data.length} without a STOP opcode: data.pkl is truncated`);
    opAt = pos;
    op = data[pos++]!;
    switch (op) {
      case 0x80: { // PROTO
        const v = data[need(1)]!;
        if (v > 5) bad(`pickle protocol ${v} is not supported (0 to 5)`);
        break;
      }
      case 0x95: need(8); break; // FRAME: framing only
      case 0x2e: { // STOP
        const result = pop();
        return result;
      }
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: push(dv.getInt32(need(4), true)); break; // BININT
      case 0x4b: push(data[need(1)]!); break; // BININT1
      case 0x4d: push(dv.getUint16(need(2), true)); break; // BININT2
      case 0x8a: push(decodeLong(take(data[need(1)]!))); break; // LONG1
      case 0x8b: { // LONG4
        const n = dv.getInt32(need(4), true);
        if (n < 0) bad(`negative length ${n}`);
        push(decodeLong(take(n)));
        break;
      }
      case 0x49: { // INT (text; "00"/"01" are False/True)
        const s = line();
        if (s === '00' || s === '01') push(s === '01');
        else {
          if (!/^[+-]?\d+$/.test(s)) bad(`'${s}' is not an integer`);
          const v = BigInt(s);
          push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        }
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^[+-]?\d+$/.test(s)) bad(`'${s}' is not an integer`);
        const v = BigInt(s);
        push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: push(dv.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x46: { // FLOAT (text)
        const s = line();
        const v = Number(s);
        if (Number.isNaN(v) && !/^[+-]?nan$/i.test(s)) bad(`'${s}' is not a float`);
        push(v);
        break;
      }
      case 0x58: push(str(dv.getUint32(need(4), true))); break; // BINUNICODE
      case 0x8c: push(str(data[need(1)]!)); break; // SHORT_BINUNICODE
      case 0x8d: { // BINUNICODE8
        const n = dv.getBigUint64(need(8), true);
        push(str(n > BigInt(data.length) ? data.length + 1 : Number(n)));
        break;
      }
      case 0x54: { // BINSTRING (Python 2 str): latin-1
        const n = dv.getInt32(need(4), true);
        if (n < 0) bad(`negative length ${n}`);
        push(new TextDecoder('latin1').decode(take(n)));
        break;
      }
      case 0x55: push(new TextDecoder('latin1').decode(take(data[need(1)]!))); break; // SHORT_BINSTRING
      case 0x42: push(take(dv.getUint32(need(4), true)).slice()); break; // BINBYTES
      case 0x43: push(take(data[need(1)]!).slice()); break; // SHORT_BINBYTES
      case 0x8e: case 0x96: { // BINBYTES8, BYTEARRAY8
        const n = dv.getBigUint64(need(8), true);
        push(take(n > BigInt(data.length) ? data.length + 1 : Number(n)).slice());
        break;
      }
      case 0x7d: push(new PDict(false)); break; // EMPTY_DICT
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x29: push(new PTuple([])); break; // EMPTY_TUPLE
      case 0x8f: push(new PSet()); break; // EMPTY_SET
      case 0x74: push(new PTuple(popMark())); break; // TUPLE
      case 0x85: push(new PTuple([pop()])); break; // TUPLE1
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        push(new PTuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        push(new PTuple([a, b, c]));
        break;
      }
      case 0x6c: push(popMark()); break; // LIST
      case 0x64: { // DICT
        const kv = popMark();
        const d = new PDict(false);
        setItems(d, kv);
        push(d);
        break;
      }
      case 0x91: { // FROZENSET
        const s = new PSet();
        s.items.push(...popMark());
        push(s);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const list = top();
        if (!Array.isArray(list)) bad(`cannot append to ${describe(list)}`);
        (list as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) bad(`cannot append to ${describe(list)}`);
        for (const v of items) (list as unknown[]).push(v);
        break;
      }
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof PSet)) bad(`cannot add items to ${describe(s)}`);
        (s as PSet).items.push(...items);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const kv = popMark();
        if (kv.length % 2) bad(`odd number of items (${kv.length}) for key/value pairs`);
        setItems(top(), kv);
        break;
      }
      case 0x71: memo.set(data[need(1)]!, top()); break; // BINPUT
      case 0x72: memo.set(dv.getUint32(need(4), true), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x70: { // PUT (text)
        const s = line();
        if (!/^\d+$/.test(s)) bad(`'${s}' is not a memo index`);
        memo.set(Number(s), top());
        break;
      }
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        let idx: number;
        if (op === 0x68) idx = data[need(1)]!;
        else if (op === 0x6a) idx = dv.getUint32(need(4), true);
        else {
          const s = line();
          if (!/^\d+$/.test(s)) bad(`'${s}' is not a memo index`);
          idx = Number(s);
        }
        if (!memo.has(idx)) bad(`memo index ${idx} was never stored`);
        push(memo.get(idx));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        push(resolve(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad(`module and name must be strings, got ${describe(module)} and ${describe(name)}`);
        push(resolve(module as string, name as string));
        break;
      }
      case 0x69: { // INST: a GLOBAL and a call with the marked arguments
        const module = line();
        const name = line();
        const g = resolve(module, name);
        push(call(g, popMark()));
        break;
      }
      case 0x6f: { // OBJ: class and arguments after the mark
        const items = popMark();
        if (items.length === 0) bad('no class after the MARK');
        push(call(items[0], items.slice(1)));
        break;
      }
      case 0x52: { // REDUCE
        const a = pop(), f = pop();
        push(call(f, args(a, 'REDUCE')));
        break;
      }
      case 0x81: { // NEWOBJ
        const a = pop(), cls = pop();
        push(call(cls, args(a, 'NEWOBJ')));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        const kw = pop(), a = pop(), cls = pop();
        if (!(kw instanceof PDict) || kw.map.size) bad('keyword arguments are not supported');
        push(call(cls, args(a, 'NEWOBJ_EX')));
        break;
      }
      case 0x62: { // BUILD: Python would call __setstate__; here the state (e.g. a state dict's _metadata) is dropped
        pop();
        top();
        break;
      }
      case 0x51: push(persistentLoad(pop())); break; // BINPERSID
      case 0x50: push(persistentLoad(line())); break; // PERSID
      default:
        if (OPCODE_NAMES[op]) bad('this opcode is not supported (torch.save does not write it)');
        fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} at offset ${opAt}`);
    }
  }
}

// --------------------------------------------------------------------------------------------------
// tensors

/** obj[key] = value, also for keys like '__proto__' that plain assignment would treat specially. */
function define<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function keyName(k: unknown): string | undefined {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (k === null) return 'None';
  return undefined;
}

const MAX_DEPTH = 256;

/** name -> tensor of the top-level dict, nested dicts flattened with dotted names; other leaves skipped. */
function flatten(root: unknown, err: (msg: string) => never): Array<[string, TensorSpec]> {
  if (!(root instanceof PDict)) {
    err(`the checkpoint holds ${describe(root)}, not a dict of tensors (a state dict, or a dict of state dicts)`);
  }
  const out: Array<[string, TensorSpec]> = [];
  const names = new Set<string>();
  const active = new Set<PDict>();
  const walk = (d: PDict, prefix: string): void => {
    if (active.has(d)) return; // a dict that contains itself: nothing more to find there
    if (active.size >= MAX_DEPTH) err(`dicts are nested more than ${MAX_DEPTH} deep (at '${prefix.slice(0, 60)}...')`);
    active.add(d);
    for (const [k, v] of d.map) {
      const key = keyName(k);
      if (key === undefined) continue;
      const name = prefix + key;
      if (v instanceof TensorSpec) {
        if (names.has(name)) err(`two tensors flatten to the name '${name}'`);
        names.add(name);
        out.push([name, v]);
      } else if (v instanceof PDict) {
        walk(v, `${name}.`);
      }
    }
    active.delete(d);
  };
  walk(root as PDict, '');
  return out;
}

const SUPPORTED = 'float32, float64, float16, bfloat16, int32, int64, bool';

/** The tensor's elements in row-major order, gathered from its decoded storage with its offset and strides. */
function gather(src: TypedArray, spec: TensorSpec, n: number): TypedArray {
  const { shape, strides, offset } = spec;
  const out = new (src.constructor as new (n: number) => TypedArray)(n);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let at = offset;
  for (let i = 0; i < n; i++) {
    out[i] = src[at]!;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) {
        at += strides[d]!;
        break;
      }
      at -= strides[d]! * (shape[d]! - 1);
      idx[d] = 0;
    }
  }
  return out;
}

export interface TorchLoadOptions {
  /** Backend the tensors are created on (default: the default device; 'meta' reads no data). */
  device?: string;
  /** Load only the tensors this accepts (the others' bytes are never read). */
  only?: (name: string) => boolean;
}

/**
 * Read every tensor of a torch.save checkpoint from a source. Only the zip's directory, the pickle and
 * each tensor's own bytes are read: a contiguous tensor streams from its storage entry chunk by chunk; a
 * strided view decodes its storage once (shared by the views of it) and gathers.
 */
export function readTorchCheckpoint(src: ByteSource, opts: TorchLoadOptions = {}): Record<string, Tensor> {
  const source = src.name;
  const err = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  const entries = readZip(src, err);

  // The archive's root folder is whatever holds data.pkl.
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length === 0) {
    const names = [...entries.keys()];
    err(`no '<archive>/data.pkl' in the zip archive (${names.length} entries${names.length ? `: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}` : ''}): not a torch.save checkpoint`);
  }
  if (pkls.length > 1) err(`the zip archive has ${pkls.length} top-level data.pkl entries (${pkls.join(', ')}): not a single torch.save checkpoint`);
  const pklName = pkls[0]!;
  const root = pklName.slice(0, -'data.pkl'.length);
  if (entries.has(`${root}constants.pkl`) || [...entries.keys()].some((n) => n.startsWith(`${root}code/`))) {
    err('this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save the model\'s state_dict() with torch.save instead');
  }

  let littleEndian = true;
  const order = entries.get(`${root}byteorder`);
  if (order) {
    const text = new TextDecoder('latin1').decode(readEntry(src, order, err)).trim();
    if (text !== 'little' && text !== 'big') err(`'${order.name}' says '${text}', expected 'little' or 'big'`);
    littleEndian = text === 'little';
  }

  const storages = new Map<string, StorageRef>();
  const pickle = readEntry(src, entries.get(pklName)!, err);
  const result = runPickle(pickle, {
    where: `${source}: ${pklName}`,
    source,
    storage: (type, key, count, location, fail) => {
      // torch 2.x may view one storage with several dtypes; each (key, type) is checked on its own.
      const id = `${key}\u0000${type.torch}`;
      const have = storages.get(id);
      if (have && have.numel === count) return have;
      const entryName = `${root}data/${key}`;
      const entry = entries.get(entryName);
      if (!entry) return fail(`storage '${key}' has no entry '${entryName}' in the archive`);
      const want = count * type.itemSize;
      if (!Number.isSafeInteger(want) || entry.size < want) {
        fail(`storage '${key}' ('${entryName}') holds ${entry.size} bytes but is declared as ${count} ${type.torchDtype} elements (${want} bytes)`);
      }
      const ref = new StorageRef(key, type, count, location, entry);
      storages.set(id, ref);
      return ref;
    },
  });

  const specs = flatten(result, err);
  const backend = getBackend(opts.device ?? getDefaultDevice());
  /** Entries already CRC-checked, and deflated entries already inflated (and checked). */
  const checked = new Set<ZipEntry>();
  const inflated = new Map<ZipEntry, ByteSource>();
  const decoded = new Map<string, TypedArray>();
  const tensors: Record<string, Tensor> = {};
  const made: Tensor[] = [];
  /** Where an entry's uncompressed bytes can be read: the file itself when stored, else its inflated copy. */
  const bytesOf = (e: ZipEntry): { src: ByteSource; base: number } => {
    if (e.method === 0) return { src, base: e.dataStart };
    let m = inflated.get(e);
    if (!m) {
      m = memorySource(readEntry(src, e, err), source);
      inflated.set(e, m);
      checked.add(e);
    }
    return { src: m, base: 0 };
  };
  try {
    for (const [name, spec] of specs) {
      if (opts.only && !opts.only(name)) continue;
      const bad = (msg: string): never => err(`tensor '${name}': ${msg}`);
      const st = spec.storage;
      const dtype = st.type.dtype;
      if (dtype === null) bad(`dtype ${st.type.torchDtype} (torch.${st.type.torch}) is not supported by lavender (supported: ${SUPPORTED})`);
      const n = numel(spec.shape);
      if (!Number.isSafeInteger(n)) bad(`shape ${shapeStr(spec.shape)} is too large`);
      if (n > 0) {
        let last = spec.offset;
        for (let d = 0; d < spec.shape.length; d++) last += (spec.shape[d]! - 1) * spec.strides[d]!;
        if (!Number.isSafeInteger(last) || last >= st.numel) {
          bad(`size ${shapeStr(spec.shape)}, stride ${shapeStr(spec.strides)} and storage offset ${spec.offset} reach element ${last}, beyond storage '${st.key}' of ${st.numel} ${st.type.torchDtype} elements`);
        }
      }
      const element = (i: number, problem: string): never => bad(`${st.type.torchDtype} element ${i} ${problem}`);
      let t: Tensor;
      if (backend.dataless || n === 0 || isContiguous(spec.shape, spec.strides)) {
        const at = backend.dataless ? { src, base: 0 } : bytesOf(st.entry);
        const whole = spec.offset === 0 && n * st.type.itemSize === st.entry.size && !checked.has(st.entry);
        let crc = 0;
        t = readTensor({
          source: at.src, at: at.base + spec.offset * st.type.itemSize, dtype: dtype!, shape: spec.shape, littleEndian, backend,
          bad: element, onBytes: whole ? (c) => (crc = crc32(c, crc)) : undefined,
        });
        if (whole && !backend.dataless) {
          if (crc >>> 0 !== st.entry.crc >>> 0) {
            t.dispose();
            crcError(st.entry, crc, err);
          }
          checked.add(st.entry);
        }
      } else {
        const cacheKey = `${st.key}\u0000${dtype}\u0000${st.numel}`;
        let values = decoded.get(cacheKey);
        if (!values) {
          const at = bytesOf(st.entry);
          values = decodeRaw(at.src.read(at.base, st.numel * st.type.itemSize), dtype!, littleEndian, element);
          decoded.set(cacheKey, values);
        }
        t = emptyTensor(backend, spec.shape, dtype!);
        backend.write(t.storage.buf, gather(values, spec, n));
      }
      made.push(t);
      t.name = name;
      define(tensors, name, t);
    }
    // every storage entry a tensor came from is CRC-checked, also those only partly read
    if (!backend.dataless) {
      for (const [name, spec] of specs) {
        const e = spec.storage.entry;
        if ((opts.only && !opts.only(name)) || checked.has(e) || spec.storage.type.dtype === null) continue;
        checkStoredCrc(src, e, err);
        checked.add(e);
      }
    }
  } catch (ex) {
    for (const t of made) t.dispose();
    throw ex;
  }
  return tensors;
}

/** Parse the bytes of a torch.save checkpoint held in memory; `source` names them in error messages. */
export function parseTorchCheckpoint(bytes: Uint8Array, source = '<buffer>', opts: TorchLoadOptions = {}): Record<string, Tensor> {
  if (!(bytes instanceof Uint8Array)) throw new Error(`${source}: expected the file contents as a Uint8Array`);
  return readTorchCheckpoint(memorySource(bytes, source), opts);
}

/**
 * Load every tensor of a torch.save checkpoint (zip format) as name -> Tensor, without running its pickle.
 * The file is read at each tensor's offset, never whole: any size works, memory holds the tensors plus one
 * read chunk.
 */
export function loadTorchCheckpoint(path: string, opts: TorchLoadOptions = {}): Record<string, Tensor> {
  return withSource(fileSource(path, 'PyTorch checkpoint'), (src) => readTorchCheckpoint(src, opts));
}

// Writing PyTorch checkpoints: a state dict that torch.load (PyTorch >= 1.6) reads as an OrderedDict of
// tensors. The format is the one torch-pt.ts reads: a zip archive (entries stored, not compressed, data
// aligned to 64 bytes as torch aligns it, zip64 fields when sizes or offsets pass 4 GiB) holding
// `archive/data.pkl`, a protocol-2 pickle of the dict whose tensors point at storages by persistent id,
// `archive/data/<i>`, each tensor's little-endian bytes, `archive/byteorder` and `archive/version`.
//
// Streamed: one tensor's bytes are in memory at a time (the CRC is computed before its local header is
// written), and the file is written to a temporary name and renamed into place.
import * as zlib from 'node:zlib';
import type { DType } from '../tensor/dtype.js';
import { bytesPerElement } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { writeFileStreamed, type ByteSink } from './byte-source.js';
import { crc32 as jsCrc32 } from './png.js';
import { encodeRaw, logicalValues } from './tensor-bytes.js';

const crc32: (b: Uint8Array, crc?: number) => number = (zlib as unknown as { crc32?: (b: Uint8Array, crc?: number) => number }).crc32 ?? ((b, c) => jsCrc32(b, c));

const STORAGE_CLASS: Record<DType, string> = {
  float32: 'FloatStorage', float64: 'DoubleStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage',
  int32: 'IntStorage', int64: 'LongStorage', bool: 'BoolStorage',
};

// ---------------------------------------------------------------------------------------------------------------
// pickle

class PickleWriter {
  private parts: number[] = [];
  op(...bytes: number[]): this {
    this.parts.push(...bytes);
    return this;
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.op(0x58, ...u32(b.length), ...b); // BINUNICODE
  }
  int(v: number): this {
    if (v >= -(2 ** 31) && v < 2 ** 31) return this.op(0x4a, ...i32(v)); // BININT
    // LONG1: little-endian two's complement, 8 bytes covers every safe integer
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigInt64(0, BigInt(v), true);
    return this.op(0x8a, 8, ...b);
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`)); // GLOBAL
  }
  tuple(items: readonly number[]): this {
    this.op(0x28); // MARK
    for (const v of items) this.int(v);
    return this.op(0x74); // TUPLE
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const u16 = (v: number) => [v & 0xff, (v >>> 8) & 0xff];
const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const i32 = (v: number) => u32(v >>> 0);
const u64 = (v: number) => [...u32(v % 2 ** 32), ...u32(Math.floor(v / 2 ** 32))];

/** OrderedDict(name -> _rebuild_tensor_v2(storage i, 0, shape, contiguous strides, False, OrderedDict())). */
function statePickle(items: ReadonlyArray<[string, Tensor]>): Uint8Array {
  const p = new PickleWriter();
  p.op(0x80, 2); // PROTO 2
  p.global('collections', 'OrderedDict').op(0x29, 0x52); // OrderedDict()
  p.op(0x28); // MARK for SETITEMS
  items.forEach(([name, t], i) => {
    p.str(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.op(0x28); // MARK: the arguments
    p.op(0x28).str('storage').global('torch', STORAGE_CLASS[t.dtype]).str(String(i)).str('cpu').int(t.size).op(0x74, 0x51); // (..) BINPERSID
    p.int(0);
    p.tuple(t.shape);
    const strides: number[] = [];
    for (let d = t.ndim - 1, s = 1; d >= 0; d--) {
      strides[d] = s;
      s *= t.shape[d]!;
    }
    p.tuple(strides);
    p.op(0x89); // requires_grad False
    p.global('collections', 'OrderedDict').op(0x29, 0x52); // backward hooks: OrderedDict()
    p.op(0x74, 0x52); // TUPLE, REDUCE
  });
  p.op(0x75, 0x2e); // SETITEMS, STOP
  return p.bytes();
}

// ---------------------------------------------------------------------------------------------------------------
// zip

const ALIGN = 64;
const MAX32 = 0xffffffff;

interface Written {
  name: Uint8Array;
  crc: number;
  size: number;
  offset: number;
}

class ZipWriter {
  readonly entries: Written[] = [];
  /** `limit`: sizes and offsets from which zip64 fields are written (lowered by tests to exercise them). */
  constructor(private readonly sink: ByteSink, private readonly limit = MAX32) {}

  /** A stored entry; `data` is written as given, after its local header. */
  add(name: string, data: Uint8Array): void {
    const nameBytes = new TextEncoder().encode(name);
    const crc = crc32(data) >>> 0;
    const offset = this.sink.position;
    const big = data.length >= this.limit || offset >= this.limit;
    const zip64 = big ? [...u16(1), ...u16(16), ...u64(data.length), ...u64(data.length)] : [];
    // pad with an extra field (torch's 'FB' id) so the data starts on a 64-byte boundary
    const before = offset + 30 + nameBytes.length + zip64.length;
    const fill = (ALIGN - ((before + 4) % ALIGN)) % ALIGN;
    const pad = [...u16(0x4246), ...u16(fill), ...new Array<number>(fill).fill(0x5a)];
    const header = [
      ...u32(0x04034b50), ...u16(big ? 45 : 20), ...u16(0), ...u16(0), ...u16(0), ...u16(0x21), ...u32(crc),
      ...u32(big ? MAX32 : data.length), ...u32(big ? MAX32 : data.length), ...u16(nameBytes.length), ...u16(zip64.length + pad.length),
    ];
    this.sink.write(Uint8Array.from(header));
    this.sink.write(nameBytes);
    this.sink.write(Uint8Array.from([...zip64, ...pad]));
    this.sink.write(data);
    this.entries.push({ name: nameBytes, crc, size: data.length, offset });
  }

  /** The central directory and the end records (zip64 ones when anything passes the 32-bit limits). */
  finish(): void {
    const cdStart = this.sink.position;
    for (const e of this.entries) {
      const sizeBig = e.size >= this.limit, offBig = e.offset >= this.limit;
      const fields = [...(sizeBig ? [...u64(e.size), ...u64(e.size)] : []), ...(offBig ? u64(e.offset) : [])];
      const extra = fields.length ? [...u16(1), ...u16(fields.length), ...fields] : [];
      this.sink.write(Uint8Array.from([
        ...u32(0x02014b50), ...u16(45), ...u16(extra.length ? 45 : 20), ...u16(0), ...u16(0), ...u16(0), ...u16(0x21),
        ...u32(e.crc), ...u32(sizeBig ? MAX32 : e.size), ...u32(sizeBig ? MAX32 : e.size), ...u16(e.name.length),
        ...u16(extra.length), ...u16(0), ...u16(0), ...u16(0), ...u32(0), ...u32(offBig ? MAX32 : e.offset),
      ]));
      this.sink.write(e.name);
      if (extra.length) this.sink.write(Uint8Array.from(extra));
    }
    const cdSize = this.sink.position - cdStart;
    const n = this.entries.length;
    const big = n >= Math.min(0xffff, this.limit) || cdStart >= this.limit || cdSize >= this.limit;
    if (big) {
      const at = this.sink.position;
      this.sink.write(Uint8Array.from([
        ...u32(0x06064b50), ...u64(44), ...u16(45), ...u16(45), ...u32(0), ...u32(0), ...u64(n), ...u64(n), ...u64(cdSize), ...u64(cdStart),
      ]));
      this.sink.write(Uint8Array.from([...u32(0x07064b50), ...u32(0), ...u64(at), ...u32(1)]));
    }
    this.sink.write(Uint8Array.from([
      ...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(big ? 0xffff : n), ...u16(big ? 0xffff : n),
      ...u32(big ? MAX32 : cdSize), ...u32(big ? MAX32 : cdStart), ...u16(0),
    ]));
  }
}

function checkTensors(tensors: Record<string, Tensor>, where: string): Array<[string, Tensor]> {
  if (tensors === null || typeof tensors !== 'object') throw new Error(`saveTorchCheckpoint: ${where}: tensors must be an object of name -> Tensor`);
  return Object.entries(tensors).map(([name, t]) => {
    if (!t || typeof t !== 'object' || !('storage' in t) || !('dtype' in t)) throw new Error(`saveTorchCheckpoint: ${where}: '${name}' is not a Tensor`);
    t.assertAlive(`saveTorchCheckpoint: ${where}: tensor '${name}'`);
    if (!Number.isSafeInteger(t.size * bytesPerElement(t.dtype))) throw new Error(`saveTorchCheckpoint: ${where}: tensor '${name}' is too large`);
    return [name, t];
  });
}

function emit(items: Array<[string, Tensor]>, sink: ByteSink, where: string, zip64Limit?: number): void {
  const zip = new ZipWriter(sink, zip64Limit);
  zip.add('archive/data.pkl', statePickle(items));
  zip.add('archive/byteorder', new TextEncoder().encode('little'));
  items.forEach(([name, t], i) => {
    const values = logicalValues(t, `saveTorchCheckpoint: ${where}: tensor '${name}'`);
    zip.add(`archive/data/${i}`, encodeRaw(values, t.dtype, (k, problem) => {
      throw new Error(`saveTorchCheckpoint: ${where}: tensor '${name}': ${t.dtype} element ${k} ${problem}`);
    }));
  });
  zip.add('archive/version', new TextEncoder().encode('3\n'));
  zip.finish();
}

/** Save tensors as a PyTorch state dict (torch.load gives an OrderedDict); streamed and atomic. */
export function saveTorchCheckpoint(path: string, tensors: Record<string, Tensor>): void {
  const items = checkTensors(tensors, path);
  writeFileStreamed(path, (sink) => emit(items, sink, path));
}

/** The bytes saveTorchCheckpoint would write, in memory (`zip64Limit` forces zip64 fields at a lower size, for tests). */
export function serializeTorchCheckpoint(tensors: Record<string, Tensor>, opts: { zip64Limit?: number } = {}): Uint8Array {
  const items = checkTensors(tensors, '<buffer>');
  const chunks: Uint8Array[] = [];
  let position = 0;
  emit(items, {
    write(c) {
      chunks.push(c.slice());
      position += c.length;
    },
    get position() {
      return position;
    },
  }, '<buffer>', opts.zip64Limit);
  return new Uint8Array(Buffer.concat(chunks));
}

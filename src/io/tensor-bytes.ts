// Raw tensor bytes <-> lavender tensors, shared by the safetensors and PyTorch readers and writers: one
// decoder (little- or big-endian bytes -> the storage values the backends hold: float16/bfloat16 as bits,
// int64 as float64, exact to 2^53; bool as 0/1 bytes; views of the input where the layout allows, since
// backend.write copies), one encoder (the reverse, little-endian), and a
// streaming read of a tensor from a ByteSource into a backend buffer, chunk by chunk, so a tensor is never
// held twice and a file is never read whole.
import type { Backend } from '../backends/backend.js';
import { bytesPerElement, type DType, type TypedArray } from '../tensor/dtype.js';
import { numel } from '../tensor/shape.js';
import { emptyTensor, type Tensor } from '../tensor/tensor.js';
import type { ByteSource } from './byte-source.js';

export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI_LIMIT = 2 ** 21; // high 32 bits of 2^53

/** Called with the element index (within the bytes decoded) and what is wrong with it; throws. */
export type ElementError = (index: number, problem: string) => never;

/** A typed-array view of `bytes` when it is aligned, else an aligned copy. */
function aligned<T extends TypedArray>(bytes: Uint8Array, size: number, make: (b: ArrayBuffer, o: number, n: number) => T): T {
  const n = bytes.length / size;
  if (bytes.byteOffset % size === 0) return make(bytes.buffer as ArrayBuffer, bytes.byteOffset, n);
  const copy = bytes.slice();
  return make(copy.buffer as ArrayBuffer, 0, n);
}

/** Decode whole elements of `dtype` from `bytes` (its length a multiple of the element size). */
export function decodeRaw(bytes: Uint8Array, dtype: DType, littleEndian: boolean, bad: ElementError): TypedArray {
  const size = bytesPerElement(dtype);
  const n = Math.floor(bytes.length / size);
  const native = littleEndian === LITTLE_ENDIAN_HOST;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'float32': {
      if (native) return aligned(bytes, 4, (b, o, k) => new Float32Array(b, o, k));
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, littleEndian);
      return out;
    }
    case 'float64': {
      if (native) return aligned(bytes, 8, (b, o, k) => new Float64Array(b, o, k));
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, littleEndian);
      return out;
    }
    case 'int32': {
      if (native) return aligned(bytes, 4, (b, o, k) => new Int32Array(b, o, k));
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, littleEndian);
      return out;
    }
    case 'float16': case 'bfloat16': {
      if (native) return aligned(bytes, 2, (b, o, k) => new Uint16Array(b, o, k));
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getUint16(i * 2, littleEndian);
      return out;
    }
    case 'int64': {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const lo = dv.getUint32(i * 8 + (littleEndian ? 0 : 4), littleEndian);
        const hi = dv.getInt32(i * 8 + (littleEndian ? 4 : 0), littleEndian);
        // |v| <= 2^53 is exact in a double; decide on the integer parts, since hi * 2^32 + lo may round
        if (hi > HI_LIMIT || (hi === HI_LIMIT && lo > 0) || hi < -HI_LIMIT) {
          bad(i, `is ${dv.getBigInt64(i * 8, littleEndian)}, beyond the 2^53 that lavender's int64 (held as float64) represents exactly`);
        }
        out[i] = hi * 2 ** 32 + lo;
      }
      return out;
    }
    case 'bool': {
      for (let i = 0; i < n; i++) if (bytes[i]! > 1) bad(i, `is byte ${bytes[i]}, not a bool (0 or 1)`);
      return bytes.subarray(0, n);
    }
  }
}

/** Little-endian bytes of raw storage values (as backend.read returns them); int64 must be integers within 2^53. */
export function encodeRaw(values: TypedArray, dtype: DType, bad: ElementError): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'int64': {
      const bytes = new Uint8Array(n * 8);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        if (!Number.isInteger(v) || Math.abs(v) > 2 ** 53) bad(i, `is ${v}, not an integer within +-2^53`);
        dv.setBigInt64(i * 8, BigInt(v), true);
      }
      return bytes;
    }
    case 'bool': {
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) bytes[i] = values[i] ? 1 : 0;
      return bytes;
    }
    default: {
      if (LITTLE_ENDIAN_HOST) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      const size = bytesPerElement(dtype);
      const bytes = new Uint8Array(n * size);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        if (dtype === 'float32') dv.setFloat32(i * 4, v, true);
        else if (dtype === 'float64') dv.setFloat64(i * 8, v, true);
        else if (dtype === 'int32') dv.setInt32(i * 4, v, true);
        else dv.setUint16(i * size, v, true);
      }
      return bytes;
    }
  }
}

/** The tensor's elements in logical (row-major) order as raw storage values (float16/bfloat16 as bits). */
export function logicalValues(t: Tensor, op: string): TypedArray {
  t.assertAlive(op);
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

/** Bytes read per step when streaming a tensor in (a multiple of every element size). */
export const READ_CHUNK = 1 << 24;

export interface TensorRead {
  source: ByteSource;
  /** Byte offset of the first element in the source. */
  at: number;
  dtype: DType;
  shape: readonly number[];
  littleEndian: boolean;
  backend: Backend;
  /** Formats an element's problem (index within the tensor) as an error. */
  bad: ElementError;
  /** Sees every chunk of bytes as it is read (e.g. to compute a checksum). */
  onBytes?: (chunk: Uint8Array) => void;
}

/** A contiguous tensor read from the source chunk by chunk (nothing is read on a dataless backend). */
export function readTensor(r: TensorRead): Tensor {
  const t = emptyTensor(r.backend, r.shape, r.dtype);
  if (r.backend.dataless) return t;
  try {
    const size = bytesPerElement(r.dtype);
    const total = numel(r.shape) * size;
    for (let done = 0; done < total;) {
      const len = Math.min(READ_CHUNK, total - done);
      const bytes = r.source.read(r.at + done, len);
      if (bytes.length < len) throw new Error(`${r.source.name}: the file ends at byte ${r.source.size}, inside a tensor's data (bytes ${r.at}..${r.at + total}); it is truncated`);
      r.onBytes?.(bytes);
      const first = done / size;
      const values = decodeRaw(bytes, r.dtype, r.littleEndian, (i, p) => r.bad(first + i, p));
      r.backend.write(t.storage.buf, values, first);
      done += len;
    }
  } catch (e) {
    t.dispose();
    throw e;
  }
  return t;
}

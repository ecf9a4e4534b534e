// Strided addressing for the cpu kernels: the element offsets of a view, in row-major order of its shape.
import type { View } from '../backend.js';
import { numel } from '../../tensor/shape.js';

/** Offsets of every element of (shape, strides, offset), row-major. Walks the last axis in an inner loop. */
export function stridedOffsets(shape: readonly number[], strides: readonly number[], offset: number): Int32Array {
  const n = numel(shape);
  const out = new Int32Array(n);
  if (n === 0) return out;
  const r = shape.length;
  if (r === 0) {
    out[0] = offset;
    return out;
  }
  const last = shape[r - 1]!, ls = strides[r - 1]!;
  const idx = new Array<number>(r).fill(0);
  let base = offset, p = 0;
  for (let o = n / last; o > 0; o--) {
    for (let j = 0, off = base; j < last; j++, off += ls) out[p++] = off;
    for (let d = r - 2; d >= 0; d--) {
      idx[d]++;
      base += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

export function viewOffsets(v: View): Int32Array {
  return stridedOffsets(v.shape, v.strides, v.offset);
}

/** True when the view covers a dense row-major range starting at v.offset. */
export function isDense(v: View): boolean {
  let s = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    if (v.shape[i] !== 1 && v.strides[i] !== s) return false;
    s *= v.shape[i]!;
  }
  return true;
}

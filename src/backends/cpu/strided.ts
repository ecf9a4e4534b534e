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

/**
 * Iterate a shape row by row for several operands at once (each with its own strides and offset).
 * Dimensions that are contiguous in every operand are merged first, so dense tensors become one long
 * row. `row(offsets, n)` receives each operand's offset of the row start; inner strides are returned
 * up front by `rowStrides` so kernels can hoist them out of their loops.
 */
export function forEachRow(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  offsets: readonly number[],
  row: (offs: Int32Array, n: number) => void,
): void {
  const { dims, st } = collapse(shape, strides);
  const k = strides.length;
  const offs = Int32Array.from(offsets);
  const r = dims.length;
  if (r === 0) {
    if (numel(shape) !== 0) row(offs, 1);
    return;
  }
  const n = dims[r - 1]!;
  if (n === 0 || dims.some((d) => d === 0)) return;
  const idx = new Array<number>(r).fill(0);
  let outer = numel(dims) / n;
  while (outer-- > 0) {
    row(offs, n);
    for (let d = r - 2; d >= 0; d--) {
      idx[d]++;
      for (let j = 0; j < k; j++) offs[j] += st[j]![d]!;
      if (idx[d]! < dims[d]!) break;
      for (let j = 0; j < k; j++) offs[j] -= st[j]![d]! * dims[d]!;
      idx[d] = 0;
    }
  }
}

/** The inner (last collapsed) stride of each operand, as forEachRow will walk them. */
export function rowStrides(shape: readonly number[], strides: readonly (readonly number[])[]): number[] {
  const { dims, st } = collapse(shape, strides);
  return st.map((s) => (dims.length ? s[dims.length - 1]! : 1));
}

export function collapse(shape: readonly number[], strides: readonly (readonly number[])[]): { dims: number[]; st: number[][] } {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (d === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, j) => st[j]![last] === s[i]! * d)) {
      dims[last]! *= d;
      strides.forEach((s, j) => (st[j]![last] = s[i]!));
      continue;
    }
    dims.push(d);
    strides.forEach((s, j) => st[j]!.push(s[i]!));
  }
  return { dims, st };
}

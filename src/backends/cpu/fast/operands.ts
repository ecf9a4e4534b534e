// Kernel operands: the byte address a wasm kernel uses for a strided float32 view. A view of the heap is
// used in place; any other array (the heap is full or not shared, or a test built the buffer by hand) is
// staged: its span is copied into heap scratch, and copied back after the kernel if the kernel writes it.
import type { View } from '../../backend.js';
import type { CpuBuffer } from '../buffer.js';
import type { Kernels } from './kernels.js';

/** [lo, hi]: the smallest and largest element index a view touches, relative to its offset. */
export function spanOf(shape: readonly number[], strides: readonly number[]): [number, number] {
  let lo = 0, hi = 0;
  for (let d = 0; d < shape.length; d++) {
    const e = (shape[d]! - 1) * strides[d]!;
    if (e < 0) lo += e; else hi += e;
  }
  return [lo, hi];
}

interface Staged { addr: number; bytes: number; arr: Float32Array; from: number; n: number; writeBack: boolean }

export class Operands {
  private staged: Staged[] = [];
  constructor(private readonly k: Kernels) {}

  /**
   * Byte address of element `offset` of `arr` for a kernel touching [offset + lo, offset + hi] (bounds are
   * checked: false instead of a stray write); -1 if the array cannot be staged (heap exhausted).
   */
  addr(arr: Float32Array, offset: number, lo: number, hi: number, written: boolean): number {
    const from = offset + lo, to = offset + hi;
    if (from < 0 || to >= arr.length) throw new Error(`cpu kernels: a view spans elements ${from}..${to} of a buffer of ${arr.length}`);
    if (this.k.heap.owns(arr)) return arr.byteOffset + offset * 4;
    const n = to - from + 1;
    const a = this.k.heap.alloc(n * 4);
    if (a < 0) return -1;
    this.k.f32().set(arr.subarray(from, to + 1), a >>> 2);
    this.staged.push({ addr: a, bytes: n * 4, arr, from, n, writeBack: written });
    return a - lo * 4;
  }

  /** Address of a view of a float32 cpu buffer (see addr). */
  view(v: View, written = false): number {
    const [lo, hi] = spanOf(v.shape, v.strides);
    return this.addr((v.buf as CpuBuffer).data as Float32Array, v.offset, lo, hi, written);
  }

  /** Copy staged outputs back and release the scratch. */
  finish(): void {
    const f = this.k.f32();
    for (const s of this.staged) {
      if (s.writeBack) s.arr.set(f.subarray(s.addr >>> 2, (s.addr >>> 2) + s.n), s.from);
      this.k.heap.free(s.addr, s.bytes);
    }
    this.staged = [];
  }

  /** Release the scratch without copying back. */
  abort(): void {
    for (const s of this.staged) this.k.heap.free(s.addr, s.bytes);
    this.staged = [];
  }
}

/** True when every view is a float32 buffer. */
export function allF32(...vs: (View | null | undefined)[]): boolean {
  return vs.every((v) => !v || ((v.buf as CpuBuffer).dtype === 'float32' && (v.buf as CpuBuffer).data instanceof Float32Array));
}

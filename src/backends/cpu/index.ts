// The cpu backend: TypeScript reference kernels plus fast paths — wasm SIMD kernels on tensors that live
// in the shared heap (./heap.ts), run on this thread and worker threads (./fast/).
import type { Backend, BackendBuffer, BinaryOp, UnaryOp, View } from '../backend.js';
import { registerBackendInstance } from '../registry.js';
import { CpuBuffer, CpuPool } from './buffer.js';
import { heap } from './heap.js';
import { cpuFused } from './fused.js';
import * as ref from './kernels.js';
import { sgemm, sgemmBatched } from './fast/sgemm.js';
import { binaryF32, binaryScalarF32, copyF32, sumF32, unaryF32 } from './fast/elementwise.js';

const pool = new CpuPool();

/** Memory of the cpu backend: the heap's high-water mark and live/peak bytes, and allocations that spilled out of it. */
export function cpuMemoryStats(): { heapBytes: number; liveBytes: number; peakBytes: number; spilled: number } {
  return { heapBytes: heap?.highWater ?? 0, liveBytes: heap?.liveBytes ?? 0, peakBytes: heap?.peakBytes ?? 0, spilled: pool.spilled };
}

function cpuBuf(b: BackendBuffer, op: string): CpuBuffer {
  if (b.backend !== 'cpu') throw new Error(`cpu ${op}: buffer belongs to backend '${b.backend}'`);
  const c = b as CpuBuffer;
  if (c.freed) throw new Error(`cpu ${op}: use of a freed ${c.dtype} buffer of ${c.size} elements`);
  return c;
}

/** float32 batched matmul through the fast sgemm when it is available; the reference otherwise. */
function matmul(a: View, b: View, out: View): void {
  const A = cpuBuf(a.buf, 'matmul'), B = cpuBuf(b.buf, 'matmul'), O = cpuBuf(out.buf, 'matmul');
  if (A.dtype === 'float32' && B.dtype === 'float32' && O.dtype === 'float32') {
    const [batch, M, K] = a.shape as [number, number, number];
    const N = b.shape[2]!;
    // A batch against one shared B (a Linear layer's weight: stride 0) whose A rows are evenly spaced
    // across the batch is a single [batch*M, K] @ [K, N] product: one call instead of `batch`.
    if (batch > 1 && (b.strides[0] === 0 || K === 0) && a.strides[0] === M * a.strides[1]! && batch * M * N <= 0x7fffffff) {
      if (sgemm(batch * M, N, K,
        A.data as Float32Array, a.offset, a.strides[1]!, a.strides[2]!,
        B.data as Float32Array, b.offset, b.strides[1]!, b.strides[2]!,
        O.data as Float32Array, out.offset, N)) return;
    }
    // Otherwise one batched call: a task per item, a shared (stride 0) operand packed once.
    if (sgemmBatched(batch, M, N, K,
      A.data as Float32Array, a.offset, a.strides[0]!, a.strides[1]!, a.strides[2]!,
      B.data as Float32Array, b.offset, b.strides[0]!, b.strides[1]!, b.strides[2]!,
      O.data as Float32Array, out.offset, M * N, N)) return;
  }
  ref.matmulReference(a, b, out);
}

function unary(op: UnaryOp, x: View, out: View): void {
  cpuBuf(x.buf, op); cpuBuf(out.buf, op);
  if (!unaryF32(op, x, out)) ref.unary(op, x, out);
}

function binary(op: BinaryOp, a: View, b: View, out: View): void {
  cpuBuf(a.buf, op); cpuBuf(b.buf, op); cpuBuf(out.buf, op);
  if (!binaryF32(op, a, b, out)) ref.binary(op, a, b, out);
}

function binaryScalar(op: BinaryOp, a: View, s: number, out: View, scalarFirst: boolean): void {
  const A = cpuBuf(a.buf, op);
  cpuBuf(out.buf, op);
  const v = A.dtype === 'float32' ? Math.fround(s) : s;
  if (!binaryScalarF32(op, a, v, out, scalarFirst)) ref.binaryScalar(op, a, v, out, scalarFirst);
}

function copy(src: View, dst: View, accumulate: boolean): void {
  cpuBuf(src.buf, 'copy'); cpuBuf(dst.buf, 'copy');
  if (!copyF32(src, dst, accumulate)) ref.copy(src, dst, accumulate);
}

function reduce(op: Parameters<Backend['reduce']>[0], x: View, axes: readonly number[], out: View): void {
  cpuBuf(x.buf, op); cpuBuf(out.buf, op);
  if (op === 'sum' && ref.isDense(out) && sumF32(x, axes, out)) return;
  ref.reduce(op, x, axes, out);
}

export const cpuBackend: Backend = {
  name: 'cpu',
  available: true,
  alloc: (dtype, size) => pool.alloc(dtype, size),
  free: (b) => pool.release(cpuBuf(b, 'free')),
  write(b, data, offset = 0) {
    const c = cpuBuf(b, 'write');
    if (offset + data.length > c.size) throw new Error(`cpu write: ${data.length} elements at offset ${offset} overflow a buffer of ${c.size}`);
    c.data.set(data, offset);
  },
  read: (b) => cpuBuf(b, 'read').data.slice(),
  liveBuffers: () => pool.live,
  liveBytes: () => pool.liveBytes,
  peakBytes: () => pool.peakBytes,
  resetPeakBytes: () => {
    pool.peakBytes = pool.liveBytes;
  },
  fill: ref.fill,
  copy,
  unary,
  binary,
  binaryScalar,
  where: ref.where,
  reduce,
  matmul,
  gather: ref.gather,
  scatterAdd: ref.scatterAdd,
  random: ref.random,
  fused: cpuFused,
};

/** The pure reference with no fast paths and no fused kernels: what every other backend is tested against. */
export const cpuReferenceBackend: Backend = {
  ...cpuBackend,
  name: 'cpu-reference',
  fill: ref.fill,
  copy: ref.copy,
  unary: ref.unary,
  binary: ref.binary,
  binaryScalar: undefined,
  where: ref.where,
  reduce: ref.reduce,
  matmul: ref.matmulReference,
  fused: {},
};

registerBackendInstance(cpuBackend);

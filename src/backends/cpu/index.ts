// The cpu backend: reference kernels plus fast paths (wasm SIMD sgemm over worker threads).
import type { Backend, BackendBuffer, View } from '../backend.js';
import { registerBackendInstance } from '../registry.js';
import { CpuBuffer, CpuPool } from './buffer.js';
import { cpuFused } from './fused.js';
import * as ref from './kernels.js';
import { sgemm, sgemmBatched } from './fast/sgemm.js';
import { fastUnary, fastUnaryOp } from './fast/rowops.js';
import { isDense } from './strided.js';
import { binaryF32, binaryF32Op, copyF32, sumF32 } from './fast/elementwise.js';
import { numel } from '../../tensor/shape.js';

const pool = new CpuPool();

function cpuBuf(b: BackendBuffer, op: string): CpuBuffer {
  if (b.backend !== 'cpu') throw new Error(`cpu ${op}: buffer belongs to backend '${b.backend}'`);
  const c = b as CpuBuffer;
  if (c.freed) throw new Error(`cpu ${op}: use of a freed ${c.dtype} buffer of ${c.size} elements`);
  return c;
}

/** float32 batched matmul through the fast sgemm when it is available; the reference otherwise. */
function matmul(a: View, b: View, out: View): void {
  const A = cpuBuf(a.buf, 'matmul'), B = cpuBuf(b.buf, 'matmul'), O = cpuBuf(out.buf, 'matmul');
  if (A.dtype === 'float32' && B.dtype === 'float32' && O.dtype === 'float32' && !process.env.LAVENDER_CPU_REFERENCE) {
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
    // Otherwise one batched call: a worker-pool job per group of items, a shared (stride 0) operand packed once.
    if (sgemmBatched(batch, M, N, K,
      A.data as Float32Array, a.offset, a.strides[0]!, a.strides[1]!, a.strides[2]!,
      B.data as Float32Array, b.offset, b.strides[0]!, b.strides[1]!, b.strides[2]!,
      O.data as Float32Array, out.offset, M * N, N)) return;
  }
  ref.matmulReference(a, b, out);
}

const isF32 = (v: View): boolean => (v.buf as CpuBuffer).data instanceof Float32Array && (v.buf as CpuBuffer).dtype === 'float32';

/** Unary ops: exp/sigmoid/silu of dense float32 through the wasm row kernels; the reference otherwise. */
function unary(op: Parameters<Backend['unary']>[0], x: View, out: View): void {
  if (fastUnaryOp(op) && isF32(x) && isF32(out) && isDense(x) && isDense(out)) {
    const X = cpuBuf(x.buf, op), O = cpuBuf(out.buf, op);
    if (fastUnary(op, X.data as Float32Array, x.offset, O.data as Float32Array, out.offset, numel(x.shape))) return;
  }
  ref.unary(op, x, out);
}

/** float32 add/sub/mul/div: monomorphic tiled loops (bit-identical to the reference). */
function binary(op: Parameters<Backend['binary']>[0], a: View, b: View, out: View): void {
  if (binaryF32Op(op) && isF32(a) && isF32(b) && isF32(out)) {
    const A = cpuBuf(a.buf, op), B = cpuBuf(b.buf, op), O = cpuBuf(out.buf, op);
    if (binaryF32(op, A.data as Float32Array, a, B.data as Float32Array, b, O.data as Float32Array, out)) return;
  }
  ref.binary(op, a, b, out);
}

function copy(src: View, dst: View, accumulate: boolean): void {
  if (isF32(src) && isF32(dst)) {
    const S = cpuBuf(src.buf, 'copy'), D = cpuBuf(dst.buf, 'copy');
    return copyF32(S.data as Float32Array, src, D.data as Float32Array, dst, accumulate);
  }
  ref.copy(src, dst, accumulate);
}

function reduce(op: Parameters<Backend['reduce']>[0], x: View, axes: readonly number[], out: View): void {
  if (op === 'sum' && isF32(x) && isF32(out) && isDense(out)) {
    const X = cpuBuf(x.buf, op), O = cpuBuf(out.buf, op);
    return sumF32(X.data as Float32Array, x, axes, O.data as Float32Array, out);
  }
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
  where: ref.where,
  reduce: ref.reduce,
  matmul: ref.matmulReference,
  fused: {},
};

registerBackendInstance(cpuBackend);

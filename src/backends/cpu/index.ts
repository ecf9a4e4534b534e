// The cpu backend: reference kernels plus fast paths (wasm SIMD sgemm over worker threads).
import type { Backend, BackendBuffer, View } from '../backend.js';
import { registerBackendInstance } from '../registry.js';
import { CpuBuffer, CpuPool } from './buffer.js';
import { cpuFused } from './fused.js';
import * as ref from './kernels.js';
import { sgemm } from './fast/sgemm.js';

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
    let ok = true;
    for (let p = 0; p < batch && ok; p++) {
      ok = sgemm(M, N, K,
        A.data as Float32Array, a.offset + p * a.strides[0]!, a.strides[1]!, a.strides[2]!,
        B.data as Float32Array, b.offset + p * b.strides[0]!, b.strides[1]!, b.strides[2]!,
        O.data as Float32Array, out.offset + p * M * N, N);
      if (!ok && p > 0) throw new Error('cpu matmul: fast path became unavailable mid-batch');
    }
    if (ok) return;
  }
  ref.matmulReference(a, b, out);
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
  fill: ref.fill,
  copy: ref.copy,
  unary: ref.unary,
  binary: ref.binary,
  where: ref.where,
  reduce: ref.reduce,
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
  matmul: ref.matmulReference,
  fused: {},
};

registerBackendInstance(cpuBackend);

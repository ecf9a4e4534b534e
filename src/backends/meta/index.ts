// The meta backend: tensors with shapes and dtypes but no memory, as PyTorch's meta device. Building a
// model on it gives exact parameter names and counts (a 5.6B model in microseconds); reading data throws.
import type { Backend, BackendBuffer } from '../backend.js';
import { bytesPerElement, type DType } from '../../tensor/dtype.js';

class MetaBuffer implements BackendBuffer {
  readonly backend = 'meta';
  constructor(readonly dtype: DType, readonly size: number) {}
}

let live = 0, liveBytes = 0, peakBytes = 0;
const noData = (what: string) => () => {
  throw new Error(`meta: ${what}: meta tensors have shapes but no data; move the computation to a real device`);
};
const nothing = () => {};

const fused: Record<string, () => boolean> = {};
const accepted = () => true;
const lowPrecision: DType[] = [];

/**
 * Make the meta device take the kernel paths of a real one: ops/ uses a fused kernel where the backend has
 * one (saving different tensors for the backward), so a memory trace on meta must have the same set.
 * The stand-ins do nothing and accept every case (a float32 step, as the real kernels do). `low`: the
 * dtypes the device computes in under autocast (Backend.lowPrecision: a GPU keeps bf16 tensors; without
 * it autocast is emulated, float32 tensors rounded, as on the cpu).
 */
export function mirrorFusedKernels(names: readonly string[], low: readonly DType[] = []): void {
  for (const k of Object.keys(fused)) delete fused[k];
  for (const k of names) fused[k] = accepted;
  lowPrecision.splice(0, lowPrecision.length, ...low);
}

export const metaBackend: Backend = {
  name: 'meta',
  available: true,
  dataless: true,
  alloc: (dtype, size) => {
    live++;
    liveBytes += size * bytesPerElement(dtype);
    peakBytes = Math.max(peakBytes, liveBytes);
    return new MetaBuffer(dtype, size);
  },
  free: (b) => {
    live--;
    liveBytes -= b.size * bytesPerElement(b.dtype);
  },
  write: nothing,
  read: noData('read'),
  liveBuffers: () => live,
  // what a real device would hold: `lavender info` runs a training step here to count activation bytes
  liveBytes: () => liveBytes,
  peakBytes: () => peakBytes,
  resetPeakBytes: () => {
    peakBytes = liveBytes;
  },
  fill: nothing,
  copy: nothing,
  unary: nothing,
  binary: nothing,
  where: nothing,
  reduce: nothing,
  matmul: nothing,
  gather: nothing,
  scatterAdd: nothing,
  random: nothing,
  fused,
  lowPrecision,
};

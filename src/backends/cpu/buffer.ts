// Cpu buffers are typed arrays, recycled through a size-keyed caching pool: re-faulting large fresh
// allocations every step costs more than the math (the brief measured 5-6x for PyTorch on this machine).
import type { BackendBuffer } from '../backend.js';
import { arrayFor, bytesPerElement, type DType, type TypedArray } from '../../tensor/dtype.js';

export class CpuBuffer implements BackendBuffer {
  readonly backend = 'cpu';
  freed = false;
  constructor(readonly dtype: DType, readonly size: number, readonly data: TypedArray) {}
}

const POOL_MIN_BYTES = 4096;

export class CpuPool {
  private free = new Map<string, TypedArray[]>();
  private pooledBytes = 0;
  live = 0;
  constructor(private readonly maxPooledBytes = 1 << 30) {}

  alloc(dtype: DType, size: number): CpuBuffer {
    const key = storageKey(dtype, size);
    const hit = this.free.get(key)?.pop();
    this.live++;
    if (hit) {
      this.pooledBytes -= hit.byteLength;
      return new CpuBuffer(dtype, size, hit);
    }
    return new CpuBuffer(dtype, size, arrayFor(dtype, size));
  }

  release(buf: CpuBuffer): void {
    if (buf.freed) throw new Error(`cpu: double free of a ${buf.dtype} buffer of ${buf.size} elements`);
    buf.freed = true;
    this.live--;
    const bytes = buf.size * bytesPerElement(buf.dtype);
    if (bytes < POOL_MIN_BYTES || this.pooledBytes + bytes > this.maxPooledBytes) return;
    const key = storageKey(buf.dtype, buf.size);
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf.data);
    this.pooledBytes += bytes;
  }

  /** Drop every pooled array (memory goes back to the garbage collector). */
  trim(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }
}

// int64 and float64 share Float64Array storage, bfloat16 and float16 share Uint16Array.
function storageKey(dtype: DType, size: number): string {
  const kind = dtype === 'int64' ? 'float64' : dtype === 'float16' ? 'bfloat16' : dtype;
  return `${kind}:${size}`;
}

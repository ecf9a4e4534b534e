// NCCL collectives over cuda buffers, for process groups (src/distributed/). NCCL is dlopen'ed by the addon
// (libnccl.so.2 from LAVENDER_CUDA_LIB_PATH, then the system paths); prototypes are checked against
// nccl.h at build time where it exists. Collectives are enqueued on the backend's stream, so they are
// ordered with the kernels around them; `read` (or backend.synchronize()) waits for them.
//
//   const id = NcclComm.uniqueId();              // rank 0, then share the 128 bytes (e.g. over TCP)
//   const comm = NcclComm.initRank(world, id, rank);
//   comm.allReduce(grad.view(), grad.view(), 'sum');
import type { View } from '../backend.js';
import type { DType } from '../../tensor/dtype.js';
import { numel } from '../../tensor/shape.js';
import { getBackend } from '../registry.js';
import { libDirs } from './addon.js';
import type { CudaBackend, CudaBuffer } from './index.js';

export type NcclRedOp = 'sum' | 'prod' | 'max' | 'min' | 'avg';

const RED_OPS: Record<NcclRedOp, number> = { sum: 0, prod: 1, max: 2, min: 3, avg: 4 };
// ncclDataType_t (nccl_proto.h); float64 and int64 are exact, bool travels as uint8
const NCCL_TYPES: Record<DType, number> = { int32: 2, int64: 4, float16: 6, float32: 7, float64: 8, bfloat16: 9, bool: 1 };
const BYTES: Record<DType, number> = { float32: 4, float64: 8, int32: 4, int64: 8, bfloat16: 2, float16: 2, bool: 1 };

function cuda(): CudaBackend {
  return getBackend('cuda') as CudaBackend;
}

/** The device address and element count of a contiguous cuda view. */
function span(v: View, op: string): { ptr: number; count: number; dtype: DType } {
  const b = v.buf as CudaBuffer;
  if (b.backend !== 'cuda') throw new Error(`nccl ${op}: tensor is on '${b.backend}', not cuda`);
  if (b.freed) throw new Error(`nccl ${op}: use of a freed buffer`);
  let expect = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    if (v.shape[d] !== 1 && v.strides[d] !== expect) throw new Error(`nccl ${op}: the view must be contiguous`);
    expect *= v.shape[d]!;
  }
  return { ptr: b.ptr + v.offset * BYTES[b.dtype], count: numel(v.shape), dtype: b.dtype };
}

let loaded: { version: number; path: string } | null = null;

/** Load NCCL (once); returns its version code (e.g. 22805) and the library path. Throws naming the cause. */
export function loadNccl(): { version: number; path: string } {
  if (!loaded) loaded = cuda().addon.ncclLoad(libDirs());
  return loaded;
}

/** A marker after the work enqueued on the backend's stream so far: poll it instead of blocking in synchronize(). */
export function streamMarker(): { done(): boolean; release(): void } {
  const a = cuda().addon;
  const id = a.markerRecord();
  return { done: () => a.markerDone(id), release: () => a.markerDestroy(id) };
}

export class NcclComm {
  private destroyed = false;
  private constructor(private readonly handle: number, readonly size: number, readonly rank: number) {}

  /** A fresh 128-byte id (call on one rank and send it to the others). */
  static uniqueId(): Buffer {
    loadNccl();
    return cuda().addon.ncclGetUniqueId();
  }

  /** Join a communicator of `size` ranks; blocks until every rank has joined. */
  static initRank(size: number, id: Buffer, rank: number): NcclComm {
    if (id.length !== 128) throw new Error(`nccl initRank: the unique id must be 128 bytes, got ${id.length}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw new Error(`nccl initRank: rank ${rank} outside [0, ${size})`);
    loadNccl();
    return new NcclComm(cuda().addon.ncclCommInitRank(size, id, rank), size, rank);
  }

  private live(op: string): number {
    if (this.destroyed) throw new Error(`nccl ${op}: the communicator was destroyed`);
    return this.handle;
  }

  allReduce(send: View, recv: View, op: NcclRedOp = 'sum'): void {
    const s = span(send, 'allReduce'), r = span(recv, 'allReduce');
    if (s.count !== r.count || s.dtype !== r.dtype) throw new Error('nccl allReduce: send and recv differ in size or dtype');
    cuda().addon.ncclAllReduce(s.ptr, r.ptr, s.count, NCCL_TYPES[s.dtype], RED_OPS[op], this.live('allReduce'));
  }

  /** recv (count n) gets the reduction of block `rank` of send (count n * size). */
  reduceScatter(send: View, recv: View, op: NcclRedOp = 'sum'): void {
    const s = span(send, 'reduceScatter'), r = span(recv, 'reduceScatter');
    if (s.count !== r.count * this.size || s.dtype !== r.dtype) throw new Error(`nccl reduceScatter: send must hold ${this.size} x recv elements of the same dtype`);
    cuda().addon.ncclReduceScatter(s.ptr, r.ptr, r.count, NCCL_TYPES[r.dtype], RED_OPS[op], this.live('reduceScatter'));
  }

  /** recv (count n * size) gets every rank's send (count n), in rank order. */
  allGather(send: View, recv: View): void {
    const s = span(send, 'allGather'), r = span(recv, 'allGather');
    if (r.count !== s.count * this.size || s.dtype !== r.dtype) throw new Error(`nccl allGather: recv must hold ${this.size} x send elements of the same dtype`);
    cuda().addon.ncclAllGather(s.ptr, r.ptr, s.count, NCCL_TYPES[s.dtype], this.live('allGather'));
  }

  broadcast(send: View, recv: View, root = 0): void {
    const s = span(send, 'broadcast'), r = span(recv, 'broadcast');
    if (s.count !== r.count || s.dtype !== r.dtype) throw new Error('nccl broadcast: send and recv differ in size or dtype');
    cuda().addon.ncclBroadcast(s.ptr, r.ptr, s.count, NCCL_TYPES[s.dtype], root, this.live('broadcast'));
  }

  /** The asynchronous error NCCL's threads found on this communicator (a dead peer, a network failure), or null. */
  asyncError(): string | null {
    const e = cuda().addon.ncclCommGetAsyncError(this.live('asyncError'));
    return e ? `${e.message} (ncclResult ${e.code})` : null;
  }

  /** ncclCommAbort: free the communicator even while a collective waits on a dead peer (idempotent). */
  abort(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    cuda().addon.ncclCommAbort(this.handle);
  }

  /** Fuse the collectives issued inside fn into one NCCL group. */
  group<T>(fn: () => T): T {
    const a = cuda().addon;
    a.ncclGroupStart();
    try {
      return fn();
    } finally {
      a.ncclGroupEnd();
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    cuda().addon.ncclCommDestroy(this.handle);
  }
}

// Loading the native addon (build/native/Release/lavender_cuda.node, built by scripts/build-native.mjs)
// and what it exports. Loading is lazy: importing lavender never touches native code; `lavender info`
// and creating the backend do. LAVENDER_CUDA_ADDON overrides the path (tests point it at a missing file
// to check that everything else works without the addon).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BinaryOp, ReduceOp, UnaryOp } from '../backend.js';
import type { DType } from '../../tensor/dtype.js';

/** The package root (this file is dist/src/backends/cuda/addon.js once compiled). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const DEFAULT_ADDON_PATH = join(PACKAGE_ROOT, 'build', 'native', 'Release', 'lavender_cuda.node');
export const BUILD_RECORD_PATH = join(PACKAGE_ROOT, 'build', 'native', 'lavender-build.json');

// codes shared with kernels/cuda/lav.h
export const DTYPE_CODES: Record<DType, number> = { float32: 0, float64: 1, int32: 2, int64: 3, bfloat16: 4, float16: 5, bool: 6 };
export const UNARY_OPS: readonly UnaryOp[] = ['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'silu',
  'gelu', 'gelu_tanh', 'relu', 'erf', 'erfinv', 'sign', 'floor', 'ceil', 'round', 'reciprocal', 'square', 'not'];
export const BINARY_OPS: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or'];
/** binaryScalar's codes: the binary ops, then the scalar-first forms s - x, s / x, s ** x (lav.h LAV_RSUB..). */
export const BINARY_SCALAR_CODES: Readonly<Record<string, number>> = Object.fromEntries([...BINARY_OPS, 'rsub', 'rdiv', 'rpow'].map((o, i) => [o, i]));
export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'max', 'min', 'prod', 'argmax', 'argmin'];

export interface ProbeInfo { code: number; name: string; message: string; count: number; driverVersion: number; runtimeVersion: number }
export interface DeviceInfo { index: number; name: string; major: number; minor: number; sms: number; totalMem: number; cublasPath: string; cublasVersion: number }
export interface MemStats { inUse: number; cached: number; reserved: number; peak: number; hits: number; misses: number; liveBlocks: number }
export interface AddonBuildInfo { kernels: string; cudartVersion: number; archs?: string; protoCheck: { cublas: string; nccl: string } }

/** The addon's exports (bindings/addon.cc). Descriptors are Float64Arrays packed by `Pack`; elementwise
 *  ones (fill, copy, unary, binary, binaryScalar, where, siluBackward, swiglu*, modulate, gatedAdd) start with the path. */
export interface CudaAddon {
  probe(): ProbeInfo;
  init(device: number, libDirs: string[]): DeviceInfo;
  alloc(bytes: number): number;
  free(ptr: number): void;
  memStats(): MemStats;
  emptyCache(): void;
  write(ptr: number, byteOffset: number, data: ArrayBufferView): void;
  read(ptr: number, byteOffset: number, bytes: number): ArrayBuffer;
  synchronize(): void;
  fill(desc: Float64Array, value: number): void;
  copy(desc: Float64Array, accumulate: number): void;
  unary(op: number, desc: Float64Array): void;
  binary(op: number, desc: Float64Array): void;
  binaryScalar(op: number, desc: Float64Array, scalar: number): void;
  swiglu(desc: Float64Array): void;
  swigluBackward(desc: Float64Array, hasDa: number, hasDb: number): void;
  modulate(desc: Float64Array): void;
  gatedAdd(desc: Float64Array): void;
  where(desc: Float64Array): void;
  reduce(op: number, desc: Float64Array): void;
  gather(desc: Float64Array, axisStride: number, axisSize: number): void;
  scatterAdd(desc: Float64Array, axisStride: number, axisSize: number): void;
  random(desc: Float64Array, dist: number, seed: number, offset: number): void;
  gemm(desc: Float64Array): void;
  rotary(desc: Float64Array, inverse: number): void;
  softmax(desc: Float64Array, log: number, scale: number): void;
  softmaxBackward(desc: Float64Array, scale: number): void;
  siluBackward(desc: Float64Array): void;
  layerNorm(desc: Float64Array, eps: number): void;
  layerNormBackward(desc: Float64Array): void;
  attention(desc: Float64Array, scale: number, causal: number): void;
  attentionBackward(desc: Float64Array, scale: number, causal: number): void;
  adamwMulti(desc: Float64Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, gradScale: number): void;
  adamw(desc: Float64Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2sqrt: number, gradScale: number): void;
  buildInfo(): AddonBuildInfo;
  selfTest(): string;
  ncclLoad(libDirs: string[]): { version: number; path: string };
  ncclGetUniqueId(): Buffer;
  ncclCommInitRank(nranks: number, id: Buffer, rank: number): number;
  ncclCommDestroy(comm: number): void;
  ncclAllReduce(send: number, recv: number, count: number, dtype: number, op: number, comm: number): void;
  ncclReduceScatter(send: number, recv: number, recvCount: number, dtype: number, op: number, comm: number): void;
  ncclAllGather(send: number, recv: number, sendCount: number, dtype: number, comm: number): void;
  ncclBroadcast(send: number, recv: number, count: number, dtype: number, root: number, comm: number): void;
  ncclGroupStart(): void;
  ncclGroupEnd(): void;
  /** ncclCommAbort: the handle is gone afterwards, even if a collective was stuck on a dead peer. */
  ncclCommAbort(comm: number): void;
  /** ncclCommGetAsyncError: null, or the asynchronous error NCCL's threads found. */
  ncclCommGetAsyncError(comm: number): { code: number; message: string } | null;
  /** An event recorded on the stream after the work enqueued so far. */
  markerRecord(): number;
  /** Whether the work before the marker has finished (cudaEventQuery: never blocks). */
  markerDone(marker: number): boolean;
  markerDestroy(marker: number): void;
}

export function addonPath(): string {
  return process.env.LAVENDER_CUDA_ADDON || DEFAULT_ADDON_PATH;
}

/** What scripts/build-native.mjs recorded about the last native build, or null. */
export interface BuildRecord {
  status: 'built' | 'skipped' | 'failed';
  reason?: string;
  addon?: string;
  nvcc?: string;
  archs?: string;
  seconds?: number;
  date?: string;
  protoCheck?: { cublas: string; nccl: string };
  headerSearch?: string[];
}

export function readBuildRecord(): BuildRecord | null {
  try {
    return JSON.parse(readFileSync(BUILD_RECORD_PATH, 'utf8')) as BuildRecord;
  } catch {
    return null;
  }
}

let cached: { addon: CudaAddon | null; reason?: string } | null = null;

/** The addon, or null with the reason it is not there (not built, or failed to load). */
export function loadAddon(): { addon: CudaAddon | null; reason?: string } {
  if (cached && cached.addon) return cached;
  const path = addonPath();
  if (!existsSync(path)) {
    const rec = path === DEFAULT_ADDON_PATH ? readBuildRecord() : null;
    const why = rec && rec.status !== 'built' && rec.reason ? `: ${rec.reason}` : process.env.LAVENDER_CUDA_ADDON ? ` (LAVENDER_CUDA_ADDON=${path})` : ' (run `npm run build:native` on a machine with nvcc)';
    cached = { addon: null, reason: `not built: no native addon at ${path}${why}` };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    cached = { addon: require(path) as CudaAddon };
  } catch (e) {
    cached = { addon: null, reason: `the native addon at ${path} failed to load: ${(e as Error).message}` };
  }
  return cached;
}

/** Forget the cached load result (tests that change LAVENDER_CUDA_ADDON). */
export function resetAddonCache(): void {
  cached = null;
}

/** Directories searched for cuBLAS/NCCL before the system paths: LAVENDER_CUDA_LIB_PATH (colon separated). */
export function libDirs(): string[] {
  return (process.env.LAVENDER_CUDA_LIB_PATH ?? '').split(':').filter(Boolean);
}

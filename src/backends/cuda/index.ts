// The cuda backend: every primitive of the seam plus fused kernels, over the native addon (bindings/ +
// kernels/cuda/). Buffers are device allocations from the addon's caching allocator, freed when the
// core's refcount says so; all work is enqueued on one stream and `read` is the only synchronisation.
//
// dtypes on the device: float32, float64 (cuBLAS DGEMM, double kernels: for the gradient checker and
// the suite), bfloat16 and float16 (stored natively, computed in float32: matmuls accumulate in float32),
// int32, int64 (stored as real 64-bit integers; `read` returns them as float64, like the cpu backend),
// bool (one byte). Elementwise kernels are compiled per op and dtype (kernels/cuda/map.cuh): float32 /
// bf16 / f16 operands compute in float32 with 128-bit vector accesses where contiguous and 32-bit index
// math where it fits (plan.ts picks the path); float64 / integer operands go through the generic kernel in
// double, so integer results match the cpu reference. Scalars travel as kernel arguments (binaryScalar).
// gather/scatterAdd never synchronise: a bad index is recorded on the device and thrown, naming the op,
// at the next read or synchronize.
import type { AdamWHyper, AdamWParam, Backend, BackendBuffer, BinaryOp, FusedKernels, ReduceOp, UnaryOp, View } from '../backend.js';
import type { BackendEntry } from '../registry.js';
import type { DType, TypedArray } from '../../tensor/dtype.js';
import type { Distribution } from '../../tensor/random.js';
import { contiguousStrides, numel } from '../../tensor/shape.js';
import { BINARY_OPS, BINARY_SCALAR_CODES, DTYPE_CODES, REDUCE_OPS, UNARY_OPS, libDirs, loadAddon, type CudaAddon, type DeviceInfo, type MemStats, type ProbeInfo } from './addon.js';
import { MAX_DIMS, coalesce, planElementwise, planGemm, scalarFirstOp } from './plan.js';

const BYTES: Record<DType, number> = { float32: 4, float64: 8, int32: 4, int64: 8, bfloat16: 2, float16: 2, bool: 1 };
const GEMM_DTYPES = new Set<DType>(['float32', 'float64', 'bfloat16', 'float16']);
/** Tensors per multi-tensor AdamW launch: LAV_ADAMW_MULTI in kernels/cuda/lav.h. */
const ADAMW_MULTI = 48;

export class CudaBuffer implements BackendBuffer {
  readonly backend = 'cuda';
  freed = false;
  constructor(readonly dtype: DType, readonly size: number, readonly ptr: number, readonly bytes: number) {}
}

/** The cuda backend object, with device facts and allocator statistics beyond the Backend interface. */
export interface CudaBackend extends Backend {
  readonly device: DeviceInfo;
  memStats(): MemStats;
  synchronize(): void;
  /** Return cached blocks to the driver. */
  emptyCache(): void;
  /** Use TF32 tensor cores for float32 matmuls (default off, like torch; LAVENDER_CUDA_TF32=1). */
  tf32: boolean;
  /** The addon, for nccl.ts and benchmarks. */
  readonly addon: CudaAddon;
}

/** Why the backend cannot run, in words, from the addon's probe. */
export function describeProbe(p: ProbeInfo): string | null {
  if (p.code === 0) return p.count > 0 ? null : 'no CUDA device (cudaGetDeviceCount found 0)';
  const what = p.code === 35 ? 'no CUDA driver' : p.code === 100 ? 'no CUDA device' : 'CUDA unavailable';
  return `${what} (cudaGetDeviceCount returned ${p.code}: ${p.message})`;
}

let probed: { available: boolean; reason?: string } | null = null;

export function probeCuda(): { available: boolean; reason?: string } {
  if (probed) return probed;
  const { addon, reason } = loadAddon();
  if (!addon) return { available: false, reason };
  const why = describeProbe(addon.probe());
  probed = why ? { available: false, reason: why } : { available: true };
  return probed;
}

/** Packs shapes and strided operands into the Float64Array descriptors bindings/addon.cc reads. */
class Pack {
  private a: number[] = [];
  num(...v: number[]): this {
    this.a.push(...v);
    return this;
  }
  shape(s: readonly number[]): this {
    if (s.length > MAX_DIMS) throw new Error(`cuda: a view with ${s.length} non-mergeable dims exceeds the kernels' ${MAX_DIMS}`);
    this.a.push(s.length, ...s);
    return this;
  }
  arg(buf: BackendBuffer, offset: number, strides: readonly number[] = []): this {
    const b = buf as CudaBuffer;
    this.a.push(b.ptr, DTYPE_CODES[b.dtype], offset, ...strides);
    return this;
  }
  done(): Float64Array {
    return Float64Array.from(this.a);
  }
}

function toDeviceArray(dtype: DType, data: ArrayLike<number>): ArrayBufferView {
  switch (dtype) {
    case 'float32': return data instanceof Float32Array ? data : Float32Array.from(data);
    case 'float64': return data instanceof Float64Array ? data : Float64Array.from(data);
    case 'int32': return data instanceof Int32Array ? data : Int32Array.from(data);
    case 'int64': {
      const out = new BigInt64Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = Math.trunc(data[i]!);
        out[i] = Number.isFinite(v) ? BigInt(v) : 0n;
      }
      return out;
    }
    case 'bfloat16': case 'float16': return data instanceof Uint16Array ? data : Uint16Array.from(data);
    case 'bool': {
      const out = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = data[i] ? 1 : 0;
      return out;
    }
  }
}

function fromDevice(dtype: DType, ab: ArrayBuffer): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(ab);
    case 'float64': return new Float64Array(ab);
    case 'int32': return new Int32Array(ab);
    case 'int64': return Float64Array.from(new BigInt64Array(ab), (x) => Number(x));
    case 'bfloat16': case 'float16': return new Uint16Array(ab);
    case 'bool': return new Uint8Array(ab);
  }
}

function rowsCols(v: View): [number, number] {
  const cols = v.shape[v.shape.length - 1] ?? 1;
  const n = numel(v.shape);
  return [cols === 0 ? 0 : n / cols, cols];
}

export function createCudaBackend(): CudaBackend {
  const { addon, reason } = loadAddon();
  if (!addon) throw new Error(`cuda: ${reason}`);
  const why = describeProbe(addon.probe());
  if (why) throw new Error(`cuda: ${why}`);
  const deviceIndex = Number(process.env.LAVENDER_CUDA_DEVICE ?? 0);
  const device = addon.init(deviceIndex, libDirs());
  let live = 0;

  const buf = (v: View | BackendBuffer, op: string): CudaBuffer => {
    const b = ('buf' in v ? v.buf : v) as CudaBuffer;
    if (b.backend !== 'cuda') throw new Error(`cuda ${op}: buffer belongs to backend '${b.backend}'`);
    if (b.freed) throw new Error(`cuda ${op}: use of a freed ${b.dtype} buffer of ${b.size} elements`);
    return b;
  };

  const alloc = (dtype: DType, size: number): CudaBuffer => {
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`cuda alloc: bad size ${size}`);
    const bytes = size * BYTES[dtype];
    const ptr = addon.alloc(bytes);
    live++;
    return new CudaBuffer(dtype, size, ptr, bytes);
  };
  const release = (b: CudaBuffer): void => {
    if (b.freed) throw new Error(`cuda: double free of a ${b.dtype} buffer of ${b.size} elements`);
    b.freed = true;
    live--;
    addon.free(b.ptr);
  };
  const contiguous = (buffer: CudaBuffer, shape: readonly number[]): View => ({ buf: buffer, shape, strides: contiguousStrides(shape), offset: 0 });

  /** The descriptor of an elementwise launch over `shape` ([path, shape, args]); null when empty. */
  const ew = (shape: readonly number[], views: readonly View[]): Float64Array | null => {
    if (numel(shape) === 0) return null;
    const plan = planElementwise(shape, views.map((v) => {
      const b = v.buf as CudaBuffer;
      return { strides: v.strides, offset: v.offset, ptr: b.ptr, bytes: BYTES[b.dtype] };
    }));
    const p = new Pack().num(plan.path).shape(plan.shape);
    views.forEach((v, k) => p.arg(v.buf, v.offset, plan.strides[k]));
    return p.done();
  };

  const fill = (dst: View, value: number): void => {
    buf(dst, 'fill');
    const d = ew(dst.shape, [dst]);
    if (d) addon.fill(d, value);
  };

  const copy = (src: View, dst: View, accumulate: boolean): void => {
    buf(src, 'copy'); buf(dst, 'copy');
    const d = ew(src.shape, [src, dst]);
    if (d) addon.copy(d, accumulate ? 1 : 0);
  };

  /** A contiguous copy of a view in `dtype` (a temporary the caller frees). */
  const materialise = (v: View, dtype: DType): View => {
    const t = contiguous(alloc(dtype, numel(v.shape)), v.shape);
    copy(v, t, false);
    return t;
  };

  const matmul = (a: View, b: View, out: View): void => {
    buf(a, 'matmul'); buf(b, 'matmul'); const O0 = buf(out, 'matmul');
    const [batch, M, K] = a.shape as [number, number, number];
    const N = b.shape[2]!;
    if (batch * M * N === 0) return;
    const dt: DType = GEMM_DTYPES.has(O0.dtype) ? O0.dtype : 'float64';
    const temps: View[] = [];
    const tmp = (v: View): View => { temps.push(v); return v; };
    try {
      let A = a.buf.dtype === dt ? a : tmp(materialise(a, dt));
      let B = b.buf.dtype === dt ? b : tmp(materialise(b, dt));
      const O = O0.dtype === dt ? out : tmp(contiguous(alloc(dt, batch * M * N), out.shape));
      if (K === 0) fill(O, 0);
      else {
        let plan = planGemm(A, B, O.offset);
        for (let tries = 0; tries < 2 && typeof plan === 'string'; tries++) {
          if (plan === 'a') A = tmp(materialise(A, dt));
          else B = tmp(materialise(B, dt));
          plan = planGemm(A, B, O.offset);
        }
        if (typeof plan === 'string') throw new Error(`cuda matmul: no cuBLAS layout for operand ${plan} even after a contiguous copy`);
        const bytes = BYTES[dt];
        const p = plan;
        addon.gemm(new Pack().num(p.transa, p.transb, p.m, p.n, p.k,
          (B.buf as CudaBuffer).ptr + p.aOffset * bytes, p.lda, p.strideA,
          (A.buf as CudaBuffer).ptr + p.bOffset * bytes, p.ldb, p.strideB,
          (O.buf as CudaBuffer).ptr + O.offset * bytes, p.ldc, p.strideC,
          p.batch, DTYPE_CODES[dt], backend.tf32 ? 1 : 0).done());
      }
      if (O !== out) copy(O, out, false);
    } finally {
      for (const t of temps) release(t.buf as CudaBuffer);
    }
  };

  const reduce = (op: ReduceOp, x: View, axes: readonly number[], out: View): void => {
    buf(x, op); buf(out, op);
    const kept = x.shape.map((_, d) => d).filter((d) => !axes.includes(d));
    const outer = coalesce(kept.map((d) => x.shape[d]!), [kept.map((d) => x.strides[d]!), kept.map((d) => out.strides[d]!)]);
    const inner = coalesce(axes.map((d) => x.shape[d]!), [axes.map((d) => x.strides[d]!)]);
    if (numel(outer.shape) === 0) return;
    addon.reduce(REDUCE_OPS.indexOf(op), new Pack().shape(outer.shape).shape(inner.shape)
      .arg(x.buf, x.offset, outer.strides[0]).arg(x.buf, 0, inner.strides[0]).arg(out.buf, out.offset, outer.strides[1]).done());
  };

  const indexed = (kind: 'gather' | 'scatterAdd', base: View, axis: number, index: View, other: View): void => {
    buf(base, kind); buf(index, kind); buf(other, kind);
    const baseStrides = base.strides.map((s, d) => (d === axis ? 0 : s));
    const c = coalesce(index.shape, [baseStrides, index.strides, other.strides]);
    if (numel(c.shape) === 0) return;
    const p = new Pack().shape(c.shape).arg(base.buf, base.offset, c.strides[0]).arg(index.buf, index.offset, c.strides[1]).arg(other.buf, other.offset, c.strides[2]).done();
    if (kind === 'gather') addon.gather(p, base.strides[axis]!, base.shape[axis]!);
    else addon.scatterAdd(p, base.strides[axis]!, base.shape[axis]!);
  };

  /** The fused attention kernels' reach: [B, H, T, D] views with unit stride on D, one float dtype, D <= 128. */
  const attentionFits = (vs: View[]): boolean => {
    if (vs.some((t) => t.shape.length !== 4 || (t.strides[3] !== 1 && t.shape[3] !== 1))) return false;
    const [q, k, v] = vs as [View, View, View];
    const [B, H, , D] = q.shape as [number, number, number, number];
    const Tk = k.shape[2]!;
    const dts = new Set(vs.map((t) => buf(t, 'attention').dtype));
    if (D > 128 || D < 1 || dts.size !== 1 || ![...dts].every((d) => d === 'float32' || d === 'bfloat16' || d === 'float16')) return false;
    return !(B > 65535 || H > 65535 || v.shape[3] !== D || k.shape[3] !== D || v.shape[2] !== Tk);
  };

  /** lav_modulate / lav_gated_add (kernels/cuda/elementwise.cu adaln_map): float32 x and out, the other two of one float dtype. */
  const adalnMap = (op: string, vs: [View, View, View, View], launch: (d: Float64Array) => void): boolean => {
    const [X, A, B, O] = vs.map((v) => buf(v, op));
    if (X!.dtype !== 'float32' || O!.dtype !== 'float32' || A!.dtype !== B!.dtype || !['float32', 'bfloat16', 'float16'].includes(A!.dtype)) return false;
    const d = ew(vs[3].shape, vs);
    if (d) launch(d);
    return true;
  };

  const fused: Partial<FusedKernels> = {
    softmax(x, out, log, scale) {
      const [rows, cols] = rowsCols(x);
      addon.softmax(new Pack().num(rows, cols).arg(buf(x, 'softmax'), x.offset).arg(buf(out, 'softmax'), out.offset).done(), log ? 1 : 0, scale);
    },
    softmaxBackward(y, g, out, scale) {
      const [rows, cols] = rowsCols(y);
      addon.softmaxBackward(new Pack().num(rows, cols).arg(buf(y, 'softmaxBackward'), y.offset).arg(buf(g, 'softmaxBackward'), g.offset)
        .arg(buf(out, 'softmaxBackward'), out.offset).done(), scale);
    },
    siluBackward(x, g, out) {
      for (const v of [x, g, out]) buf(v, 'siluBackward');
      const d = ew(out.shape, [x, g, out]);
      if (d) addon.siluBackward(d);
    },
    swiglu(a, b, out) {
      for (const v of [a, b, out]) buf(v, 'swiglu');
      const d = ew(out.shape, [a, b, out]);
      if (d) addon.swiglu(d);
      return true;
    },
    swigluBackward(a, b, g, da, db) {
      for (const v of [a, b, g, da ?? a, db ?? a]) buf(v, 'swigluBackward');
      const d = ew(a.shape, [a, b, g, da ?? a, db ?? a]);
      if (d) addon.swigluBackward(d, da ? 1 : 0, db ? 1 : 0);
      return true;
    },
    // kernels/cuda/rotary.cu: contiguous x [B, T, H, hd] and cos/sin [T, hd/2] of x's float dtype
    rotary(x, cos, sin, out, inverse) {
      const [X, C, S, O] = [x, cos, sin, out].map((v) => buf(v, 'rotary'));
      if (![C, S, O].every((b) => b!.dtype === X!.dtype) || !['float32', 'bfloat16', 'float16'].includes(X!.dtype)) return false;
      const [B, T, H, hd] = x.shape as [number, number, number, number];
      if (B * T * H * hd === 0) return true;
      addon.rotary(new Pack().num(B * T * H, H, T, hd).arg(X, x.offset).arg(C, cos.offset).arg(S, sin.offset).arg(O, out.offset).done(), inverse ? 1 : 0);
      return true;
    },
    modulate: (x, scale, shift, out) => adalnMap('modulate', [x, scale, shift, out], (d) => addon.modulate(d)),
    gatedAdd: (x, gate, y, out) => adalnMap('gatedAdd', [x, gate, y, out], (d) => addon.gatedAdd(d)),
    layerNorm(x, w, b, eps, out, mean, rstd) {
      const [rows, cols] = rowsCols(x);
      const X = buf(x, 'layerNorm');
      addon.layerNorm(new Pack().num(rows, cols, w ? 1 : 0, b ? 1 : 0).arg(X, x.offset)
        .arg(w ? buf(w, 'layerNorm') : X, w?.offset ?? 0).arg(b ? buf(b, 'layerNorm') : X, b?.offset ?? 0)
        .arg(buf(out, 'layerNorm'), out.offset).arg(buf(mean, 'layerNorm'), mean.offset).arg(buf(rstd, 'layerNorm'), rstd.offset).done(), eps);
    },
    // kernels/cuda/reduce.cu layer_norm_bwd_k: not yet run on a GPU
    layerNormBackward(x, mean, rstd, weight, g, dx, dweight, dbias) {
      const [rows, cols] = rowsCols(x);
      const X = buf(x, 'layerNormBackward');
      const arg = (v: View | null, p: Pack) => p.arg(v ? buf(v, 'layerNormBackward') : X, v?.offset ?? 0);
      const p = new Pack().num(rows, cols, weight ? 1 : 0, dweight ? 1 : 0, dbias ? 1 : 0, mean ? 1 : 0);
      for (const v of [x, mean, rstd, weight, g, dx, dweight, dbias]) arg(v, p);
      addon.layerNormBackward(p.done());
    },
    attention(q, k, v, out, scale, lse, causal) {
      if (!attentionFits([q, k, v, out])) return false;
      if (lse && (buf(lse, 'attention').dtype !== 'float32')) return false;
      const [B, H, Tq, D] = q.shape as [number, number, number, number];
      const p = new Pack().num(B, H, Tq, k.shape[2]!, D, lse ? 1 : 0);
      for (const t of [q, k, v, out]) p.arg(t.buf, t.offset, t.strides.slice(0, 3));
      p.arg(lse ? lse.buf : q.buf, lse?.offset ?? 0);
      addon.attention(p.done(), scale, causal ? 1 : 0);
      return true;
    },
    // kernels/cuda/attention_bwd.cu: not yet run on a GPU; LAVENDER_CUDA_ATTENTION_BACKWARD=0 falls back
    // to the composed backward (src/ops/nn.ts), which the GPU script's tests compare it with
    attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, scale, causal) {
      if (process.env.LAVENDER_CUDA_ATTENTION_BACKWARD === '0') return false;
      if (!attentionFits([q, k, v, out, dout, dq, dk, dv])) return false;
      const L = buf(lse, 'attentionBackward');
      const [B, H, Tq, D] = q.shape as [number, number, number, number];
      const dense = contiguousStrides(lse.shape).every((st, d) => st === lse.strides[d] || lse.shape[d] === 1);
      if (L.dtype !== 'float32' || !dense || numel(lse.shape) !== B * H * Tq) return false;
      const delta = alloc('float32', B * H * Tq);
      try {
        const p = new Pack().num(B, H, Tq, k.shape[2]!, D);
        for (const t of [q, k, v, out]) p.arg(t.buf, t.offset, t.strides.slice(0, 3));
        p.arg(lse.buf, lse.offset);
        for (const t of [dout, dq, dk, dv]) p.arg(t.buf, t.offset, t.strides.slice(0, 3));
        p.arg(delta, 0);
        addon.attentionBackward(p.done(), scale, causal ? 1 : 0);
      } finally {
        release(delta);
      }
      return true;
    },
    adamw(params: readonly AdamWParam[], s: AdamWHyper) {
      // the kernel implements decoupled decay only; Adam's L2 penalty is decomposed by ops/
      if (!s.decoupled && s.weightDecay !== 0) return false;
      const gs = s.gradScale ?? 1;
      // float32 p, g, m, v (optionally a bf16 copy of p), contiguous: the multi-tensor kernel, up to
      // ADAMW_MULTI tensors a launch; anything else one launch per tensor
      const dense = (t: View) => t.strides.every((st, d) => st === contiguousStrides(t.shape)[d] || t.shape[d] === 1);
      const multi: AdamWParam[][] = [[], []];  // without / with a bf16 copy
      for (const e of params) {
        const { p, g, m, v, step, pLow } = e;
        const f32 = [p, g, m, v].every((t) => buf(t, 'adamw').dtype === 'float32' && dense(t));
        if (f32 && (!pLow || (buf(pLow, 'adamw').dtype === 'bfloat16' && dense(pLow)))) {
          multi[pLow ? 1 : 0]!.push(e);
          continue;
        }
        const n = numel(p.shape);
        const pk = new Pack().num(n, pLow ? 1 : 0);
        for (const t of [p, g, m, v]) pk.arg(buf(t, 'adamw'), t.offset);
        pk.arg(pLow ? buf(pLow, 'adamw') : p.buf, pLow?.offset ?? 0);
        addon.adamw(pk.done(), s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, 1 - s.beta1 ** step, Math.sqrt(1 - s.beta2 ** step), gs);
      }
      const addr = (t: View) => (t.buf as CudaBuffer).ptr + t.offset * BYTES[t.buf.dtype];
      multi.forEach((list, low) => {
        for (let i = 0; i < list.length; i += ADAMW_MULTI) {
          const chunk = list.slice(i, i + ADAMW_MULTI);
          const pk = new Pack().num(chunk.length, low);
          for (const { p, g, m, v, step, pLow } of chunk) {
            pk.num(addr(p), addr(g), addr(m), addr(v), pLow ? addr(pLow) : 0, numel(p.shape), 1 - s.beta1 ** step, Math.sqrt(1 - s.beta2 ** step));
          }
          addon.adamwMulti(pk.done(), s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, gs);
        }
      });
      return true;
    },
  };

  const backend: CudaBackend = {
    name: 'cuda',
    available: true,
    lowPrecision: ['bfloat16', 'float16'],
    // 2^26 floats (256 MiB) of conv columns at once: per-chunk launches, not cache size, are the cost here
    convChunkFloats: 1 << 26,
    device,
    deviceName: device.name,
    addon,
    tf32: process.env.LAVENDER_CUDA_TF32 === '1',
    alloc,
    free: (b) => release(buf(b, 'free')),
    write(b, data, offset = 0) {
      const c = buf(b, 'write');
      if (offset + data.length > c.size) throw new Error(`cuda write: ${data.length} elements at offset ${offset} overflow a buffer of ${c.size}`);
      addon.write(c.ptr, offset * BYTES[c.dtype], toDeviceArray(c.dtype, data));
    },
    read(b) {
      const c = buf(b, 'read');
      return fromDevice(c.dtype, addon.read(c.ptr, 0, c.bytes));
    },
    liveBuffers: () => live,
    // the caching allocator's bytes in use (rounded to its size classes), and their high-water mark
    liveBytes: () => addon.memStats().inUse,
    peakBytes: () => addon.memStats().peak,
    memStats: () => addon.memStats(),
    synchronize: () => addon.synchronize(),
    emptyCache: () => addon.emptyCache(),
    fill,
    copy,
    unary(op: UnaryOp, x, out) {
      buf(x, op); buf(out, op);
      const d = ew(x.shape, [x, out]);
      if (d) addon.unary(UNARY_OPS.indexOf(op), d);
    },
    binary(op: BinaryOp, a, b, out) {
      buf(a, op); buf(b, op); buf(out, op);
      const d = ew(out.shape, [a, b, out]);
      if (d) addon.binary(BINARY_OPS.indexOf(op), d);
    },
    binaryScalar(op: BinaryOp, a, s, out, scalarFirst) {
      buf(a, op); buf(out, op);
      const d = ew(out.shape, [a, out]);
      if (d) addon.binaryScalar(BINARY_SCALAR_CODES[scalarFirst ? scalarFirstOp(op) : op]!, d, s);
    },
    where(c, a, b, out) {
      for (const v of [c, a, b, out]) buf(v, 'where');
      const d = ew(out.shape, [c, a, b, out]);
      if (d) addon.where(d);
    },
    reduce,
    matmul,
    gather: (x, axis, index, out) => indexed('gather', x, axis, index, out),
    scatterAdd: (dst, axis, index, src) => indexed('scatterAdd', dst, axis, index, src),
    random(out, dist: Distribution, seed, offset) {
      buf(out, 'random');
      const c = coalesce(out.shape, [out.strides]);
      if (numel(c.shape) === 0) return;
      addon.random(new Pack().shape(c.shape).arg(out.buf, out.offset, c.strides[0]).done(), dist === 'normal' ? 1 : 0, seed, offset);
    },
    fused,
  };
  return backend;
}

/** The registry entry: built when the addon file exists; available when a device answers. */
export const cudaEntry: BackendEntry = {
  name: 'cuda',
  get built() {
    return loadAddon().addon !== null;
  },
  create: createCudaBackend,
  probe: probeCuda,
};

// gather / scatterAdd (torch semantics) and the Philox4x32-10 random stream of src/tensor/random.ts.
#include "common.cuh"

namespace {

// the first bad index wins; the host reads the record at its next synchronisation (no sync here)
LAV_DEV void report(LavIndexError* err, int op, int64_t v, int64_t axSize) {
  if (atomicExch(&err->flag, 1) == 0) {
    err->op = op;
    err->value = v;
    err->axisSize = axSize;
  }
}

__global__ void gather_k(LavShape sh, LavArg x, int64_t axStride, int64_t axSize, LavArg idx, LavArg o, LavIndexError* err) {
  LAV_GRID_LOOP(i, sh.n) {
    int64_t xo = x.offset, io = idx.offset, oo = o.offset, j = i;
    for (int k = sh.ndim - 1; k >= 0; k--) {
      int64_t q = j / sh.dims[k], r = j - q * sh.dims[k];
      xo += r * x.strides[k]; io += r * idx.strides[k]; oo += r * o.strides[k]; j = q;
    }
    double fv = lav_ld<double>(idx.ptr, idx.dtype, io);
    int64_t v = (int64_t)fv;
    if (!(fv >= 0) || (double)v != fv || v >= axSize) { report(err, 0, (int64_t)fv, axSize); continue; }
    if (x.dtype == LAV_F64 || x.dtype == LAV_I64 || x.dtype == LAV_I32)
      lav_st<double>(o.ptr, o.dtype, oo, lav_ld<double>(x.ptr, x.dtype, xo + v * axStride));
    else
      lav_st<float>(o.ptr, o.dtype, oo, lav_ld<float>(x.ptr, x.dtype, xo + v * axStride));
  }
}

LAV_DEV void atomic_add(void* p, int dt, int64_t i, double v) {
  switch (dt) {
    case LAV_F32: atomicAdd((float*)p + i, (float)v); return;
    case LAV_F64: atomicAdd((double*)p + i, v); return;
    case LAV_I32: atomicAdd((int*)p + i, (int)trunc(v)); return;
    case LAV_I64: atomicAdd((unsigned long long*)p + i, (unsigned long long)(long long)trunc(v)); return;
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    case LAV_BF16: atomicAdd((__nv_bfloat16*)p + i, __float2bfloat16_rn((float)v)); return;
#endif
    case LAV_F16: atomicAdd((__half*)p + i, __float2half_rn((float)v)); return;
    default: if (v != 0) ((unsigned char*)p)[i] = 1; return;
  }
}

__global__ void scatter_add_k(LavShape sh, LavArg d, int64_t axStride, int64_t axSize, LavArg idx, LavArg src, LavIndexError* err) {
  LAV_GRID_LOOP(i, sh.n) {
    int64_t dof = d.offset, io = idx.offset, so = src.offset, j = i;
    for (int k = sh.ndim - 1; k >= 0; k--) {
      int64_t q = j / sh.dims[k], r = j - q * sh.dims[k];
      dof += r * d.strides[k]; io += r * idx.strides[k]; so += r * src.strides[k]; j = q;
    }
    double fv = lav_ld<double>(idx.ptr, idx.dtype, io);
    int64_t v = (int64_t)fv;
    if (!(fv >= 0) || (double)v != fv || v >= axSize) { report(err, 1, (int64_t)fv, axSize); continue; }
    atomic_add(d.ptr, d.dtype, dof + v * axStride, lav_ld<double>(src.ptr, src.dtype, so));
  }
}

// Philox4x32-10, exactly as src/tensor/random.ts
LAV_DEV void philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1, uint32_t* out) {
#pragma unroll
  for (int r = 0; r < 10; r++) {
    uint32_t hi0 = __umulhi(0xd2511f53u, c0), lo0 = 0xd2511f53u * c0;
    uint32_t hi1 = __umulhi(0xcd9e8d57u, c2), lo1 = 0xcd9e8d57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

__global__ void random_k(LavShape sh, LavArg o, int dist, uint64_t seed, uint64_t offset) {
  const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  LAV_GRID_LOOP(i, sh.n) {
    uint64_t c = offset + (uint64_t)i;
    uint32_t x[4];
    philox((uint32_t)c, (uint32_t)(c >> 32), 0, 0, k0, k1, x);
    double v;
    if (dist == 0) {
      v = (double)(x[0] >> 8) * 5.9604644775390625e-08;  // 2^-24
    } else {
      double u1 = ((double)(x[0] >> 8) + 1.0) * 5.9604644775390625e-08;
      double u2 = (double)(x[1] >> 8) * 5.9604644775390625e-08;
      v = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    }
    lav_st<double>(o.ptr, o.dtype, lav_offset(sh, o, i), v);
  }
}

constexpr int T = 256;

}  // namespace

extern "C" cudaError_t lav_gather(LavShape sh, LavArg x, int64_t axStride, int64_t axSize, LavArg idx, LavArg o, LavIndexError* err, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  gather_k<<<lav_blocks(sh.n, T), T, 0, s>>>(sh, x, axStride, axSize, idx, o, err);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_scatter_add(LavShape sh, LavArg d, int64_t axStride, int64_t axSize, LavArg idx, LavArg src, LavIndexError* err, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  scatter_add_k<<<lav_blocks(sh.n, T), T, 0, s>>>(sh, d, axStride, axSize, idx, src, err);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_random(LavShape sh, LavArg o, int dist, uint64_t seed, uint64_t offset, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  random_k<<<lav_blocks(sh.n, T), T, 0, s>>>(sh, o, dist, seed, offset);
  return cudaGetLastError();
}

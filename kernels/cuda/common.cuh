// Device helpers shared by the kernels: dtype-generic loads and stores (torch's cast rules: truncation
// toward zero for integers, != 0 for bool, round-to-nearest-even for bfloat16/float16 through float32),
// strided offsets, and the launch-error convention.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include "lav.h"

#define LAV_DEV __device__ __forceinline__

template <class C>
LAV_DEV C lav_ld(const void* p, int dt, int64_t i) {
  switch (dt) {
    case LAV_F32: return (C)((const float*)p)[i];
    case LAV_F64: return (C)((const double*)p)[i];
    case LAV_I32: return (C)((const int32_t*)p)[i];
    case LAV_I64: return (C)((const long long*)p)[i];
    case LAV_BF16: return (C)__bfloat162float(((const __nv_bfloat16*)p)[i]);
    case LAV_F16: return (C)__half2float(((const __half*)p)[i]);
    default: return (C)((const unsigned char*)p)[i];
  }
}

template <class C>
LAV_DEV void lav_st(void* p, int dt, int64_t i, C v) {
  switch (dt) {
    case LAV_F32: ((float*)p)[i] = (float)v; return;
    case LAV_F64: ((double*)p)[i] = (double)v; return;
    case LAV_I32: {
      double t = trunc((double)v);
      ((int32_t*)p)[i] = isnan(t) ? 0 : t >= 2147483647.0 ? 2147483647 : t <= -2147483648.0 ? (int32_t)(-2147483647 - 1) : (int32_t)t;
      return;
    }
    case LAV_I64: {
      double t = trunc((double)v);
      ((long long*)p)[i] = isnan(t) ? 0 : t >= 9.2233720368547758e18 ? 0x7fffffffffffffffLL : t <= -9.2233720368547758e18 ? (-0x7fffffffffffffffLL - 1) : (long long)t;
      return;
    }
    case LAV_BF16: ((__nv_bfloat16*)p)[i] = __float2bfloat16_rn((float)v); return;
    case LAV_F16: ((__half*)p)[i] = __float2half_rn((float)v); return;
    default: ((unsigned char*)p)[i] = (v != (C)0) ? 1 : 0; return;
  }
}

/** JavaScript truthiness of a number: non-zero and not NaN. */
template <class C>
LAV_DEV bool lav_truthy(C v) { return v != (C)0 && !isnan((double)v); }

/** Element offset of linear index i (row-major over shape) in a strided operand. */
LAV_DEV int64_t lav_offset(const LavShape& sh, const LavArg& a, int64_t i) {
  int64_t off = a.offset;
  for (int d = sh.ndim - 1; d >= 0; d--) {
    int64_t dim = sh.dims[d];
    int64_t q = i / dim;
    off += (i - q * dim) * a.strides[d];
    i = q;
  }
  return off;
}

/** Offsets of linear index i in several operands at once (one unravel). */
template <int K>
LAV_DEV void lav_offsets(const LavShape& sh, const LavArg* const* a, int64_t i, int64_t* off) {
#pragma unroll
  for (int k = 0; k < K; k++) off[k] = a[k]->offset;
  for (int d = sh.ndim - 1; d >= 0; d--) {
    int64_t dim = sh.dims[d];
    int64_t q = i / dim, r = i - q * dim;
#pragma unroll
    for (int k = 0; k < K; k++) off[k] += r * a[k]->strides[d];
    i = q;
  }
}

/** True when the operand needs double-precision arithmetic to match the cpu reference. */
static inline bool lav_wide(int dt) { return dt == LAV_F64 || dt == LAV_I32 || dt == LAV_I64; }

static inline unsigned lav_blocks(int64_t n, int threads, unsigned cap = 65535u * 16u) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return (unsigned)(b > (int64_t)cap ? cap : b);
}

#define LAV_GRID_LOOP(i, n) for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// block-wide reductions (blockDim.x a multiple of 32, at most 1024)
template <class T>
LAV_DEV T lav_warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
LAV_DEV T lav_warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <class T>
__device__ T lav_block_sum(T v, T* smem /* 32 */) {
  v = lav_warp_sum(v);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) smem[w] = v;
  __syncthreads();
  int nw = (blockDim.x + 31) >> 5;
  v = lane < nw ? smem[lane] : (T)0;
  return lav_warp_sum(v);
}
template <class T>
__device__ T lav_block_max(T v, T* smem /* 32 */) {
  v = lav_warp_max(v);
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) smem[w] = v;
  __syncthreads();
  int nw = (blockDim.x + 31) >> 5;
  v = lane < nw ? smem[lane] : (T)-INFINITY;
  return lav_warp_max(v);
}

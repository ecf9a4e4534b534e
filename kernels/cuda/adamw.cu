// One AdamW step per parameter tensor, torch.optim.AdamW semantics (src/optim/adamw.ts):
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p += -lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
// with float32 master weights and moments (float64 too), gradients of any float dtype (bf16 in mixed
// precision, multiplied by gradScale first), and an optional low-precision copy of the updated weights.
#include "common.cuh"

namespace {

template <class C>
__global__ void adamw_k(int64_t n, LavArg p, LavArg g, LavArg m, LavArg v, LavArg pl, int hasLow, C lr, C b1, C b2, C eps, C wd,
                        C bc1, C bc2sqrt, C gs) {
  LAV_GRID_LOOP(i, n) {
    C pv = lav_ld<C>(p.ptr, p.dtype, p.offset + i);
    C gv = lav_ld<C>(g.ptr, g.dtype, g.offset + i) * gs;
    C mv = lav_ld<C>(m.ptr, m.dtype, m.offset + i) * b1 + ((C)1 - b1) * gv;
    C vv = lav_ld<C>(v.ptr, v.dtype, v.offset + i) * b2 + ((C)1 - b2) * gv * gv;
    pv *= (C)1 - lr * wd;
    pv += (-lr / bc1) * mv / (sqrt(vv) / bc2sqrt + eps);
    lav_st<C>(m.ptr, m.dtype, m.offset + i, mv);
    lav_st<C>(v.ptr, v.dtype, v.offset + i, vv);
    lav_st<C>(p.ptr, p.dtype, p.offset + i, pv);
    if (hasLow) lav_st<C>(pl.ptr, pl.dtype, pl.offset + i, pv);
  }
}

// Multi-tensor form: float32 p, g, m, v (the common case: float32 master weights and gradients), up to
// LAV_ADAMW_MULTI tensors per launch, the table a kernel argument (__grid_constant__: read in place, never
// copied per thread); blockIdx.y picks the tensor and the
// blocks along x stride over it with 128-bit accesses where its length allows. Optional bf16 copy of p.
template <bool LOW>
__global__ void __launch_bounds__(256) adamw_multi_k(const __grid_constant__ LavAdamWTable t, float lr, float b1, float b2, float eps, float wd, float gs) {
  const LavAdamWEntry& e = t.e[blockIdx.y];
  const float decay = 1.f - lr * wd, step = -lr / e.bc1, bc2 = e.bc2sqrt;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  auto one = [&](float& p, float g, float& m, float& v) {
    g *= gs;
    m = m * b1 + (1.f - b1) * g;
    v = v * b2 + (1.f - b2) * g * g;
    p = p * decay + step * m / (sqrtf(v) / bc2 + eps);
  };
  // four elements at a time when every pointer is 16-byte aligned (the allocator's blocks are)
  const bool vec = ((uintptr_t)e.p | (uintptr_t)e.g | (uintptr_t)e.m | (uintptr_t)e.v) % 16 == 0;
  const int64_t n4 = vec ? e.n / 4 : 0;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
    float4 p = ((float4*)e.p)[i], g = ((const float4*)e.g)[i], m = ((float4*)e.m)[i], v = ((float4*)e.v)[i];
    one(p.x, g.x, m.x, v.x); one(p.y, g.y, m.y, v.y); one(p.z, g.z, m.z, v.z); one(p.w, g.w, m.w, v.w);
    ((float4*)e.p)[i] = p; ((float4*)e.m)[i] = m; ((float4*)e.v)[i] = v;
    if (LOW) {
      __nv_bfloat16* l = (__nv_bfloat16*)e.low + 4 * i;
      l[0] = __float2bfloat16_rn(p.x); l[1] = __float2bfloat16_rn(p.y); l[2] = __float2bfloat16_rn(p.z); l[3] = __float2bfloat16_rn(p.w);
    }
  }
  for (int64_t i = 4 * n4 + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < e.n; i += stride) {
    float p = e.p[i], m = e.m[i], v = e.v[i];
    one(p, e.g[i], m, v);
    e.p[i] = p; e.m[i] = m; e.v[i] = v;
    if (LOW) ((__nv_bfloat16*)e.low)[i] = __float2bfloat16_rn(p);
  }
}

}  // namespace

extern "C" cudaError_t lav_adamw_multi(const LavAdamWTable* t, int hasLow, double lr, double b1, double b2, double eps, double wd, double gs,
                                       cudaStream_t s) {
  if (t->count <= 0) return cudaSuccess;
  if (t->count > LAV_ADAMW_MULTI) return cudaErrorInvalidValue;
  int64_t most = 0;
  for (int k = 0; k < t->count; k++) most = t->e[k].n > most ? t->e[k].n : most;
  if (most == 0) return cudaSuccess;
  dim3 grid(lav_blocks((most + 3) / 4, 256, 1024), (unsigned)t->count);
  if (hasLow) adamw_multi_k<true><<<grid, 256, 0, s>>>(*t, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)gs);
  else adamw_multi_k<false><<<grid, 256, 0, s>>>(*t, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)gs);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_adamw(int64_t n, LavArg p, LavArg g, LavArg m, LavArg v, const LavArg* pLow, double lr, double b1, double b2,
                                 double eps, double wd, double bc1, double bc2sqrt, double gs, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  LavArg none{};
  if (p.dtype == LAV_F64)
    adamw_k<double><<<lav_blocks(n, 256), 256, 0, s>>>(n, p, g, m, v, pLow ? *pLow : none, pLow != nullptr, lr, b1, b2, eps, wd, bc1, bc2sqrt, gs);
  else
    adamw_k<float><<<lav_blocks(n, 256), 256, 0, s>>>(n, p, g, m, v, pLow ? *pLow : none, pLow != nullptr, (float)lr, (float)b1, (float)b2,
                                                       (float)eps, (float)wd, (float)bc1, (float)bc2sqrt, (float)gs);
  return cudaGetLastError();
}

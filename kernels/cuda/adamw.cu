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

}  // namespace

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

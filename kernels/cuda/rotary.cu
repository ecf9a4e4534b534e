// Rotary embedding in one pass: x [B, T, H, hd] (contiguous), cos/sin [T, hd/2]; each pair (x0, x1) of
// token t, frequency m becomes (x0 c - x1 s, x0 s + x1 c), or with `inverse` (x0 c + x1 s, x1 c - x0 s),
// the gradient's rotation. Each product and each sum is rounded to the operands' type as the composed ops
// (ops/composite.ts rotateByPrimitives: mul, mul, sub/add) round them, so the bits are the composition's.
#include "map.cuh"

namespace {

template <class V>
__global__ void __launch_bounds__(LAV_THREADS) lav_rotary_k(int64_t pairs, int32_t H, int32_t T, int32_t half, const V* x, const V* c,
                                                            const V* s, V* o, int inverse) {
  auto r = [](float v) { return lav_f(lav_from_f<V>(v)); };
  LAV_GRID_LOOP(p, pairs) {
    const int64_t row = p / half, m = p - row * half, t = (row / H) % T;
    const float x0 = lav_f(x[2 * p]), x1 = lav_f(x[2 * p + 1]);
    const float cv = lav_f(c[t * half + m]), sv = lav_f(s[t * half + m]);
    const float x0c = r(__fmul_rn(x0, cv)), x1s = r(__fmul_rn(x1, sv)), x0s = r(__fmul_rn(x0, sv)), x1c = r(__fmul_rn(x1, cv));
    o[2 * p] = lav_from_f<V>(inverse ? __fadd_rn(x0c, x1s) : __fsub_rn(x0c, x1s));
    o[2 * p + 1] = lav_from_f<V>(inverse ? __fsub_rn(x1c, x0s) : __fadd_rn(x0s, x1c));
  }
}

}  // namespace

extern "C" cudaError_t lav_rotary(int64_t rows, int32_t H, int32_t T, int32_t hd, LavArg x, LavArg cos, LavArg sin, LavArg out, int inverse,
                                  cudaStream_t s) {
  const int64_t pairs = rows * (hd / 2);
  if (pairs == 0) return cudaSuccess;
  if (hd % 2 || H < 1 || T < 1 || cos.dtype != x.dtype || sin.dtype != x.dtype || out.dtype != x.dtype) return cudaErrorInvalidValue;
  cudaError_t e = cudaErrorInvalidValue;
  lav_with_half_or_float(x.dtype, [&](auto tag) {
    using V = typename decltype(tag)::type;
    lav_rotary_k<V><<<lav_blocks(pairs, LAV_THREADS), LAV_THREADS, 0, s>>>(pairs, H, T, hd / 2, lav_ptr<const V>(x), lav_ptr<const V>(cos),
                                                                            lav_ptr<const V>(sin), lav_ptr<V>(out), inverse);
    e = cudaGetLastError();
  });
  return e;
}

// The binary launchers: tensor op tensor, and tensor op scalar with the scalar a kernel argument (the
// scalar-first forms arrive as LAV_RSUB / LAV_RDIV / LAV_RPOW or the mirrored comparison). Specialised
// kernels (map.cuh) for float32 / bfloat16 / float16 operands of one dtype, and for float32 mixed with
// bfloat16 (the residual add under autocast); the generic kernel for the rest.
#include <type_traits>

#include "map.cuh"
#include "ops.cuh"

namespace {

using bf16 = __nv_bfloat16;

bool comparison(int op) { return op >= LAV_EQ && op <= LAV_OR; }

template <class A, class B>
constexpr bool binary_pair() {  // the input type pairs with a specialised binary kernel
  return std::is_same_v<A, B> || (std::is_same_v<A, float> && std::is_same_v<B, bf16>) || (std::is_same_v<A, bf16> && std::is_same_v<B, float>);
}

}  // namespace

extern "C" cudaError_t lav_binary(int path, int op, LavShape sh, LavArg a, LavArg b, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  const LavArg args[3] = {o, a, b};
  const bool same = a.dtype == b.dtype;
  const bool mixed = (a.dtype == LAV_F32 && b.dtype == LAV_BF16) || (a.dtype == LAV_BF16 && b.dtype == LAV_F32);
  const int want = comparison(op) ? LAV_BOOL : same ? a.dtype : LAV_F32;
  cudaError_t e = cudaSuccess;
  if (lav_typed_path(path) && lav_family(a.dtype) && lav_family(b.dtype) && (same || mixed) && o.dtype == want) {
    lav_with_binary(op, [&](auto f) {
      using F = decltype(f);
      lav_with_half_or_float(a.dtype, [&](auto ta) {
        lav_with_half_or_float(b.dtype, [&](auto tb) {
          using A = typename decltype(ta)::type;
          using B = typename decltype(tb)::type;
          if constexpr (binary_pair<A, B>()) {
            using O = std::conditional_t<F::compare, bool, std::conditional_t<std::is_same_v<A, B>, A, float>>;
            e = lav_launch_typed<O, A, B>(path, sh, f, args, s);
          }
        });
      });
    });
    return e;
  }
  if (!lav_with_binary(op, [&](auto f) { e = lav_launch_generic<3>(sh, f, args, s); })) return cudaErrorInvalidValue;
  return e;
}

extern "C" cudaError_t lav_binary_scalar(int path, int op, LavShape sh, LavArg x, double scalar, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  const LavArg a[2] = {o, x};
  cudaError_t e = cudaSuccess;
  if (lav_typed_path(path) && lav_family(x.dtype) && o.dtype == (comparison(op) ? LAV_BOOL : x.dtype)) {
    lav_with_binary(op, [&](auto f) {
      using F = decltype(f);
      lav_with_half_or_float(x.dtype, [&](auto t) {
        using T = typename decltype(t)::type;
        using O = std::conditional_t<F::compare, bool, T>;
        e = lav_launch_typed<O, T>(path, sh, lav_op::WithScalar<F, float>{(float)scalar}, a, s);
      });
    });
    return e;
  }
  if (!lav_with_binary(op, [&](auto f) { e = lav_launch_generic<2>(sh, lav_op::WithScalar<decltype(f), double>{scalar}, a, s); }))
    return cudaErrorInvalidValue;
  return e;
}


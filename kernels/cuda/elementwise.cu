// The elementwise launchers: fill, copy (dtype conversion, accumulate), unary, where, and the SiLU / SwiGLU /
// modulate / gated-residual fused maps (binary ops: binary.cu). Each picks, once per launch, a kernel compiled for its op and operand
// types (map.cuh, ops.cuh): specialised kernels for float32 / bfloat16 / float16 operands (bool outputs
// and conditions), the generic kernel for everything else (float64, integers, other mixtures).
#include "map.cuh"
#include "ops.cuh"

namespace {


/** A fused map over same-dtype operands a = {out, in...}: specialised when all are float32/bf16/f16. */
template <int N, class F>
cudaError_t same_dtype_map(int path, const LavShape& sh, const F& f, const LavArg* a, cudaStream_t s) {
  bool same = lav_family(a[0].dtype);
  for (int k = 1; k < N; k++) same = same && a[k].dtype == a[0].dtype;
  cudaError_t e = cudaSuccess;
  if (lav_typed_path(path) && same) {
    lav_with_half_or_float(a[0].dtype, [&](auto t) {
      using T = typename decltype(t)::type;
      if constexpr (N == 2) e = lav_launch_typed<T, T>(path, sh, f, a, s);
      else if constexpr (N == 3) e = lav_launch_typed<T, T, T>(path, sh, f, a, s);
      else e = lav_launch_typed<T, T, T, T>(path, sh, f, a, s);
    });
    return e;
  }
  return lav_launch_generic<N>(sh, f, a, s);
}

}  // namespace

extern "C" cudaError_t lav_fill(int path, LavShape sh, LavArg d, double v, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  cudaError_t e = cudaSuccess;
  if (lav_typed_path(path) && lav_with_half_or_float(d.dtype, [&](auto t) {
        e = lav_launch_typed<typename decltype(t)::type>(path, sh, lav_op::Const<float>{(float)v}, &d, s);
      }))
    return e;
  // converted once in double, as the cpu's storeFn does (float would round large integers)
  return lav_launch_generic<1>(sh, lav_op::Const<double>{v}, &d, s);
}

extern "C" cudaError_t lav_copy(int path, LavShape sh, LavArg src, LavArg dst, int acc, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  const LavArg plain[2] = {dst, src}, accumulate[3] = {dst, dst, src};  // {out, in...}
  cudaError_t e = cudaSuccess;
  if (lav_typed_path(path) && lav_family(src.dtype) && lav_family(dst.dtype)) {
    lav_with_half_or_float(dst.dtype, [&](auto td) {
      lav_with_half_or_float(src.dtype, [&](auto ts) {
        using D = typename decltype(td)::type;
        using S = typename decltype(ts)::type;
        e = acc ? lav_launch_typed<D, D, S>(path, sh, lav_op::Accumulate{}, accumulate, s) : lav_launch_typed<D, S>(path, sh, lav_op::Identity{}, plain, s);
      });
    });
    return e;
  }
  return acc ? lav_launch_generic<3>(sh, lav_op::Accumulate{}, accumulate, s) : lav_launch_generic<2>(sh, lav_op::Identity{}, plain, s);
}

extern "C" cudaError_t lav_unary(int path, int op, LavShape sh, LavArg x, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  const LavArg a[2] = {o, x};
  cudaError_t e = cudaSuccess;
  if (lav_typed_path(path) && op != LAV_NOT && lav_family(x.dtype) && x.dtype == o.dtype) {
    lav_with_unary(op, [&](auto f) { e = same_dtype_map<2>(path, sh, f, a, s); });
    return e;
  }
  if (!lav_with_unary(op, [&](auto f) { e = lav_launch_generic<2>(sh, f, a, s); })) return cudaErrorInvalidValue;
  return e;
}

extern "C" cudaError_t lav_where(int path, LavShape sh, LavArg c, LavArg a, LavArg b, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  const LavArg args[4] = {o, c, a, b};
  cudaError_t e = cudaSuccess;
  if (lav_typed_path(path) && c.dtype == LAV_BOOL && lav_family(o.dtype) && a.dtype == o.dtype && b.dtype == o.dtype) {
    lav_with_half_or_float(o.dtype, [&](auto t) {
      using T = typename decltype(t)::type;
      e = lav_launch_typed<T, bool, T, T>(path, sh, lav_op::Where{}, args, s);
    });
    return e;
  }
  return lav_launch_generic<4>(sh, lav_op::Where{}, args, s);
}

extern "C" cudaError_t lav_silu_backward(int path, LavShape sh, LavArg x, LavArg g, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  const LavArg a[3] = {o, x, g};
  return same_dtype_map<3>(path, sh, lav_op::SiluBackward{}, a, s);
}

extern "C" cudaError_t lav_swiglu(int path, LavShape sh, LavArg x, LavArg y, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  const LavArg a[3] = {o, x, y};
  return same_dtype_map<3>(path, sh, lav_op::Swiglu{}, a, s);
}

extern "C" cudaError_t lav_swiglu_backward(int path, LavShape sh, LavArg x, LavArg y, LavArg g, const LavArg* dx, const LavArg* dy,
                                           cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  cudaError_t e = cudaSuccess;
  if (dx) {
    const LavArg a[4] = {*dx, x, y, g};
    e = same_dtype_map<4>(path, sh, lav_op::SwigluDa{}, a, s);
  }
  if (dy && e == cudaSuccess) {
    const LavArg a[3] = {*dy, x, g};
    e = same_dtype_map<3>(path, sh, lav_op::SwigluDb{}, a, s);
  }
  return e;
}

// adaLN's maps under autocast: x and out float32, the other two operands of one dtype (float32/bf16/f16,
// broadcast views); other mixtures are the caller's composed fallback (cudaErrorInvalidValue). Op<T> is
// compiled per that dtype, which it rounds its intermediate to.
template <template <class> class Op>
cudaError_t adaln_map(int path, const LavShape& sh, LavArg x, LavArg a, LavArg b, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  if (x.dtype != LAV_F32 || o.dtype != LAV_F32 || a.dtype != b.dtype || !lav_family(a.dtype)) return cudaErrorInvalidValue;
  const LavArg args[4] = {o, x, a, b};
  cudaError_t e = cudaSuccess;
  lav_with_half_or_float(a.dtype, [&](auto t) {
    using T = typename decltype(t)::type;
    const Op<T> f{};
    e = lav_typed_path(path) ? lav_launch_typed<float, float, T, T>(path, sh, f, args, s) : lav_launch_generic<float, 4>(sh, f, args, s);
  });
  return e;
}

extern "C" cudaError_t lav_modulate(int path, LavShape sh, LavArg x, LavArg scale, LavArg shift, LavArg o, cudaStream_t s) {
  return adaln_map<lav_op::Modulate>(path, sh, x, scale, shift, o, s);
}

extern "C" cudaError_t lav_gated_add(int path, LavShape sh, LavArg x, LavArg gate, LavArg y, LavArg o, cudaStream_t s) {
  return adaln_map<lav_op::GatedAdd>(path, sh, x, gate, y, o, s);
}

extern "C" const char* lav_kernels_build_info(void) {
  return "lavender cuda kernels, built " __DATE__ " " __TIME__;
}

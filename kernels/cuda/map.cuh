// Elementwise map kernels: out[i] = f(in0[i], in1[i], ...), compiled per functor f (the op) and per
// operand type. The host (src/backends/cuda/plan.ts) picks how the operands are walked:
//   LAV_PATH_VEC        contiguous operands, 16-byte aligned: each thread moves 128 bits of the widest
//                       operand per iteration (4 float32, 8 bfloat16), narrower operands proportionally;
//   LAV_PATH_STRIDED32  any strides, with the element count and every operand's extent under 2^31:
//                       the linear index is unravelled over the (coalesced) dims in 32-bit arithmetic;
//   LAV_PATH_GENERIC    everything else: 64-bit indices, operand dtypes read at run time (lav_ld/lav_st,
//                       uniform across the grid) and the compute type chosen by the caller.
// The specialised paths compute in float over float32 / bfloat16 / float16 / bool operands.
#pragma once
#include <type_traits>
#include <utility>
#include "common.cuh"

template <class T>
struct lav_tag { using type = T; };

LAV_DEV float lav_f(float v) { return v; }
LAV_DEV float lav_f(__nv_bfloat16 v) { return __bfloat162float(v); }
LAV_DEV float lav_f(__half v) { return __half2float(v); }
LAV_DEV float lav_f(bool v) { return v ? 1.f : 0.f; }

template <class T>
LAV_DEV T lav_from_f(float v) { return (T)v; }
template <>
LAV_DEV __nv_bfloat16 lav_from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
LAV_DEV __half lav_from_f<__half>(float v) { return __float2half_rn(v); }
template <>
LAV_DEV bool lav_from_f<bool>(float v) { return v != 0.f; }  // NaN is true, as torch's bool()

template <class T, int V>
struct alignas(sizeof(T) * V) LavVec { T v[V]; };

/** One 4/8/16-byte memory access per pack: the compiler splits a struct copy into element loads. */
template <class T, int V>
using LavWord = std::conditional_t<sizeof(T) * V == 16, uint4, std::conditional_t<sizeof(T) * V == 8, uint2, unsigned>>;
template <class T, int V>
LAV_DEV LavVec<T, V> lav_ldv(const T* p, int64_t i) {
  static_assert(sizeof(T) * V == 16 || sizeof(T) * V == 8 || sizeof(T) * V == 4, "pack of 4, 8 or 16 bytes");
  LavVec<T, V> r;
  *reinterpret_cast<LavWord<T, V>*>(&r) = reinterpret_cast<const LavWord<T, V>*>(p)[i];
  return r;
}
template <class T, int V>
LAV_DEV void lav_stv(T* p, int64_t i, const LavVec<T, V>& v) {
  reinterpret_cast<LavWord<T, V>*>(p)[i] = *reinterpret_cast<const LavWord<T, V>*>(&v);
}

template <class... T>
constexpr int lav_widest() {
  int m = 1;
  ((m = (int)sizeof(T) > m ? (int)sizeof(T) : m), ...);
  return m;
}

constexpr int LAV_THREADS = 256;

// ---- LAV_PATH_VEC ---------------------------------------------------------------------------------------

template <int V, class F, class O, class... I>
LAV_DEV void lav_apply_vec(const F& f, LavVec<O, V>& o, LavVec<I, V>... x) {
#pragma unroll
  for (int k = 0; k < V; k++) o.v[k] = lav_from_f<O>(f.template operator()<float>(lav_f(x.v[k])...));
}

template <class F, class O, class... I>
__global__ void __launch_bounds__(LAV_THREADS) lav_map_vec_k(int64_t n, F f, O* out, const I*... in) {
  constexpr int V = 16 / lav_widest<O, I...>();
  const int64_t nv = n / V, step = (int64_t)gridDim.x * blockDim.x, t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (int64_t i = t; i < nv; i += step) {
    LavVec<O, V> o;
    lav_apply_vec<V>(f, o, lav_ldv<I, V>(in, i)...);
    lav_stv<O, V>(out, i, o);
  }
  for (int64_t i = nv * V + t; i < n; i += step) out[i] = lav_from_f<O>(f.template operator()<float>(lav_f(in[i])...));
}

// ---- LAV_PATH_STRIDED32 -----------------------------------------------------------------------------------

/** The coalesced iteration space in 32-bit: dims, and per operand (out first) its strides. */
template <int N>
struct LavWalk32 {
  int32_t ndim, n;
  int32_t dims[LAV_MAX_DIMS];
  int32_t st[N][LAV_MAX_DIMS];
};

template <class F, class O, class... I, size_t... K>
LAV_DEV void lav_strided_one(const LavWalk32<1 + sizeof...(I)>& w, int32_t i, const F& f, O* out, std::index_sequence<K...>,
                             const I*... in) {
  constexpr int N = 1 + sizeof...(I);
  int32_t off[N];
#pragma unroll
  for (int k = 0; k < N; k++) off[k] = 0;
  for (int d = w.ndim - 1; d >= 0; d--) {
    const int32_t q = i / w.dims[d], r = i - q * w.dims[d];
#pragma unroll
    for (int k = 0; k < N; k++) off[k] += r * w.st[k][d];
    i = q;
  }
  out[off[0]] = lav_from_f<O>(f.template operator()<float>(lav_f(in[off[K + 1]])...));
}

template <class F, class O, class... I>
__global__ void __launch_bounds__(LAV_THREADS) lav_map_strided32_k(LavWalk32<1 + sizeof...(I)> w, F f, O* out, const I*... in) {
  const int64_t step = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < w.n; i += step)
    lav_strided_one(w, (int32_t)i, f, out, std::index_sequence_for<I...>{}, in...);
}

// ---- LAV_PATH_GENERIC ---------------------------------------------------------------------------------

template <int N>
struct LavArgs { LavArg a[N]; };

template <class C, class F, size_t... K>
__global__ void __launch_bounds__(LAV_THREADS) lav_map_generic_k(LavShape sh, F f, LavArgs<1 + sizeof...(K)> a, std::index_sequence<K...>) {
  constexpr int N = 1 + sizeof...(K);
  LAV_GRID_LOOP(i, sh.n) {
    int64_t off[N];
#pragma unroll
    for (int k = 0; k < N; k++) off[k] = a.a[k].offset;
    int64_t j = i;
    for (int d = sh.ndim - 1; d >= 0; d--) {
      const int64_t q = j / sh.dims[d], r = j - q * sh.dims[d];
#pragma unroll
      for (int k = 0; k < N; k++) off[k] += r * a.a[k].strides[d];
      j = q;
    }
    lav_st<C>(a.a[0].ptr, a.a[0].dtype, off[0], f.template operator()<C>(lav_ld<C>(a.a[K + 1].ptr, a.a[K + 1].dtype, off[K + 1])...));
  }
}

// ---- host side: launching one of the three -------------------------------------------------------------

template <class T>
T* lav_ptr(const LavArg& a) { return reinterpret_cast<T*>(a.ptr) + a.offset; }

/** Launches the specialised kernel (VEC or STRIDED32) for out type O and input types I...; a = {out, in...}. */
template <class O, class... I, class F, size_t... K>
cudaError_t lav_launch_typed(int path, const LavShape& sh, const F& f, const LavArg* a, cudaStream_t s, std::index_sequence<K...>) {
  constexpr int N = 1 + sizeof...(I);
  if (path == LAV_PATH_VEC) {
    constexpr int V = 16 / lav_widest<O, I...>();
    lav_map_vec_k<F, O, I...><<<lav_blocks((sh.n + V - 1) / V, LAV_THREADS), LAV_THREADS, 0, s>>>(sh.n, f, lav_ptr<O>(a[0]), lav_ptr<const I>(a[K + 1])...);
  } else {
    LavWalk32<N> w{};
    w.ndim = sh.ndim;
    w.n = (int32_t)sh.n;
    for (int d = 0; d < sh.ndim; d++) {
      w.dims[d] = (int32_t)sh.dims[d];
      for (int k = 0; k < N; k++) w.st[k][d] = (int32_t)a[k].strides[d];
    }
    lav_map_strided32_k<F, O, I...><<<lav_blocks(sh.n, LAV_THREADS), LAV_THREADS, 0, s>>>(w, f, lav_ptr<O>(a[0]), lav_ptr<const I>(a[K + 1])...);
  }
  return cudaGetLastError();
}
template <class O, class... I, class F>
cudaError_t lav_launch_typed(int path, const LavShape& sh, const F& f, const LavArg* a, cudaStream_t s) {
  return lav_launch_typed<O, I...>(path, sh, f, a, s, std::index_sequence_for<I...>{});
}

/** Launches the generic kernel with compute type C over N operands a = {out, in...}. */
template <class C, int N, class F>
cudaError_t lav_launch_generic(const LavShape& sh, const F& f, const LavArg* a, cudaStream_t s) {
  LavArgs<N> args;
  for (int k = 0; k < N; k++) args.a[k] = a[k];
  lav_map_generic_k<C><<<lav_blocks(sh.n, LAV_THREADS), LAV_THREADS, 0, s>>>(sh, f, args, std::make_index_sequence<N - 1>{});
  return cudaGetLastError();
}

/** The generic kernel in float, or in double when an operand is float64/int32/int64. */
template <int N, class F>
cudaError_t lav_launch_generic(const LavShape& sh, const F& f, const LavArg* a, cudaStream_t s) {
  for (int k = 0; k < N; k++)
    if (lav_wide(a[k].dtype)) return lav_launch_generic<double, N>(sh, f, a, s);
  return lav_launch_generic<float, N>(sh, f, a, s);
}

/** The dtypes with specialised kernels, and the paths that use them. */
inline bool lav_family(int dt) { return dt == LAV_F32 || dt == LAV_BF16 || dt == LAV_F16; }
inline bool lav_typed_path(int path) { return path == LAV_PATH_VEC || path == LAV_PATH_STRIDED32; }

/** Calls fn(lav_tag<T>{}) for a float32 / bfloat16 / float16 dtype code; false otherwise. */
template <class Fn>
bool lav_with_half_or_float(int dt, Fn&& fn) {
  switch (dt) {
    case LAV_F32: fn(lav_tag<float>{}); return true;
    case LAV_BF16: fn(lav_tag<__nv_bfloat16>{}); return true;
    case LAV_F16: fn(lav_tag<__half>{}); return true;
    default: return false;
  }
}

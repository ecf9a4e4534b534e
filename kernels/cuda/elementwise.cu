// Elementwise kernels over strided operands: fill, copy (with dtype conversion and accumulate), unary,
// binary, where, and the SiLU backward. One grid-stride loop per op; the op and dtypes are uniform
// runtime switches, the arithmetic type C is float, or double where an operand is float64/int32/int64
// (so integer results match the cpu reference, which computes in double).
#include "common.cuh"

namespace {

template <class C>
LAV_DEV C sigmoid_(C x) { return x >= (C)0 ? (C)1 / ((C)1 + exp(-x)) : exp(x) / ((C)1 + exp(x)); }

template <class C>
LAV_DEV C unary_op(int op, C x) {
  switch (op) {
    case LAV_NEG: return -x;
    case LAV_ABS: return fabs(x);
    case LAV_EXP: return exp(x);
    case LAV_LOG: return log(x);
    case LAV_SQRT: return sqrt(x);
    case LAV_RSQRT: return (C)1 / sqrt(x);
    case LAV_SIN: return sin(x);
    case LAV_COS: return cos(x);
    case LAV_TANH: return tanh(x);
    case LAV_SIGMOID: return sigmoid_(x);
    case LAV_SILU: return x * sigmoid_(x);
    case LAV_GELU: return (C)0.5 * x * ((C)1 + erf(x * (C)0.70710678118654752440));
    case LAV_GELU_TANH: return (C)0.5 * x * ((C)1 + tanh((C)0.79788456080286535588 * (x + (C)0.044715 * x * x * x)));
    case LAV_RELU: return x > (C)0 ? x : (C)0;
    case LAV_ERF: return erf(x);
    case LAV_ERFINV: return erfinv(x);
    case LAV_SIGN: return x > (C)0 ? (C)1 : x < (C)0 ? (C)-1 : (C)0;
    case LAV_FLOOR: return floor(x);
    case LAV_CEIL: return ceil(x);
    case LAV_ROUND: return rint(x);
    case LAV_RECIPROCAL: return (C)1 / x;
    case LAV_SQUARE: return x * x;
    default: return lav_truthy(x) ? (C)0 : (C)1;  // not
  }
}

template <class C>
LAV_DEV C binary_op(int op, C a, C b) {
  switch (op) {
    case LAV_ADD: return a + b;
    case LAV_SUB: return a - b;
    case LAV_MUL: return a * b;
    case LAV_DIV: return a / b;
    case LAV_POW: return pow(a, b);
    case LAV_MAXIMUM: return (isnan(a) || isnan(b)) ? (C)NAN : a > b ? a : b;
    case LAV_MINIMUM: return (isnan(a) || isnan(b)) ? (C)NAN : a < b ? a : b;
    case LAV_EQ: return (C)(a == b);
    case LAV_NE: return (C)(a != b);
    case LAV_LT: return (C)(a < b);
    case LAV_LE: return (C)(a <= b);
    case LAV_GT: return (C)(a > b);
    case LAV_GE: return (C)(a >= b);
    case LAV_AND: return (C)(lav_truthy(a) && lav_truthy(b));
    default: return (C)(lav_truthy(a) || lav_truthy(b));  // or
  }
}

template <class C>
__global__ void fill_k(LavShape sh, LavArg d, C v) {
  LAV_GRID_LOOP(i, sh.n) lav_st<C>(d.ptr, d.dtype, lav_offset(sh, d, i), v);
}

template <class C>
__global__ void copy_k(LavShape sh, LavArg s, LavArg d, int acc) {
  LAV_GRID_LOOP(i, sh.n) {
    int64_t so = s.offset, dof = d.offset, j = i;
    for (int k = sh.ndim - 1; k >= 0; k--) {
      int64_t q = j / sh.dims[k], r = j - q * sh.dims[k];
      so += r * s.strides[k]; dof += r * d.strides[k]; j = q;
    }
    C v = lav_ld<C>(s.ptr, s.dtype, so);
    if (acc) v += lav_ld<C>(d.ptr, d.dtype, dof);
    lav_st<C>(d.ptr, d.dtype, dof, v);
  }
}

// dense float32 -> float32 / bf16 <-> float32 fast paths (the common casts of mixed precision)
__global__ void copy_dense_f32(int64_t n, const float* __restrict__ s, float* __restrict__ d, int acc) {
  LAV_GRID_LOOP(i, n) d[i] = acc ? d[i] + s[i] : s[i];
}

template <class C>
__global__ void unary_k(int op, LavShape sh, LavArg x, LavArg o) {
  LAV_GRID_LOOP(i, sh.n) {
    int64_t xo = x.offset, oo = o.offset, j = i;
    for (int k = sh.ndim - 1; k >= 0; k--) {
      int64_t q = j / sh.dims[k], r = j - q * sh.dims[k];
      xo += r * x.strides[k]; oo += r * o.strides[k]; j = q;
    }
    lav_st<C>(o.ptr, o.dtype, oo, unary_op<C>(op, lav_ld<C>(x.ptr, x.dtype, xo)));
  }
}

template <class C>
__global__ void binary_k(int op, LavShape sh, LavArg a, LavArg b, LavArg o) {
  LAV_GRID_LOOP(i, sh.n) {
    int64_t ao = a.offset, bo = b.offset, oo = o.offset, j = i;
    for (int k = sh.ndim - 1; k >= 0; k--) {
      int64_t q = j / sh.dims[k], r = j - q * sh.dims[k];
      ao += r * a.strides[k]; bo += r * b.strides[k]; oo += r * o.strides[k]; j = q;
    }
    lav_st<C>(o.ptr, o.dtype, oo, binary_op<C>(op, lav_ld<C>(a.ptr, a.dtype, ao), lav_ld<C>(b.ptr, b.dtype, bo)));
  }
}

template <class C>
__global__ void where_k(LavShape sh, LavArg c, LavArg a, LavArg b, LavArg o) {
  LAV_GRID_LOOP(i, sh.n) {
    int64_t co = c.offset, ao = a.offset, bo = b.offset, oo = o.offset, j = i;
    for (int k = sh.ndim - 1; k >= 0; k--) {
      int64_t q = j / sh.dims[k], r = j - q * sh.dims[k];
      co += r * c.strides[k]; ao += r * a.strides[k]; bo += r * b.strides[k]; oo += r * o.strides[k]; j = q;
    }
    bool t = lav_truthy(lav_ld<double>(c.ptr, c.dtype, co));
    lav_st<C>(o.ptr, o.dtype, oo, t ? lav_ld<C>(a.ptr, a.dtype, ao) : lav_ld<C>(b.ptr, b.dtype, bo));
  }
}

template <class C>
__global__ void silu_bwd_k(int64_t n, LavArg x, LavArg g, LavArg o) {
  LAV_GRID_LOOP(i, n) {
    C v = lav_ld<C>(x.ptr, x.dtype, x.offset + i), s = sigmoid_(v);
    lav_st<C>(o.ptr, o.dtype, o.offset + i, lav_ld<C>(g.ptr, g.dtype, g.offset + i) * s * ((C)1 + v * ((C)1 - s)));
  }
}

constexpr int T = 256;

}  // namespace

extern "C" cudaError_t lav_fill(LavShape sh, LavArg d, double v, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  // the value is converted once, as the cpu's storeFn does; float math would round large ints
  fill_k<double><<<lav_blocks(sh.n, T), T, 0, s>>>(sh, d, v);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_copy(LavShape sh, LavArg src, LavArg dst, int acc, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  if (sh.ndim == 1 && src.strides[0] == 1 && dst.strides[0] == 1 && src.dtype == LAV_F32 && dst.dtype == LAV_F32) {
    copy_dense_f32<<<lav_blocks(sh.n, T), T, 0, s>>>(sh.n, (const float*)src.ptr + src.offset, (float*)dst.ptr + dst.offset, acc);
  } else if (lav_wide(src.dtype) || lav_wide(dst.dtype)) {
    copy_k<double><<<lav_blocks(sh.n, T), T, 0, s>>>(sh, src, dst, acc);
  } else {
    copy_k<float><<<lav_blocks(sh.n, T), T, 0, s>>>(sh, src, dst, acc);
  }
  return cudaGetLastError();
}

extern "C" cudaError_t lav_unary(int op, LavShape sh, LavArg x, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  if (lav_wide(x.dtype) || lav_wide(o.dtype)) unary_k<double><<<lav_blocks(sh.n, T), T, 0, s>>>(op, sh, x, o);
  else unary_k<float><<<lav_blocks(sh.n, T), T, 0, s>>>(op, sh, x, o);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_binary(int op, LavShape sh, LavArg a, LavArg b, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  if (lav_wide(a.dtype) || lav_wide(b.dtype) || lav_wide(o.dtype)) binary_k<double><<<lav_blocks(sh.n, T), T, 0, s>>>(op, sh, a, b, o);
  else binary_k<float><<<lav_blocks(sh.n, T), T, 0, s>>>(op, sh, a, b, o);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_where(LavShape sh, LavArg c, LavArg a, LavArg b, LavArg o, cudaStream_t s) {
  if (sh.n == 0) return cudaSuccess;
  if (lav_wide(a.dtype) || lav_wide(b.dtype) || lav_wide(o.dtype)) where_k<double><<<lav_blocks(sh.n, T), T, 0, s>>>(sh, c, a, b, o);
  else where_k<float><<<lav_blocks(sh.n, T), T, 0, s>>>(sh, c, a, b, o);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_silu_backward(int64_t n, LavArg x, LavArg g, LavArg o, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  if (lav_wide(x.dtype) || lav_wide(o.dtype)) silu_bwd_k<double><<<lav_blocks(n, T), T, 0, s>>>(n, x, g, o);
  else silu_bwd_k<float><<<lav_blocks(n, T), T, 0, s>>>(n, x, g, o);
  return cudaGetLastError();
}

extern "C" const char* lav_kernels_build_info(void) {
  return "lavender cuda kernels, built " __DATE__ " " __TIME__;
}

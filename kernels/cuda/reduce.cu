// Reductions and row kernels: reduce (sum/max/min/prod/argmax/argmin over arbitrary axes of a strided
// view, double accumulation), softmax / log-softmax (+ scale), its backward, and layer norm. Row kernels
// compute in float32 for float32/bfloat16/float16 storage (double for float64), one block per row.
#include "common.cuh"

namespace {

struct Acc {
  double v;
  int64_t i;  // argmax/argmin: index of the winner within the reduced block
};

// combine in index order: b comes from later indices than a unless told otherwise
LAV_DEV Acc combine(int op, Acc a, Acc b) {
  switch (op) {
    case LAV_SUM: return {a.v + b.v, 0};
    case LAV_PROD: return {a.v * b.v, 0};
    case LAV_MAX: return {(isnan(a.v) || isnan(b.v)) ? NAN : fmax(a.v, b.v), 0};
    case LAV_MIN: return {(isnan(a.v) || isnan(b.v)) ? NAN : fmin(a.v, b.v), 0};
    default: {
      // NaN wins (first NaN); else the better value; ties go to the lower index
      bool an = isnan(a.v), bn = isnan(b.v);
      if (an || bn) {
        if (an && bn) return a.i <= b.i ? a : b;
        return an ? a : b;
      }
      bool better = op == LAV_ARGMAX ? b.v > a.v : b.v < a.v;
      if (better || (b.v == a.v && b.i < a.i)) return b;
      return a;
    }
  }
}

LAV_DEV Acc init(int op) {
  switch (op) {
    case LAV_SUM: return {0.0, 0};
    case LAV_PROD: return {1.0, 0};
    case LAV_MAX: case LAV_ARGMAX: return {-INFINITY, INT64_MAX};
    default: return {INFINITY, INT64_MAX};
  }
}

LAV_DEV Acc fold_range(int op, const LavShape& inner, const LavArg& xin, int64_t base, int64_t start, int64_t step) {
  Acc acc = init(op);
  for (int64_t j = start; j < inner.n; j += step) {
    double v = lav_ld<double>(xin.ptr, xin.dtype, base + lav_offset(inner, xin, j) - xin.offset);
    acc = combine(op, acc, Acc{v, j});
  }
  return acc;
}

LAV_DEV void store_result(int op, const LavArg& out, int64_t oo, Acc a) {
  if (op == LAV_ARGMAX || op == LAV_ARGMIN) lav_st<double>(out.ptr, out.dtype, oo, a.i == INT64_MAX ? 0.0 : (double)a.i);
  else lav_st<double>(out.ptr, out.dtype, oo, a.v);
}

// one thread per output element (small reductions or many outputs with a strided reduced axis)
__global__ void reduce_thread_k(int op, LavShape outer, LavShape inner, LavArg x, LavArg xin, LavArg out) {
  LAV_GRID_LOOP(o, outer.n) {
    int64_t xo = x.offset, oo = out.offset, j = o;
    for (int k = outer.ndim - 1; k >= 0; k--) {
      int64_t q = j / outer.dims[k], r = j - q * outer.dims[k];
      xo += r * x.strides[k]; oo += r * out.strides[k]; j = q;
    }
    store_result(op, out, oo, fold_range(op, inner, xin, xo, 0, 1));
  }
}

// one block per output element
__global__ void reduce_block_k(int op, LavShape outer, LavShape inner, LavArg x, LavArg xin, LavArg out) {
  __shared__ double sv[32];
  __shared__ long long si[32];
  for (int64_t o = blockIdx.x; o < outer.n; o += gridDim.x) {
    int64_t xo = x.offset, oo = out.offset, j = o;
    for (int k = outer.ndim - 1; k >= 0; k--) {
      int64_t q = j / outer.dims[k], r = j - q * outer.dims[k];
      xo += r * x.strides[k]; oo += r * out.strides[k]; j = q;
    }
    Acc a = fold_range(op, inner, xin, xo, threadIdx.x, blockDim.x);
    // warp tree, then across warps; combine order is by index (ties resolved by index, not position)
    for (int off = 16; off > 0; off >>= 1) {
      Acc b{__shfl_down_sync(0xffffffffu, a.v, off), (int64_t)__shfl_down_sync(0xffffffffu, (long long)a.i, off)};
      if ((threadIdx.x & 31) + off < 32) a = combine(op, a, b);
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) { sv[w] = a.v; si[w] = a.i; }
    __syncthreads();
    if (threadIdx.x == 0) {
      Acc r{sv[0], si[0]};
      for (int k = 1; k < nw; k++) r = combine(op, r, Acc{sv[k], si[k]});
      store_result(op, out, oo, r);
    }
    __syncthreads();
  }
}

template <class C>
__global__ void softmax_k(int64_t cols, LavArg x, LavArg o, int logp, C scale) {
  __shared__ C sm[32];
  const int64_t row = blockIdx.x;
  const int64_t xb = x.offset + row * cols, ob = o.offset + row * cols;
  C mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) mx = fmax(mx, lav_ld<C>(x.ptr, x.dtype, xb + j) * scale);
  mx = lav_block_max<C>(mx, sm);
  C sum = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += exp(lav_ld<C>(x.ptr, x.dtype, xb + j) * scale - mx);
  sum = lav_block_sum<C>(sum, sm);
  if (logp) {
    C lse = mx + log(sum);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) lav_st<C>(o.ptr, o.dtype, ob + j, lav_ld<C>(x.ptr, x.dtype, xb + j) * scale - lse);
  } else {
    C inv = (C)1 / sum;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) lav_st<C>(o.ptr, o.dtype, ob + j, exp(lav_ld<C>(x.ptr, x.dtype, xb + j) * scale - mx) * inv);
  }
}

template <class C>
__global__ void softmax_bwd_k(int64_t cols, LavArg y, LavArg g, LavArg o, C scale) {
  __shared__ C sm[32];
  const int64_t row = blockIdx.x;
  const int64_t yb = y.offset + row * cols, gb = g.offset + row * cols, ob = o.offset + row * cols;
  C dot = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) dot += lav_ld<C>(y.ptr, y.dtype, yb + j) * lav_ld<C>(g.ptr, g.dtype, gb + j);
  dot = lav_block_sum<C>(dot, sm);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    C yv = lav_ld<C>(y.ptr, y.dtype, yb + j);
    lav_st<C>(o.ptr, o.dtype, ob + j, scale * yv * (lav_ld<C>(g.ptr, g.dtype, gb + j) - dot));
  }
}

template <class C>
__global__ void layer_norm_k(int64_t cols, LavArg x, LavArg w, LavArg b, int hasW, int hasB, C eps, LavArg o, LavArg mean, LavArg rstd) {
  __shared__ C sm[32];
  const int64_t row = blockIdx.x;
  const int64_t xb = x.offset + row * cols, ob = o.offset + row * cols;
  C s = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += lav_ld<C>(x.ptr, x.dtype, xb + j);
  const C mu = lav_block_sum<C>(s, sm) / (C)cols;
  C v = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) { C d = lav_ld<C>(x.ptr, x.dtype, xb + j) - mu; v += d * d; }
  const C rs = (C)1 / sqrt(lav_block_sum<C>(v, sm) / (C)cols + eps);
  if (threadIdx.x == 0) {
    lav_st<C>(mean.ptr, mean.dtype, mean.offset + row, mu);
    lav_st<C>(rstd.ptr, rstd.dtype, rstd.offset + row, rs);
  }
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    C y = (lav_ld<C>(x.ptr, x.dtype, xb + j) - mu) * rs;
    if (hasW) y *= lav_ld<C>(w.ptr, w.dtype, w.offset + j);
    if (hasB) y += lav_ld<C>(b.ptr, b.dtype, b.offset + j);
    lav_st<C>(o.ptr, o.dtype, ob + j, y);
  }
}

// layer norm backward, one block per row: dx = rstd * ((gy - mean(gy)) - xhat * mean(gy * xhat)) with
// xhat = (x - mean) * rstd, gy = g * w (g without weight). Not yet run on a GPU.
template <class C>
__global__ void layer_norm_bwd_k(int64_t cols, LavArg x, LavArg mean, int hasMean, LavArg rstd, LavArg w, int hasW, LavArg g, LavArg dx) {
  __shared__ C sm[32];
  const int64_t row = blockIdx.x;
  const int64_t xb = x.offset + row * cols, gb = g.offset + row * cols, db = dx.offset + row * cols;
  const C rs = lav_ld<C>(rstd.ptr, rstd.dtype, rstd.offset + row);
  // without a mean, x holds xhat (x - 0 and x * 1 are exact)
  const C mu = hasMean ? lav_ld<C>(mean.ptr, mean.dtype, mean.offset + row) : (C)0, xs = hasMean ? rs : (C)1;
  C s1 = 0, s2 = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    C gy = lav_ld<C>(g.ptr, g.dtype, gb + j);
    if (hasW) gy *= lav_ld<C>(w.ptr, w.dtype, w.offset + j);
    s1 += gy;
    s2 += gy * (lav_ld<C>(x.ptr, x.dtype, xb + j) - mu) * xs;
  }
  const C m1 = lav_block_sum<C>(s1, sm) / (C)cols;
  const C m2 = lav_block_sum<C>(s2, sm) / (C)cols;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    C gy = lav_ld<C>(g.ptr, g.dtype, gb + j);
    if (hasW) gy *= lav_ld<C>(w.ptr, w.dtype, w.offset + j);
    const C xh = (lav_ld<C>(x.ptr, x.dtype, xb + j) - mu) * xs;
    lav_st<C>(dx.ptr, dx.dtype, db + j, rs * ((gy - m1) - xh * m2));
  }
}

// dweight / dbias: column sums of g * xhat and of g, one thread per column walking the rows (coalesced
// across the threads of a warp); the affine case is rare in the models (the MMDiT's norms have none)
template <class C>
__global__ void layer_norm_bwd_cols_k(int64_t rows, int64_t cols, LavArg x, LavArg mean, int hasMean, LavArg rstd, LavArg g, LavArg dw, int hasDw,
                                      LavArg dbias, int hasDb) {
  LAV_GRID_LOOP(j, cols) {
    C sw = 0, sb = 0;
    for (int64_t r = 0; r < rows; r++) {
      const C gv = lav_ld<C>(g.ptr, g.dtype, g.offset + r * cols + j);
      const C mu = hasMean ? lav_ld<C>(mean.ptr, mean.dtype, mean.offset + r) : (C)0;
      const C xs = hasMean ? lav_ld<C>(rstd.ptr, rstd.dtype, rstd.offset + r) : (C)1;
      sw += gv * (lav_ld<C>(x.ptr, x.dtype, x.offset + r * cols + j) - mu) * xs;
      sb += gv;
    }
    if (hasDw) lav_st<C>(dw.ptr, dw.dtype, dw.offset + j, sw);
    if (hasDb) lav_st<C>(dbias.ptr, dbias.dtype, dbias.offset + j, sb);
  }
}

int row_threads(int64_t cols) {
  return cols <= 64 ? 32 : cols <= 256 ? 64 : cols <= 1024 ? 128 : cols <= 4096 ? 256 : 512;
}

constexpr int64_t MAX_GRID = 2147483647;

}  // namespace

extern "C" cudaError_t lav_reduce(int op, LavShape outer, LavShape inner, LavArg x, LavArg xin, LavArg out, cudaStream_t s) {
  if (outer.n == 0) return cudaSuccess;
  // block per output when each output has a lot to fold and the folded elements are close together,
  // or when there are too few outputs to fill the GPU one thread each
  const bool innerDense = inner.ndim == 0 || xin.strides[inner.ndim - 1] == 1;
  const bool useBlocks = inner.n >= 64 && (innerDense || outer.n < 2048);
  if (useBlocks) {
    int t = inner.n >= 4096 ? 256 : 128;
    reduce_block_k<<<(unsigned)(outer.n < MAX_GRID ? outer.n : MAX_GRID), t, 0, s>>>(op, outer, inner, x, xin, out);
  } else {
    reduce_thread_k<<<lav_blocks(outer.n, 128), 128, 0, s>>>(op, outer, inner, x, xin, out);
  }
  return cudaGetLastError();
}

extern "C" cudaError_t lav_softmax(int64_t rows, int64_t cols, LavArg x, LavArg o, int logp, double scale, cudaStream_t s) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (rows > MAX_GRID) return cudaErrorInvalidConfiguration;
  int t = row_threads(cols);
  if (x.dtype == LAV_F64 || o.dtype == LAV_F64) softmax_k<double><<<(unsigned)rows, t, 0, s>>>(cols, x, o, logp, scale);
  else softmax_k<float><<<(unsigned)rows, t, 0, s>>>(cols, x, o, logp, (float)scale);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_softmax_backward(int64_t rows, int64_t cols, LavArg y, LavArg g, LavArg o, double scale, cudaStream_t s) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (rows > MAX_GRID) return cudaErrorInvalidConfiguration;
  int t = row_threads(cols);
  if (y.dtype == LAV_F64 || o.dtype == LAV_F64) softmax_bwd_k<double><<<(unsigned)rows, t, 0, s>>>(cols, y, g, o, scale);
  else softmax_bwd_k<float><<<(unsigned)rows, t, 0, s>>>(cols, y, g, o, (float)scale);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_layer_norm(int64_t rows, int64_t cols, LavArg x, const LavArg* w, const LavArg* b, double eps,
                                      LavArg o, LavArg mean, LavArg rstd, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  if (rows > MAX_GRID) return cudaErrorInvalidConfiguration;
  LavArg none{};
  none.dtype = LAV_F32;
  int t = row_threads(cols);
  if (x.dtype == LAV_F64 || o.dtype == LAV_F64)
    layer_norm_k<double><<<(unsigned)rows, t, 0, s>>>(cols, x, w ? *w : none, b ? *b : none, w != nullptr, b != nullptr, eps, o, mean, rstd);
  else
    layer_norm_k<float><<<(unsigned)rows, t, 0, s>>>(cols, x, w ? *w : none, b ? *b : none, w != nullptr, b != nullptr, (float)eps, o, mean, rstd);
  return cudaGetLastError();
}

extern "C" cudaError_t lav_layer_norm_backward(int64_t rows, int64_t cols, LavArg x, const LavArg* meanp, LavArg rstd, const LavArg* w, LavArg g,
                                               LavArg dx, const LavArg* dw, const LavArg* db, cudaStream_t s) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (rows > MAX_GRID) return cudaErrorInvalidConfiguration;
  LavArg none{};
  none.dtype = LAV_F32;
  const LavArg mean = meanp ? *meanp : none;
  const int hasMean = meanp != nullptr;
  const int t = row_threads(cols);
  const bool wide = x.dtype == LAV_F64 || dx.dtype == LAV_F64;
  if (wide) layer_norm_bwd_k<double><<<(unsigned)rows, t, 0, s>>>(cols, x, mean, hasMean, rstd, w ? *w : none, w != nullptr, g, dx);
  else layer_norm_bwd_k<float><<<(unsigned)rows, t, 0, s>>>(cols, x, mean, hasMean, rstd, w ? *w : none, w != nullptr, g, dx);
  if (dw || db) {
    if (wide)
      layer_norm_bwd_cols_k<double><<<lav_blocks(cols, 128), 128, 0, s>>>(rows, cols, x, mean, hasMean, rstd, g, dw ? *dw : none, dw != nullptr, db ? *db : none,
                                                                          db != nullptr);
    else
      layer_norm_bwd_cols_k<float><<<lav_blocks(cols, 128), 128, 0, s>>>(rows, cols, x, mean, hasMean, rstd, g, dw ? *dw : none, dw != nullptr, db ? *db : none,
                                                                         db != nullptr);
  }
  return cudaGetLastError();
}

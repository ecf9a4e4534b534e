// Types shared by the CUDA kernels (kernels/cuda/*.cu), the host runtime (kernels/cuda/host/) and the
// N-API glue (bindings/). Plain C layout: a strided operand is a pointer, a dtype code, an element offset
// and one stride per dimension of the iteration shape it is walked with.
#pragma once
#include <stdint.h>
#include <cuda_runtime_api.h>

#define LAV_MAX_DIMS 8

// dtype codes: the order of LAV_DTYPES in src/backends/cuda/addon.ts
enum LavDType { LAV_F32 = 0, LAV_F64 = 1, LAV_I32 = 2, LAV_I64 = 3, LAV_BF16 = 4, LAV_F16 = 5, LAV_BOOL = 6 };

struct LavShape {
  int32_t ndim;
  int32_t pad_;
  int64_t n;  // product of dims
  int64_t dims[LAV_MAX_DIMS];
};

struct LavArg {
  void* ptr;      // buffer base
  int32_t dtype;  // LavDType
  int32_t pad_;
  int64_t offset;  // elements
  int64_t strides[LAV_MAX_DIMS];
};

// op codes: the order of UNARY_OPS / BINARY_OPS / REDUCE_OPS in src/backends/cuda/addon.ts
enum LavUnary {
  LAV_NEG, LAV_ABS, LAV_EXP, LAV_LOG, LAV_SQRT, LAV_RSQRT, LAV_SIN, LAV_COS, LAV_TANH, LAV_SIGMOID, LAV_SILU,
  LAV_GELU, LAV_GELU_TANH, LAV_RELU, LAV_ERF, LAV_ERFINV, LAV_SIGN, LAV_FLOOR, LAV_CEIL, LAV_ROUND, LAV_RECIPROCAL,
  LAV_SQUARE, LAV_NOT, LAV_UNARY_COUNT
};
enum LavBinary {
  LAV_ADD, LAV_SUB, LAV_MUL, LAV_DIV, LAV_POW, LAV_MAXIMUM, LAV_MINIMUM, LAV_EQ, LAV_NE, LAV_LT, LAV_LE, LAV_GT, LAV_GE,
  LAV_AND, LAV_OR,
  LAV_RSUB, LAV_RDIV, LAV_RPOW,  // s - x, s / x, s ** x (binary_scalar with the scalar first)
  LAV_BINARY_COUNT
};
/** How an elementwise launch walks its operands (kernels/cuda/map.cuh; chosen by src/backends/cuda/plan.ts). */
enum LavPath { LAV_PATH_VEC = 0, LAV_PATH_STRIDED32 = 1, LAV_PATH_GENERIC = 2 };
enum LavReduce { LAV_SUM, LAV_MAX, LAV_MIN, LAV_PROD, LAV_ARGMAX, LAV_ARGMIN, LAV_REDUCE_COUNT };

/** Where a kernel reports the first out-of-range index: flag != 0, the op (0 gather, 1 scatterAdd), the
 *  offending value and the axis size. Read and cleared at the next synchronisation (no sync of its own). */
struct LavIndexError {
  int32_t flag;
  int32_t op;
  int64_t value;
  int64_t axisSize;
};

/** One tensor of a multi-tensor AdamW launch (float32 p, g, m, v; low: a bf16 copy of p or null). */
#define LAV_ADAMW_MULTI 48
struct LavAdamWEntry {
  float* p;
  const float* g;
  float* m;
  float* v;
  void* low;
  int64_t n;
  float bc1, bc2sqrt;  // 1 - beta1^step, sqrt(1 - beta2^step)
};
struct LavAdamWTable {
  int32_t count;
  int32_t pad_;
  LavAdamWEntry e[LAV_ADAMW_MULTI];
};

#ifdef __cplusplus
extern "C" {
#endif

// Every launcher enqueues on `s` and returns cudaGetLastError() after the launch (cudaSuccess when there
// was nothing to do). Shapes have been validated and coalesced by the TypeScript side, which also chose
// the path (a LavPath): a specialised path is taken when the operand dtypes have one, else the generic.
cudaError_t lav_fill(int path, LavShape shape, LavArg dst, double value, cudaStream_t s);
cudaError_t lav_copy(int path, LavShape shape, LavArg src, LavArg dst, int accumulate, cudaStream_t s);
cudaError_t lav_unary(int path, int op, LavShape shape, LavArg x, LavArg out, cudaStream_t s);
cudaError_t lav_binary(int path, int op, LavShape shape, LavArg a, LavArg b, LavArg out, cudaStream_t s);
/** out = x op scalar, the scalar already rounded to x's dtype (scalar-first forms: LAV_RSUB.., swapped comparisons). */
cudaError_t lav_binary_scalar(int path, int op, LavShape shape, LavArg x, double scalar, LavArg out, cudaStream_t s);
cudaError_t lav_where(int path, LavShape shape, LavArg c, LavArg a, LavArg b, LavArg out, cudaStream_t s);
cudaError_t lav_silu_backward(int path, LavShape shape, LavArg x, LavArg g, LavArg out, cudaStream_t s);
/** out = silu(a) * b. */
cudaError_t lav_swiglu(int path, LavShape shape, LavArg a, LavArg b, LavArg out, cudaStream_t s);
/** out = x * (1 + scale) + shift over broadcast views; x and out float32, scale and shift float32/bf16/f16. */
cudaError_t lav_modulate(int path, LavShape shape, LavArg x, LavArg scale, LavArg shift, LavArg out, cudaStream_t s);
/** out = x + gate * y over broadcast views; x and out float32, gate and y one of float32/bf16/f16. */
cudaError_t lav_gated_add(int path, LavShape shape, LavArg x, LavArg gate, LavArg y, LavArg out, cudaStream_t s);
/** da = g * b * silu'(a), db = g * silu(a); either may be null. */
cudaError_t lav_swiglu_backward(int path, LavShape shape, LavArg a, LavArg b, LavArg g, const LavArg* da, const LavArg* db,
                                cudaStream_t s);
/** outer: kept dims (x and out strides), inner: reduced dims (x strides in xin). */
cudaError_t lav_reduce(int op, LavShape outer, LavShape inner, LavArg x, LavArg xin, LavArg out, cudaStream_t s);
/** Rotary embedding of contiguous x [rows = B*T*H, hd] with cos/sin [T, hd/2], all of one float dtype (kernels/cuda/rotary.cu). */
cudaError_t lav_rotary(int64_t rows, int32_t H, int32_t T, int32_t hd, LavArg x, LavArg cos, LavArg sin, LavArg out, int inverse, cudaStream_t s);
cudaError_t lav_softmax(int64_t rows, int64_t cols, LavArg x, LavArg out, int log, double scale, cudaStream_t s);
cudaError_t lav_softmax_backward(int64_t rows, int64_t cols, LavArg y, LavArg g, LavArg out, double scale, cudaStream_t s);
cudaError_t lav_layer_norm(int64_t rows, int64_t cols, LavArg x, const LavArg* w, const LavArg* b, double eps,
                           LavArg out, LavArg mean, LavArg rstd, cudaStream_t s);
/** Layer norm backward over contiguous [rows, cols] x, g, dx with the forward's per-row mean/rstd; dweight /
 *  dbias (column sums) when given; w null without weight. Not yet run on a GPU. */
cudaError_t lav_layer_norm_backward(int64_t rows, int64_t cols, LavArg x, const LavArg* mean, LavArg rstd, const LavArg* w, LavArg g, LavArg dx,
                                    const LavArg* dweight, const LavArg* dbias, cudaStream_t s);
/** Iterates over index's shape; x/dst strides have the axis stride zeroed, the axis stride and size given apart. */
cudaError_t lav_gather(LavShape shape, LavArg x, int64_t axisStride, int64_t axisSize, LavArg index, LavArg out,
                       LavIndexError* err, cudaStream_t s);
cudaError_t lav_scatter_add(LavShape shape, LavArg dst, int64_t axisStride, int64_t axisSize, LavArg index, LavArg src,
                            LavIndexError* err, cudaStream_t s);
/** dist 0 uniform, 1 normal; element i (row-major over shape) is draw offset+i of Philox4x32-10 keyed by seed. */
cudaError_t lav_random(LavShape shape, LavArg out, int dist, uint64_t seed, uint64_t offset, cudaStream_t s);
/** Flash-style attention forward. q [B,H,Tq,D], k/v [B,H,Tk,D] (last stride 1), out [B,H,Tq,D];
 *  strides are given per [B,H,T] dim in args' strides[0..2]. lse (float32 [B,H,Tq]) may be null. */
cudaError_t lav_attention(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, LavArg q, LavArg k, LavArg v, LavArg out,
                          const LavArg* lse, double scale, int causal, cudaStream_t s);
/** Flash-style attention backward from the forward's output and float32 row log-sum-exp (lse contiguous
 *  [B,H,Tq]); q/k/v/out/dout/dq/dk/dv as in lav_attention (unit last stride); delta: float32 scratch of
 *  B*H*Tq. Not yet run on a GPU (kernels/cuda/attention_bwd.cu). */
cudaError_t lav_attention_backward(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, LavArg q, LavArg k, LavArg v, LavArg out,
                                   LavArg lse, LavArg dout, LavArg dq, LavArg dk, LavArg dv, float* delta, double scale, int causal,
                                   cudaStream_t s);
/** One AdamW step over n contiguous elements, torch.optim.AdamW semantics; p/m/v float32 (or float64),
 *  g any float dtype, pLow (optional) receives a low-precision copy of the updated p. */
cudaError_t lav_adamw(int64_t n, LavArg p, LavArg g, LavArg m, LavArg v, const LavArg* pLow, double lr, double beta1,
                      double beta2, double eps, double weightDecay, double bc1, double bc2sqrt, double gradScale,
                      cudaStream_t s);
/** AdamW over up to LAV_ADAMW_MULTI float32 tensors in one launch (the table travels as the kernel argument). */
cudaError_t lav_adamw_multi(const LavAdamWTable* table, int hasLow, double lr, double beta1, double beta2, double eps, double weightDecay,
                            double gradScale, cudaStream_t s);
/** Kernel-side self check without a GPU is impossible; this returns the number of compiled kernels' archs. */
const char* lav_kernels_build_info(void);

#ifdef __cplusplus
}
#endif

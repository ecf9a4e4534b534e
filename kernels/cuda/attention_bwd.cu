// Fused attention backward, flash-style (the probabilities are recomputed from q, k and the forward's
// row log-sum-exp; no [Tq, Tk] matrix in memory). With P = exp(scale q k^T - lse), dP = dO v^T,
// delta = rowsum(dO * O) and dS = P (dP - delta) scale:  dV = P^T dO,  dK = dS^T q,  dQ = dS k.
// Three kernels, float32 arithmetic over float32 / bfloat16 / float16 storage, head dim up to 128 (the
// forward's limits):
//   delta_k   one warp per query row: delta = rowsum(dO * O) into a float32 scratch [B, H, Tq];
//   dkdv_k    one block per (batch, head, 16 keys), each warp owning 4 keys with their dK / dV rows in
//             registers; query rows stream through shared memory 32 at a time, a lane per row;
//   dq_k      one block per (batch, head, 8 query rows), each warp owning 2 rows; keys stream through
//             shared memory 32 at a time, a lane per key (the forward's layout).
// Splitting dQ from dK/dV costs a second pass over the scores but needs no atomics or float32 dQ scratch.
// NOT YET RUN ON A GPU: compiled for sm_80/sm_90; bench/gpu/run.sh's cuda tests check it against the
// composed backward (src/ops/nn.ts attentionGrads) on the next machine with one.
#include "common.cuh"

namespace {

constexpr int DMAX = 128, DPL = DMAX / 32, WARPS = 4;
constexpr int KB = 16, KPW = KB / WARPS, QT = 32;      // dkdv_k: keys per block / per warp, query rows per tile
constexpr int QB = 8, RPW = QB / WARPS, KT = 32;        // dq_k: query rows per block / per warp, keys per tile

struct Heads {  // base offsets of (b, h) in each operand
  int64_t q, k, v, o, g, dq, dk, dv;
};

LAV_DEV Heads heads(int64_t b, int64_t h, const LavArg& q, const LavArg& k, const LavArg& v, const LavArg& o, const LavArg& g,
                    const LavArg& dq, const LavArg& dk, const LavArg& dv) {
  auto at = [&](const LavArg& a) { return a.offset + b * a.strides[0] + h * a.strides[1]; };
  return {at(q), at(k), at(v), at(o), at(g), at(dq), at(dk), at(dv)};
}

__global__ void __launch_bounds__(WARPS * 32)
delta_k(int64_t rows, int64_t H, int64_t Tq, int D, LavArg o, LavArg g, float* delta) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * WARPS + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int64_t t = row % Tq, bh = row / Tq, h = bh % H, b = bh / H;
  const int64_t ob = o.offset + b * o.strides[0] + h * o.strides[1] + t * o.strides[2];
  const int64_t gb = g.offset + b * g.strides[0] + h * g.strides[1] + t * g.strides[2];
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s += lav_ld<float>(o.ptr, o.dtype, ob + d) * lav_ld<float>(g.ptr, g.dtype, gb + d);
  s = lav_warp_sum(s);
  if (lane == 0) delta[row] = s;
}

// dynamic shared memory: Qs[QT][D+1], Gs[QT][D+1], Ks[KB][D], Vs[KB][D], Ls[QT], Ds[QT]
__global__ void __launch_bounds__(WARPS * 32)
dkdv_k(int64_t H, int64_t Tq, int64_t Tk, int D, LavArg q, LavArg k, LavArg v, LavArg o, LavArg g, LavArg lse, const float* delta,
       LavArg dq, LavArg dk, LavArg dv, float scale, int causal) {
  extern __shared__ float sm[];
  const int P = D + 1;
  float *Qs = sm, *Gs = Qs + QT * P, *Ks = Gs + QT * P, *Vs = Ks + KB * D, *Ls = Vs + KB * D, *Ds = Ls + QT;
  const int64_t b = blockIdx.z, h = blockIdx.y, k0 = (int64_t)blockIdx.x * KB;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const Heads hb = heads(b, h, q, k, v, o, g, dq, dk, dv);
  const int64_t lb = lse.offset + (b * H + h) * Tq;

  for (int e = threadIdx.x; e < KB * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    const int64_t t = k0 + r;
    Ks[e] = t < Tk ? lav_ld<float>(k.ptr, k.dtype, hb.k + t * k.strides[2] + d) : 0.f;
    Vs[e] = t < Tk ? lav_ld<float>(v.ptr, v.dtype, hb.v + t * v.strides[2] + d) : 0.f;
  }
  float dK[KPW][DPL], dV[KPW][DPL];
#pragma unroll
  for (int j = 0; j < KPW; j++)
#pragma unroll
    for (int c = 0; c < DPL; c++) dK[j][c] = dV[j][c] = 0.f;

  // causal: key t only sees query rows >= t
  const int64_t qStart = causal ? (k0 / QT) * QT : 0;
  for (int64_t q0 = qStart; q0 < Tq; q0 += QT) {
    __syncthreads();
    for (int e = threadIdx.x; e < QT * D; e += blockDim.x) {
      const int r = e / D, d = e % D;
      const int64_t t = q0 + r;
      Qs[r * P + d] = t < Tq ? lav_ld<float>(q.ptr, q.dtype, hb.q + t * q.strides[2] + d) : 0.f;
      Gs[r * P + d] = t < Tq ? lav_ld<float>(g.ptr, g.dtype, hb.g + t * g.strides[2] + d) : 0.f;
    }
    for (int r = threadIdx.x; r < QT; r += blockDim.x) {
      const int64_t t = q0 + r;
      Ls[r] = t < Tq ? lav_ld<float>(lse.ptr, lse.dtype, lb + t) : 0.f;
      Ds[r] = t < Tq ? delta[(b * H + h) * Tq + t] : 0.f;
    }
    __syncthreads();
    const int64_t qi = q0 + lane;  // this lane's query row
#pragma unroll
    for (int j = 0; j < KPW; j++) {
      const int kr = warp * KPW + j;
      const int64_t kj = k0 + kr;
      float s = 0.f, dp = 0.f;
      for (int d = 0; d < D; d++) {
        s += Qs[lane * P + d] * Ks[kr * D + d];
        dp += Gs[lane * P + d] * Vs[kr * D + d];
      }
      const bool live = qi < Tq && kj < Tk && !(causal && kj > qi);
      const float p = live ? __expf(s * scale - Ls[lane]) : 0.f;
      const float ds = p * (dp - Ds[lane]) * scale;
      for (int i = 0; i < QT; i++) {
        const float pi = __shfl_sync(0xffffffffu, p, i), dsi = __shfl_sync(0xffffffffu, ds, i);
#pragma unroll
        for (int c = 0; c < DPL; c++) {
          const int d = lane + 32 * c;
          if (d < D) {
            dV[j][c] += pi * Gs[i * P + d];
            dK[j][c] += dsi * Qs[i * P + d];
          }
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < KPW; j++) {
    const int64_t kj = k0 + warp * KPW + j;
    if (kj >= Tk) continue;
#pragma unroll
    for (int c = 0; c < DPL; c++) {
      const int d = lane + 32 * c;
      if (d >= D) continue;
      lav_st<float>(dk.ptr, dk.dtype, hb.dk + kj * dk.strides[2] + d, dK[j][c]);
      lav_st<float>(dv.ptr, dv.dtype, hb.dv + kj * dv.strides[2] + d, dV[j][c]);
    }
  }
}

__global__ void __launch_bounds__(WARPS * 32)
dq_k(int64_t H, int64_t Tq, int64_t Tk, int D, LavArg q, LavArg k, LavArg v, LavArg o, LavArg g, LavArg lse, const float* delta,
     LavArg dq, LavArg dk, LavArg dv, float scale, int causal) {
  __shared__ float Qs[QB][DMAX], Gs[QB][DMAX];
  __shared__ float Ks[KT][DMAX + 1], Vs[KT][DMAX + 1];
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = (int64_t)blockIdx.x * QB;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const Heads hb = heads(b, h, q, k, v, o, g, dq, dk, dv);
  for (int e = threadIdx.x; e < QB * DMAX; e += blockDim.x) {
    const int r = e / DMAX, d = e % DMAX;
    const int64_t t = q0 + r;
    const bool in = t < Tq && d < D;
    Qs[r][d] = in ? lav_ld<float>(q.ptr, q.dtype, hb.q + t * q.strides[2] + d) : 0.f;
    Gs[r][d] = in ? lav_ld<float>(g.ptr, g.dtype, hb.g + t * g.strides[2] + d) : 0.f;
  }
  float L[RPW], Dl[RPW], acc[RPW][DPL];
#pragma unroll
  for (int r = 0; r < RPW; r++) {
    const int64_t t = q0 + warp * RPW + r;
    L[r] = t < Tq ? lav_ld<float>(lse.ptr, lse.dtype, lse.offset + (b * H + h) * Tq + t) : 0.f;
    Dl[r] = t < Tq ? delta[(b * H + h) * Tq + t] : 0.f;
#pragma unroll
    for (int c = 0; c < DPL; c++) acc[r][c] = 0.f;
  }
  int64_t kEnd = Tk;
  if (causal) { const int64_t last = q0 + QB - 1; kEnd = last + 1 < Tk ? last + 1 : Tk; }
  for (int64_t k0 = 0; k0 < kEnd; k0 += KT) {
    __syncthreads();
    for (int e = threadIdx.x; e < KT * DMAX; e += blockDim.x) {
      const int r = e / DMAX, d = e % DMAX;
      const int64_t t = k0 + r;
      const bool in = t < Tk && d < D;
      Ks[r][d] = in ? lav_ld<float>(k.ptr, k.dtype, hb.k + t * k.strides[2] + d) : 0.f;
      Vs[r][d] = in ? lav_ld<float>(v.ptr, v.dtype, hb.v + t * v.strides[2] + d) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < RPW; r++) {
      const int row = warp * RPW + r;
      const int64_t qi = q0 + row, kj = k0 + lane;
      float s = 0.f, dp = 0.f;
      for (int d = 0; d < D; d++) {
        s += Qs[row][d] * Ks[lane][d];
        dp += Gs[row][d] * Vs[lane][d];
      }
      const bool live = qi < Tq && kj < Tk && !(causal && kj > qi);
      const float p = live ? __expf(s * scale - L[r]) : 0.f;
      const float ds = p * (dp - Dl[r]) * scale;
      for (int j = 0; j < KT; j++) {
        const float dsj = __shfl_sync(0xffffffffu, ds, j);
#pragma unroll
        for (int c = 0; c < DPL; c++) acc[r][c] += dsj * Ks[j][lane + 32 * c];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < RPW; r++) {
    const int64_t qi = q0 + warp * RPW + r;
    if (qi >= Tq) continue;
#pragma unroll
    for (int c = 0; c < DPL; c++) {
      const int d = lane + 32 * c;
      if (d < D) lav_st<float>(dq.ptr, dq.dtype, hb.dq + qi * dq.strides[2] + d, acc[r][c]);
    }
  }
}

}  // namespace

extern "C" cudaError_t lav_attention_backward(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, LavArg q, LavArg k, LavArg v,
                                              LavArg o, LavArg lse, LavArg g, LavArg dq, LavArg dk, LavArg dv, float* delta, double scale,
                                              int causal, cudaStream_t s) {
  if (B == 0 || H == 0 || Tq == 0 || Tk == 0) return cudaSuccess;
  if (D > DMAX || D < 1 || H > 65535 || B > 65535) return cudaErrorInvalidValue;
  const int64_t rows = B * H * Tq;
  delta_k<<<lav_blocks(rows, WARPS, 0x7fffffffu), WARPS * 32, 0, s>>>(rows, H, Tq, (int)D, o, g, delta);
  const size_t smem = sizeof(float) * (2 * QT * (D + 1) + 2 * KB * D + 2 * QT);
  static bool attr = false;  // above 48 KiB a kernel must opt in to dynamic shared memory
  if (!attr) {
    cudaError_t e = cudaFuncSetAttribute(dkdv_k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)(sizeof(float) * (2 * QT * (DMAX + 1) + 2 * KB * DMAX + 2 * QT)));
    if (e != cudaSuccess) return e;
    attr = true;
  }
  dkdv_k<<<dim3((unsigned)((Tk + KB - 1) / KB), (unsigned)H, (unsigned)B), WARPS * 32, smem, s>>>(H, Tq, Tk, (int)D, q, k, v, o, g, lse, delta, dq, dk, dv,
                                                                                                (float)scale, causal);
  dq_k<<<dim3((unsigned)((Tq + QB - 1) / QB), (unsigned)H, (unsigned)B), WARPS * 32, 0, s>>>(H, Tq, Tk, (int)D, q, k, v, o, g, lse, delta, dq, dk, dv,
                                                                                         (float)scale, causal);
  return cudaGetLastError();
}

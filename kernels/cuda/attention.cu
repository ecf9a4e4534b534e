// Fused attention forward, flash-style: softmax(scale * q k^T) v without materialising the [Tq, Tk]
// scores. One block of 4 warps per (batch, head, 16 query rows); K/V stream through shared memory in
// tiles of 32 keys; each warp owns 4 query rows, a lane scores one key of the tile and then owns D/32
// output columns, with the online-softmax rescaling (running max m, running sum l). float32
// arithmetic for float32/bfloat16/float16 storage; head dim up to 128. Optionally writes the row
// log-sum-exp (float32) for a backward pass.
#include "common.cuh"

namespace {

constexpr int BQ = 16, BK = 32, WARPS = 4, ROWS = BQ / WARPS, DMAX = 128, DPL = DMAX / 32;

__global__ void __launch_bounds__(WARPS * 32)
attention_k(int64_t H, int64_t Tq, int64_t Tk, int D, LavArg q, LavArg k, LavArg v, LavArg o, LavArg lse, int hasLse, float scale, int causal) {
  __shared__ float Qs[BQ][DMAX];
  __shared__ float Ks[BK][DMAX + 1];
  __shared__ float Vs[BK][DMAX];
  const int64_t b = blockIdx.z, h = blockIdx.y, q0 = (int64_t)blockIdx.x * BQ;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t qb = q.offset + b * q.strides[0] + h * q.strides[1];
  const int64_t kb = k.offset + b * k.strides[0] + h * k.strides[1];
  const int64_t vb = v.offset + b * v.strides[0] + h * v.strides[1];
  const int64_t ob = o.offset + b * o.strides[0] + h * o.strides[1];

  for (int e = threadIdx.x; e < BQ * DMAX; e += blockDim.x) {
    int r = e / DMAX, d = e % DMAX;
    int64_t t = q0 + r;
    Qs[r][d] = (t < Tq && d < D) ? lav_ld<float>(q.ptr, q.dtype, qb + t * q.strides[2] + d) : 0.f;
  }

  float m[ROWS], l[ROWS], acc[ROWS][DPL];
#pragma unroll
  for (int r = 0; r < ROWS; r++) {
    m[r] = -INFINITY; l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < DPL; c++) acc[r][c] = 0.f;
  }

  int64_t kEnd = Tk;
  if (causal) { int64_t last = q0 + BQ - 1; kEnd = last + 1 < Tk ? last + 1 : Tk; }
  for (int64_t k0 = 0; k0 < kEnd; k0 += BK) {
    __syncthreads();
    for (int e = threadIdx.x; e < BK * DMAX; e += blockDim.x) {
      int r = e / DMAX, d = e % DMAX;
      int64_t t = k0 + r;
      bool in = t < Tk && d < D;
      Ks[r][d] = in ? lav_ld<float>(k.ptr, k.dtype, kb + t * k.strides[2] + d) : 0.f;
      Vs[r][d] = in ? lav_ld<float>(v.ptr, v.dtype, vb + t * v.strides[2] + d) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
      const int row = warp * ROWS + r;
      const int64_t qi = q0 + row, kj = k0 + lane;
      float s = 0.f;
      for (int d = 0; d < D; d++) s += Qs[row][d] * Ks[lane][d];
      s *= scale;
      if (kj >= Tk || (causal && kj > qi)) s = -INFINITY;
      float tileMax = lav_warp_max(s);
      float mNew = fmaxf(m[r], tileMax);
      float p = mNew == -INFINITY ? 0.f : __expf(s - mNew);
      float alpha = mNew == -INFINITY ? 1.f : __expf(m[r] - mNew);
      l[r] = l[r] * alpha + lav_warp_sum(p);
      m[r] = mNew;
#pragma unroll
      for (int c = 0; c < DPL; c++) acc[r][c] *= alpha;
      for (int j = 0; j < BK; j++) {
        float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
        for (int c = 0; c < DPL; c++) acc[r][c] += pj * Vs[j][lane + 32 * c];
      }
    }
  }

#pragma unroll
  for (int r = 0; r < ROWS; r++) {
    const int64_t qi = q0 + warp * ROWS + r;
    if (qi >= Tq) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
#pragma unroll
    for (int c = 0; c < DPL; c++) {
      int d = lane + 32 * c;
      if (d < D) lav_st<float>(o.ptr, o.dtype, ob + qi * o.strides[2] + d, acc[r][c] * inv);
    }
    if (hasLse && lane == 0) lav_st<float>(lse.ptr, lse.dtype, lse.offset + (b * H + h) * Tq + qi, m[r] + logf(l[r]));
  }
}

}  // namespace

extern "C" cudaError_t lav_attention(int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t D, LavArg q, LavArg k, LavArg v, LavArg o,
                                     const LavArg* lse, double scale, int causal, cudaStream_t s) {
  if (B == 0 || H == 0 || Tq == 0) return cudaSuccess;
  if (D > DMAX || D < 1 || H > 65535 || B > 65535) return cudaErrorInvalidValue;
  LavArg none{};
  dim3 grid((unsigned)((Tq + BQ - 1) / BQ), (unsigned)H, (unsigned)B);
  attention_k<<<grid, WARPS * 32, 0, s>>>(H, Tq, Tk, (int)D, q, k, v, o, lse ? *lse : none, lse != nullptr, (float)scale, causal);
  return cudaGetLastError();
}

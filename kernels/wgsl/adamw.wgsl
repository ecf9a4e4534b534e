// One AdamW step over a parameter tensor in one pass (torch.optim.AdamW semantics, as src/optim/adamw.ts
// composes it and kernels/cuda/adamw.cu fuses it): p *= 1 - lr wd; m = b1 m + (1 - b1) g;
// v = b2 v + (1 - b2) g^2; p += (-lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps). Gradient of any float
// storage type (times gradScale first), f32 moments, optional low-precision copy of the new weights.
// meta: n, pOffset, gOffset, mOffset, vOffset, lowOffset, hasLow, then f32 words: decay (1 - lr wd), b1,
//       b2, eps, stepSize (lr / bc1), bc2sqrt, gradScale, 1 - b1, 1 - b2 (rounded once, on the host)
@group(0) @binding(1) var<storage, read_write> P: array<$P_T>;
@group(0) @binding(2) var<storage, read> G: array<$G_T>;
@group(0) @binding(3) var<storage, read_write> Mo: array<f32>;
@group(0) @binding(4) var<storage, read_write> Vo: array<f32>;
@group(0) @binding(5) var<storage, read_write> Lo: array<$L_T>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg, 256u);
  if (i >= md[0]) { return; }
  let b1 = mf(8u);
  let b2 = mf(9u);
  let g = f32(G[md[2] + i]) * mf(13u);
  let m = Mo[md[3] + i] * b1 + g * mf(14u);
  let v = Vo[md[4] + i] * b2 + g * mf(15u) * g;
  let p = f32(P[md[1] + i]) * mf(7u);
  let next = p + m * -mf(11u) / (sqrt(v) / mf(12u) + mf(10u));
  Mo[md[3] + i] = m;
  Vo[md[4] + i] = v;
  P[md[1] + i] = $ST_P;
  if (md[6] == 1u) { Lo[md[5] + i] = $ST_L; }
}

// Batched matmul without workgroup memory: 8 x 8 invocations, each computing 4 x 4 outputs of a 32 x 32
// tile straight from global memory (strided, scalar). For small products, where a tiled kernel's
// barriers and staging cost more than they save, and for software adapters (SwiftShader, lavapipe),
// where every workgroup barrier is a context switch. Rows and columns are interleaved across invocations.
// meta: M, K, N, aOffset, as0, as1, as2, bOffset, bs0, bs1, bs2, outOffset, os0, os1, os2
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_T>;
@group(0) @binding(2) var<storage, read> A: array<$A_T>;
@group(0) @binding(3) var<storage, read> B: array<$B_T>;

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = md[0];
  let K = md[1];
  let N = md[2];
  let batch = i32(wid.z);
  let aBase = mi(3u) + batch * mi(4u);
  let bBase = mi(7u) + batch * mi(8u);
  let as1 = mi(5u); let as2 = mi(6u);
  let bs1 = mi(9u); let bs2 = mi(10u);
  var rowA: array<i32, 4>;
  var colB: array<i32, 4>;
  var okM: array<bool, 4>;
  var okN: array<bool, 4>;
  for (var r = 0u; r < 4u; r++) {
    let m = wid.y * 32u + lid.y + 8u * r;
    let n = wid.x * 32u + lid.x + 8u * r;
    okM[r] = m < M;
    okN[r] = n < N;
    rowA[r] = aBase + i32(min(m, M - 1u)) * as1;
    colB[r] = bBase + i32(min(n, N - 1u)) * bs2;
  }
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < K; k++) {
    let ka = i32(k) * as2;
    let kb = i32(k) * bs1;
    let b = vec4<f32>(f32(B[u32(colB[0] + kb)]), f32(B[u32(colB[1] + kb)]), f32(B[u32(colB[2] + kb)]), f32(B[u32(colB[3] + kb)]));
    for (var r = 0u; r < 4u; r++) { acc[r] = fma(vec4<f32>(f32(A[u32(rowA[r] + ka)])), b, acc[r]); }
  }
  let o = mi(11u) + batch * mi(12u);
  for (var r = 0u; r < 4u; r++) {
    if (!okM[r]) { continue; }
    let m = wid.y * 32u + lid.y + 8u * r;
    for (var c = 0u; c < 4u; c++) {
      if (!okN[c]) { continue; }
      let n = wid.x * 32u + lid.x + 8u * c;
      out[u32(o + i32(m) * mi(13u) + i32(n) * mi(14u))] = $STORE;
    }
  }
}

// Batched matmul out[b] = a[b] @ b[b] over arbitrary strides: 64x64 output tiles per workgroup of 16x16
// invocations (4x4 outputs each), K in steps of 16 through workgroup memory; the batch is workgroup z.
// meta: M, K, N, aOffset, as0, as1, as2, bOffset, bs0, bs1, bs2, outOffset, os0, os1, os2
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;

var<workgroup> ta: array<array<f32, 65>, 16>;  // [k][m]
var<workgroup> tb: array<array<f32, 65>, 16>;  // [k][n]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = md[0];
  let K = md[1];
  let N = md[2];
  let batch = i32(wid.z);
  let aBase = mi(3u) + batch * mi(4u);
  let bBase = mi(7u) + batch * mi(8u);
  let as1 = mi(5u); let as2 = mi(6u);
  let bs1 = mi(9u); let bs2 = mi(10u);
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  let t = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    // 64x16 of A and 16x64 of B: 1024 elements each, 4 per invocation
    for (var e = 0u; e < 4u; e++) {
      let q = t + e * 256u;
      let am = q / 16u; let ak = q % 16u;
      var av = 0.0;
      if (m0 + am < M && k0 + ak < K) { av = A[u32(aBase + i32(m0 + am) * as1 + i32(k0 + ak) * as2)]; }
      ta[ak][am] = av;
      let bk = q / 64u; let bn = q % 64u;
      var bv = 0.0;
      if (k0 + bk < K && n0 + bn < N) { bv = B[u32(bBase + i32(k0 + bk) * bs1 + i32(n0 + bn) * bs2)]; }
      tb[bk][bn] = bv;
    }
    workgroupBarrier();
    for (var k = 0u; k < 16u; k++) {
      var ra: array<f32, 4>;
      var rb: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { ra[r] = ta[k][lid.y + 16u * r]; rb[r] = tb[k][lid.x + 16u * r]; }
      for (var r = 0u; r < 4u; r++) {
        for (var c = 0u; c < 4u; c++) { acc[r][c] = fma(ra[r], rb[c], acc[r][c]); }
      }
    }
    workgroupBarrier();
  }
  let oBase = mi(11u) + batch * mi(12u);
  for (var r = 0u; r < 4u; r++) {
    let m = m0 + lid.y + 16u * r;
    if (m >= M) { continue; }
    for (var c = 0u; c < 4u; c++) {
      let n = n0 + lid.x + 16u * c;
      if (n < N) { out[u32(oBase + i32(m) * mi(13u) + i32(n) * mi(14u))] = acc[r][c]; }
    }
  }
}

// Batched matmul without workgroup memory, vectorised: 8 x 8 invocations, each computing a 4 x 4 block of
// a 32 x 32 tile from vec4 loads, for operands whose layout allows them on both sides (the contiguous
// dim of each a multiple of 4, offsets and other strides aligned). K advances 4 at a time: a 4 x 4 block
// of A (rows x k) and of B (k x columns) in registers, loaded along whichever dim is contiguous, and
// acc += A * B as a 4x4 matrix product (src/backends/webgpu/matmul.ts generates the loads). For small
// products and software adapters, like matmul_direct.wgsl, with a quarter of its memory operations.
// meta: M, K, N, aOffset, as0, as1, as2, bOffset, bs0, bs1, bs2, outOffset, os0, os1, os2
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_ST>;
@group(0) @binding(2) var<storage, read> A: array<vec4<$A_T>>;
@group(0) @binding(3) var<storage, read> B: array<vec4<$B_T>>;

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
  let m0 = wid.y * 32u + lid.y * 4u;
  let n0 = wid.x * 32u + lid.x * 4u;
  if (m0 >= M || n0 >= N) { return; }
  var acc = mat4x4<f32>();  // column c = output column n0 + c, over rows m0..m0+3
  for (var k = 0u; k < K; k += 4u) {
    $LOAD_A
    $LOAD_B
    acc += a * b;
  }
  let o = mi(11u) + batch * mi(12u);
  let rows = transpose(acc);
  for (var r = 0u; r < 4u; r++) {
    let m = m0 + r;
    if (m >= M) { break; }
    $STORE
  }
}

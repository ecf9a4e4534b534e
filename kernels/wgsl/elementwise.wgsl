// Elementwise map over strided views: out[view(i)] = STORE(EXPR(in0[view(i)], in1[...], ...)), i < n.
// meta: n, rank, shape[rank], then per operand (inputs, then out): offset, strides[rank]; then scalars.
// Specialised per (op, dtypes) by src/backends/webgpu/codegen.ts: the input bindings in0.. (from binding
// 2), the loads of a, b, c (as f32, or raw), and the store (accumulating: added to what out holds).
// Dense views collapse to rank 1 on the host and run elementwise_flat.wgsl instead. The coordinates of
// element i are found once (one division per dim) and shared by every operand's offset.
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_T>;
$BINDINGS

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg, 256u);
  let n = md[0];
  if (i >= n) { return; }
  let rank = md[1];
  let scalars = 2u + rank + $NOPS * (rank + 1u);
  var offs: array<i32, $NOPS>;
  for (var k = 0u; k < $NOPS; k++) { offs[k] = mi(2u + rank + k * (rank + 1u)); }
  var rem = i;
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let s = md[2u + u32(d)];
    let q = rem / s;
    let c = i32(rem - q * s);
    rem = q;
    for (var k = 0u; k < $NOPS; k++) { offs[k] += c * mi(3u + rank + k * (rank + 1u) + u32(d)); }
  }
  $LOADS
  let o = u32(offs[$NIN]);
  $STORE
}

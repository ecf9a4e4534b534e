// Elementwise map over strided views of rank <= 4 (after the host merged and padded the dims to exactly
// 4): the dispatch is the grid itself, x over dim 3, y over dim 2, z over dims 0 and 1, so finding an
// element's coordinates takes one division (the strided kernel takes one per dim, and integer division
// is slow on GPUs and very slow on software adapters).
// meta: n, 4, shape[4], then per operand (inputs, then out): offset, strides[4]; then scalars.
// Specialised like elementwise.wgsl: input bindings, loads of a, b, c, and the store.
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_T>;
$BINDINGS

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= md[5]) { return; }
  let i0 = gid.z / md[3];
  let i1 = gid.z - i0 * md[3];
  let scalars = 6u + $NOPS * 5u;
  var offs: array<i32, $NOPS>;
  for (var k = 0u; k < $NOPS; k++) {
    let v = 6u + k * 5u;
    offs[k] = mi(v) + i32(i0) * mi(v + 1u) + i32(i1) * mi(v + 2u) + i32(gid.y) * mi(v + 3u) + i32(gid.x) * mi(v + 4u);
  }
  $LOADS
  let o = u32(offs[$NIN]);
  $STORE
}

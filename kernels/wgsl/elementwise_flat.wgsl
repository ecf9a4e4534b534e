// Elementwise map over views that are rank 1 after the host merged their dims (every dense op, and a
// dense operand next to a broadcast scalar): element i of operand k is at offset_k + i * stride_k, so
// no index arithmetic beyond one multiply-add (the strided kernel divides by every dim).
// meta: n, then per operand (inputs, then out): offset, stride; then scalars.
// Specialised like elementwise.wgsl: input bindings, loads of a, b, c, and the store.
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_T>;
$BINDINGS

fn at(k: u32, i: u32) -> u32 { return u32(mi(1u + 2u * k) + i32(i) * mi(2u + 2u * k)); }

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg, 256u);
  if (i >= md[0]) { return; }
  let scalars = 1u + 2u * $NOPS;
  $LOADS
  let o = at($NIN, i);
  $STORE
}

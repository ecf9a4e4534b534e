// torch.gather: out[i] = x[base(i) + index[i] * axisStride], one invocation per element of index/out.
// An index outside [0, axisSize) writes 0 and raises status bit 1 (reported by the next read).
// meta: n, rank, shape[rank] (index shape), xView(offset, strides with the axis stride 0),
//       indexView(offset, strides), outView(offset, strides), axisSize, axisStride
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_T>;
@group(0) @binding(2) var<storage, read> x: array<$X_T>;
@group(0) @binding(3) var<storage, read> index: array<i32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg, 256u);
  if (i >= md[0]) { return; }
  let rank = md[1];
  let v = rank + 1u;
  let at = 2u + rank + 3u * v;
  let k = index[view_offset(i, rank, 2u, 2u + rank + v)];
  let o = view_offset(i, rank, 2u, 2u + rank + 2u * v);
  if (k < 0 || u32(k) >= md[at]) {
    atomicOr(&status[0], 1u);
    out[o] = $OUT_T(0);
    return;
  }
  out[o] = $OUT_T(x[u32(i32(view_offset(i, rank, 2u, 2u + rank)) + k * mi(at + 1u))]);
}

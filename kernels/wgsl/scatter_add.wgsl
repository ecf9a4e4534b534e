// scatterAdd, deterministic and atomic-free: one invocation per dst element walks the index entries on
// its line along `axis` and sums the src values whose index names it (float atomics do not exist in WGSL).
// meta: n, rank, dstShape[rank], dstView(offset, strides), indexShape[rank], indexView(offset, strides),
//       srcView(offset, strides), axis
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<i32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg, 256u);
  if (i >= md[0]) { return; }
  let rank = md[1];
  let dv = 2u + rank;               // dst view
  let ish = dv + rank + 1u;         // index shape
  let iv = ish + rank;              // index view
  let sv = iv + rank + 1u;          // src view
  let axis = md[sv + rank + 1u];
  var rem = i;
  var dOff = mi(dv);
  var iOff = mi(iv);
  var sOff = mi(sv);
  var mine = 0;
  var inside = true;
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let ud = u32(d);
    let s = md[2u + ud];
    let c = rem % s;
    rem = rem / s;
    dOff += i32(c) * mi(dv + 1u + ud);
    if (ud == axis) { mine = i32(c); continue; }
    if (c >= md[ish + ud]) { inside = false; }
    iOff += i32(c) * mi(iv + 1u + ud);
    sOff += i32(c) * mi(sv + 1u + ud);
  }
  if (!inside) { return; }
  let len = md[ish + axis];
  let dsz = md[2u + axis];
  var acc = 0.0;
  for (var j = 0u; j < len; j++) {
    let k = index[u32(iOff + i32(j) * mi(iv + 1u + axis))];
    if (k == mine) { acc += src[u32(sOff + i32(j) * mi(sv + 1u + axis))]; }
    if (mine == 0 && (k < 0 || u32(k) >= dsz)) { atomicOr(&status[0], 2u); }
  }
  dst[u32(dOff)] += acc;
}

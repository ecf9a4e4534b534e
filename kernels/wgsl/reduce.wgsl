// Reduce over arbitrary axes: one workgroup per output element; 64 invocations stride over the reduced
// elements, then a tree in workgroup memory. Each partial is (value, index); argmax/argmin keep the
// lowest index among equal extremes, as the cpu reference does.
// meta: nOut, nKept, nRed, xOffset, outOffset, kept sizes[nKept], kept x strides, kept out strides,
//       reduced sizes[nRed], reduced x strides.
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_T>;
@group(0) @binding(2) var<storage, read> x: array<$X_T>;

struct P { v: f32, i: u32 }
var<workgroup> part: array<P, 64>;

fn merge(a: P, b: P) -> P {
  $MERGE
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = flat_group(wid, nwg);
  if (o >= md[0]) { return; }
  let nk = md[1];
  let nr = md[2];
  let ks = 5u;
  let rs = 5u + 3u * nk;
  var rem = o;
  var xb = mi(3u);
  var ob = mi(4u);
  for (var d = i32(nk) - 1; d >= 0; d--) {
    let s = md[ks + u32(d)];
    let c = i32(rem % s);
    rem = rem / s;
    xb += c * mi(ks + nk + u32(d));
    ob += c * mi(ks + 2u * nk + u32(d));
  }
  var inner = 1u;
  for (var d = 0u; d < nr; d++) { inner *= md[rs + d]; }
  var acc = P($INIT, 0xffffffffu);
  for (var i = lid; i < inner; i += 64u) {
    var r = i;
    var off = xb;
    for (var d = i32(nr) - 1; d >= 0; d--) {
      let s = md[rs + u32(d)];
      off += i32(r % s) * mi(rs + nr + u32(d));
      r = r / s;
    }
    acc = merge(acc, P(f32(x[u32(off)]), i));
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var step = 32u; step > 0u; step = step >> 1u) {
    if (lid < step) { part[lid] = merge(part[lid], part[lid + step]); }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let r = part[0];
    out[u32(ob)] = $STORE;
  }
}

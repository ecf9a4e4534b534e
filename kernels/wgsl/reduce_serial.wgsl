// Reduce with one invocation per output element and no workgroup memory: for many outputs over short
// reduced extents (neighbouring invocations then read neighbouring addresses when the kept axis is the
// inner one), and on software adapters, where a workgroup barrier costs more than the loop it saves.
// Same metadata, merge and store as reduce.wgsl.
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_T>;
@group(0) @binding(2) var<storage, read> x: array<$X_T>;

struct P { v: f32, i: u32 }

fn merge(a: P, b: P) -> P {
  $MERGE
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let o = flat_id(gid, nwg, 64u);
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
  if (nr == 1u) {
    let st = mi(rs + 1u);
    for (var i = 0u; i < inner; i++) { acc = merge(acc, P(f32(x[u32(xb + i32(i) * st)]), i)); }
  } else {
    for (var i = 0u; i < inner; i++) {
      var r = i;
      var off = xb;
      for (var d = i32(nr) - 1; d >= 0; d--) {
        let s = md[rs + u32(d)];
        off += i32(r % s) * mi(rs + nr + u32(d));
        r = r / s;
      }
      acc = merge(acc, P(f32(x[u32(off)]), i));
    }
  }
  let r = acc;
  out[u32(ob)] = $STORE;
}

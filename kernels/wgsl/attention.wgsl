// Fused attention forward, flash style: out = softmax(scale * q k^T (+ causal mask)) v with the
// log-sum-exp per query row, never materialising the [Tq, Tk] scores. One invocation per query row, WG
// rows per workgroup; keys and values stream through workgroup memory BKV rows at a time and each row
// keeps a running max, sum and weighted value sum (online softmax) in registers. Causal masks key j > query
// i (top-left aligned, as the cuda kernel). Views are [B, H, T, D] with unit stride on D; D is baked in.
// meta: B, H, Tq, Tk, scale (f32), causal, hasLse, then per q, k, v, out: offset, strides of B, H, T;
//       then the lse offset (lse is contiguous [B, H, Tq] float32).
@group(0) @binding(1) var<storage, read_write> out: array<$O_T>;
@group(0) @binding(2) var<storage, read> Q: array<$Q_T>;
@group(0) @binding(3) var<storage, read> Kt: array<$K_T>;
@group(0) @binding(4) var<storage, read> Vt: array<$V_T>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

const D = $Du;
const WG = $WGu;
const BKV = $BKVu;
var<workgroup> tk: array<f32, $KV_LENu>;
var<workgroup> tv: array<f32, $KV_LENu>;

fn st_out(v: f32) -> $O_T { return $ST_OUT; }

fn at(view: u32, b: u32, h: u32, t: u32) -> i32 {
  return mi(view) + i32(b) * mi(view + 1u) + i32(h) * mi(view + 2u) + i32(t) * mi(view + 3u);
}

@compute @workgroup_size($WGu)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let H = md[1];
  let Tq = md[2];
  let Tk = md[3];
  let scale = mf(4u);
  let causal = md[5] == 1u;
  let b = wid.z;
  let h = wid.y;
  let qi = wid.x * WG + lid;
  var q: array<f32, D>;
  var acc: array<f32, D>;
  let qa = at(7u, b, h, min(qi, Tq - 1u));
  for (var d = 0u; d < D; d++) { q[d] = f32(Q[u32(qa + i32(d))]) * scale; }
  var m = -inf_();
  var l = 0.0;
  var kEnd = Tk;
  if (causal) { kEnd = min(Tk, wid.x * WG + WG); }
  for (var k0 = 0u; k0 < kEnd; k0 += BKV) {
    for (var e = lid; e < BKV * D; e += WG) {
      let j = k0 + e / D;
      let d = e % D;
      var kv = 0.0;
      var vv = 0.0;
      if (j < Tk) {
        kv = f32(Kt[u32(at(11u, b, h, j) + i32(d))]);
        vv = f32(Vt[u32(at(15u, b, h, j) + i32(d))]);
      }
      tk[e] = kv;
      tv[e] = vv;
    }
    workgroupBarrier();
    let n = min(BKV, kEnd - k0);
    for (var jj = 0u; jj < n; jj++) {
      if (causal && k0 + jj > qi) { break; }
      var s = 0.0;
      for (var d = 0u; d < D; d++) { s = fma(q[d], tk[jj * D + d], s); }
      let mNew = max(m, s);
      let corr = exp(m - mNew);
      let p = exp(s - mNew);
      l = l * corr + p;
      for (var d = 0u; d < D; d++) { acc[d] = fma(p, tv[jj * D + d], acc[d] * corr); }
      m = mNew;
    }
    workgroupBarrier();
  }
  if (qi < Tq) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let oa = at(19u, b, h, qi);
    for (var d = 0u; d < D; d++) { out[u32(oa + i32(d))] = st_out(acc[d] * inv); }
    if (md[6] == 1u) { lse[md[23] + (b * H + h) * Tq + qi] = m + log(l); }
  }
}

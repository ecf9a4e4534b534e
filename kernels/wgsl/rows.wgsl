// Fused row kernels over the last axis of contiguous [rows, cols] data: one workgroup per row, 64
// invocations, reductions through workgroup memory. The host picks the entry point: softmax, softmax_backward or layer_norm.
// meta: rows, cols, then per kernel (see each function). Bindings a kernel does not use are bound to X.
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read> Wt: array<f32>;
@group(0) @binding(5) var<storage, read> Bs: array<f32>;
@group(0) @binding(6) var<storage, read_write> Mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> Rstd: array<f32>;

var<workgroup> red: array<f32, 64>;

fn row_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn row_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

// meta: rows, cols, xOffset, outOffset, scale (f32 bits), log (0/1)
fn softmax(row: u32, lid: u32) {
  let cols = md[1];
  let xo = md[2] + row * cols;
  let oo = md[3] + row * cols;
  let scale = mf(4u);
  var m = -inf_();
  for (var j = lid; j < cols; j += 64u) { m = max(m, X[xo + j] * scale); }
  m = row_max(m, lid);
  var s = 0.0;
  for (var j = lid; j < cols; j += 64u) { s += exp(X[xo + j] * scale - m); }
  s = row_sum(s, lid);
  if (md[5] == 1u) {
    let lse = m + log(s);
    for (var j = lid; j < cols; j += 64u) { out[oo + j] = X[xo + j] * scale - lse; }
  } else {
    let inv = 1.0 / s;
    for (var j = lid; j < cols; j += 64u) { out[oo + j] = exp(X[xo + j] * scale - m) * inv; }
  }
}

// meta: rows, cols, yOffset (X), gOffset (G), outOffset, scale
fn softmax_backward(row: u32, lid: u32) {
  let cols = md[1];
  let yo = md[2] + row * cols;
  let go = md[3] + row * cols;
  let oo = md[4] + row * cols;
  var d = 0.0;
  for (var j = lid; j < cols; j += 64u) { d += G[go + j] * X[yo + j]; }
  d = row_sum(d, lid);
  let scale = mf(5u);
  for (var j = lid; j < cols; j += 64u) { out[oo + j] = scale * X[yo + j] * (G[go + j] - d); }
}

// meta: rows, cols, xOffset, outOffset, wOffset, bOffset, hasW, hasB, eps, meanOffset, rstdOffset
fn layer_norm(row: u32, lid: u32) {
  let cols = md[1];
  let xo = md[2] + row * cols;
  let oo = md[3] + row * cols;
  var s = 0.0;
  for (var j = lid; j < cols; j += 64u) { s += X[xo + j]; }
  let mu = row_sum(s, lid) / f32(cols);
  var v = 0.0;
  for (var j = lid; j < cols; j += 64u) { let d = X[xo + j] - mu; v += d * d; }
  let rs = 1.0 / sqrt(row_sum(v, lid) / f32(cols) + mf(8u));
  for (var j = lid; j < cols; j += 64u) {
    var y = (X[xo + j] - mu) * rs;
    if (md[6] == 1u) { y = y * Wt[md[4] + j]; }
    if (md[7] == 1u) { y = y + Bs[md[5] + j]; }
    out[oo + j] = y;
  }
  if (lid == 0u) {
    Mean[md[9] + row] = mu;
    Rstd[md[10] + row] = rs;
  }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = flat_group(wid, nwg);
  if (row >= md[0]) { return; }
  $ENTRY(row, lid);
}

// Fused row kernels over the last axis of contiguous [rows, cols] data: one workgroup of WG invocations
// per row with reductions through workgroup memory, or (software adapters, where a barrier is a context
// switch) one invocation per row and no barrier. The host picks the entry point: softmax, softmax_backward or layer_norm, and
// the storage type of each binding (f32, or f16 with shader-f16); arithmetic is f32.
// meta: rows, cols, then per kernel (see each function). Bindings a kernel does not use are bound to X.
@group(0) @binding(1) var<storage, read_write> out: array<$O_T>;
@group(0) @binding(2) var<storage, read> X: array<$X_T>;
@group(0) @binding(3) var<storage, read> G: array<$G_T>;
@group(0) @binding(4) var<storage, read> Wt: array<$W_T>;
@group(0) @binding(5) var<storage, read> Bs: array<$B_T>;
@group(0) @binding(6) var<storage, read_write> Mean: array<$M_T>;
@group(0) @binding(7) var<storage, read_write> Rstd: array<$M_T>;

const WG = $WGu;    // invocations per workgroup
const STEP = $STEPu; // invocations sharing a row: WG (cooperative) or 1 (one row per invocation)

fn st_out(v: f32) -> $O_T { return $ST_OUT; }
fn st_stat(v: f32) -> $M_T { return $ST_STAT; }

// row_sum and row_max over the STEP invocations of a row: a tree in workgroup memory, or the identity.
$REDUCERS

// meta: rows, cols, xOffset, outOffset, scale (f32 bits), log (0/1)
fn softmax(row: u32, lid: u32) {
  let cols = md[1];
  let xo = md[2] + row * cols;
  let oo = md[3] + row * cols;
  let scale = mf(4u);
  var m = -inf_();
  for (var j = lid; j < cols; j += STEP) { m = max(m, f32(X[xo + j]) * scale); }
  m = row_max(m, lid);
  var s = 0.0;
  for (var j = lid; j < cols; j += STEP) { s += exp(f32(X[xo + j]) * scale - m); }
  s = row_sum(s, lid);
  if (md[5] == 1u) {
    let lse = m + log(s);
    for (var j = lid; j < cols; j += STEP) { out[oo + j] = st_out(f32(X[xo + j]) * scale - lse); }
  } else {
    let inv = 1.0 / s;
    for (var j = lid; j < cols; j += STEP) { out[oo + j] = st_out(exp(f32(X[xo + j]) * scale - m) * inv); }
  }
}

// meta: rows, cols, yOffset (X), gOffset (G), outOffset, scale
fn softmax_backward(row: u32, lid: u32) {
  let cols = md[1];
  let yo = md[2] + row * cols;
  let go = md[3] + row * cols;
  let oo = md[4] + row * cols;
  var d = 0.0;
  for (var j = lid; j < cols; j += STEP) { d += f32(G[go + j]) * f32(X[yo + j]); }
  d = row_sum(d, lid);
  let scale = mf(5u);
  for (var j = lid; j < cols; j += STEP) { out[oo + j] = st_out(scale * f32(X[yo + j]) * (f32(G[go + j]) - d)); }
}

// meta: rows, cols, xOffset, outOffset, wOffset, bOffset, hasW, hasB, eps, meanOffset, rstdOffset
fn layer_norm(row: u32, lid: u32) {
  let cols = md[1];
  let xo = md[2] + row * cols;
  let oo = md[3] + row * cols;
  var s = 0.0;
  for (var j = lid; j < cols; j += STEP) { s += f32(X[xo + j]); }
  let mu = row_sum(s, lid) / f32(cols);
  var v = 0.0;
  for (var j = lid; j < cols; j += STEP) { let d = f32(X[xo + j]) - mu; v += d * d; }
  let rs = 1.0 / sqrt(row_sum(v, lid) / f32(cols) + mf(8u));
  for (var j = lid; j < cols; j += STEP) {
    var y = (f32(X[xo + j]) - mu) * rs;
    if (md[6] == 1u) { y = y * f32(Wt[md[4] + j]); }
    if (md[7] == 1u) { y = y + f32(Bs[md[5] + j]); }
    out[oo + j] = st_out(y);
  }
  if (lid == 0u) {
    Mean[md[9] + row] = st_stat(mu);
    Rstd[md[10] + row] = st_stat(rs);
  }
}

@compute @workgroup_size($WGu)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  $ROW
  if (row >= md[0]) { return; }
  $ENTRY(row, l);
}

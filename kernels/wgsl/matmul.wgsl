// Tiled batched matmul out[b] = A[b] @ B[b] for GPUs; src/backends/webgpu/matmul.ts picks the tile per
// adapter and shape and fills the placeholders. A workgroup of WX x WY invocations computes a BM x BN
// tile of out; each invocation keeps 4RM x 4RN accumulators in registers (its row quads and column quads
// interleaved with its neighbours', so workgroup-memory reads and output stores are contiguous across
// invocations). K advances in steps of BK through workgroup memory; the next step's global loads are
// issued before this step's arithmetic (register prefetch). Operands load as vec4 along their
// contiguous dim when the layout allows (load_a / load_b, generated), as scalars otherwise. With
// shader-f16 and f16 operands the products are summed in f16 within a K step and in f32 across steps.
// meta: M, K, N, aOffset, as0, as1, as2, bOffset, bs0, bs1, bs2, outOffset, os0, os1, os2
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_ST>;
@group(0) @binding(2) var<storage, read> A: array<$A_ST>;
@group(0) @binding(3) var<storage, read> B: array<$B_ST>;

const BM = $BMu;
const BN = $BNu;
const BK = $BKu;
const WX = $WXu;
const WY = $WYu;
const NT = $NTu;  // WX * WY
const RM = $RMu;  // row quads per invocation
const RN = $RNu;  // column quads per invocation
const LA = $LAu;  // A quads each invocation loads per K step: BM * BK / 4 / NT
const LB = $LBu;  // B quads: BN * BK / 4 / NT

var<workgroup> ta: array<vec4<$S>, $TA_LENu>;  // [k][m quad]
var<workgroup> tb: array<vec4<$S>, $TB_LENu>;  // [k][n quad]

struct Tile { M: u32, K: u32, N: u32, a: i32, as1: i32, as2: i32, b: i32, bs1: i32, bs2: i32, m0: u32, n0: u32 }

$LOADERS

@compute @workgroup_size($WXu, $WYu)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let batch = i32(wid.z);
  var c: Tile;
  c.M = md[0]; c.K = md[1]; c.N = md[2];
  c.a = mi(3u) + batch * mi(4u); c.as1 = mi(5u); c.as2 = mi(6u);
  c.b = mi(7u) + batch * mi(8u); c.bs1 = mi(9u); c.bs2 = mi(10u);
  c.m0 = wid.y * BM; c.n0 = wid.x * BN;
  let t = lid.y * WX + lid.x;
  var acc: array<vec4<f32>, $ACC_LENu>;  // [row r][column quad j]
  $PART_DECL
  var ra: array<vec4<$S>, LA>;
  var rb: array<vec4<$S>, LB>;
  load_a(c, 0u, t, &ra);
  load_b(c, 0u, t, &rb);
  for (var k0 = 0u; k0 < c.K; k0 += BK) {
    store_a(t, &ra);
    store_b(t, &rb);
    workgroupBarrier();
    if (k0 + BK < c.K) {
      load_a(c, k0 + BK, t, &ra);
      load_b(c, k0 + BK, t, &rb);
    }
    for (var k = 0u; k < BK; k++) {
      var a: array<vec4<$S>, RM>;
      var b: array<vec4<$S>, RN>;
      for (var i = 0u; i < RM; i++) { a[i] = ta[k * (BM / 4u) + lid.y + WY * i]; }
      for (var j = 0u; j < RN; j++) { b[j] = tb[k * (BN / 4u) + lid.x + WX * j]; }
      for (var r = 0u; r < RM * 4u; r++) {
        let av = vec4<$S>(a[r / 4u][r % 4u]);
        for (var j = 0u; j < RN; j++) { $ACC[r * RN + j] = fma(av, b[j], $ACC[r * RN + j]); }
      }
    }
    $FLUSH
    workgroupBarrier();
  }
  let o = mi(11u) + batch * mi(12u);
  for (var r = 0u; r < RM * 4u; r++) {
    let m = c.m0 + (lid.y + WY * (r / 4u)) * 4u + r % 4u;
    if (m >= c.M) { continue; }
    for (var j = 0u; j < RN; j++) {
      let n = c.n0 + (lid.x + WX * j) * 4u;
      let v = acc[r * RN + j];
      $STORE
    }
  }
}

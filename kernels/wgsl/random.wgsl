// Philox4x32-10, bit-identical to src/tensor/random.ts: key = (seed lo32, seed hi32), counter =
// (element number lo32, hi32, 0, 0); 32-bit mulhi from 16-bit halves (WGSL has no 64-bit integers).
// uniform = (x0 >> 8) * 2^-24; normal = Box-Muller of (x0, x1) with the angle reduced exactly in turns.
// meta: n, rank, shape[rank], outView(offset, strides), seedLo, seedHi, offsetLo, offsetHi, normal
@group(0) @binding(1) var<storage, read_write> out: array<$OUT_T>;

fn mulhi(a: u32, b: u32) -> u32 {
  let aLo = a & 0xffffu; let aHi = a >> 16u; let bLo = b & 0xffffu; let bHi = b >> 16u;
  let lo = aLo * bLo; let m1 = aHi * bLo; let m2 = aLo * bHi;
  let carry = ((lo >> 16u) + (m1 & 0xffffu) + (m2 & 0xffffu)) >> 16u;
  return aHi * bHi + (m1 >> 16u) + (m2 >> 16u) + carry;
}

fn philox(ctr: vec4u, key: vec2u) -> vec4u {
  var c = ctr;
  var k = key;
  for (var r = 0; r < 10; r++) {
    let hi0 = mulhi(0xd2511f53u, c.x); let lo0 = 0xd2511f53u * c.x;
    let hi1 = mulhi(0xcd9e8d57u, c.z); let lo1 = 0xcd9e8d57u * c.z;
    c = vec4u(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k = k + vec2u(0x9e3779b9u, 0xbb67ae85u);
  }
  return c;
}

// cos(2 pi t) for t = k 2^-24 in [0, 1): fold to a quarter turn exactly, then a Taylor polynomial.
fn cos_turns(t: f32) -> f32 {
  var u = t;
  if (u > 0.5) { u = 1.0 - u; }           // cos(2 pi u) = cos(2 pi (1 - u)), exact in f32
  var s = 1.0;
  if (u > 0.25) { u = 0.5 - u; s = -1.0; } // cos(2 pi u) = -cos(2 pi (0.5 - u))
  // u in [0, 0.25]: cos(x) with x = 2 pi u in [0, pi/2]; use sin for x > pi/4 for accuracy
  if (u > 0.125) {
    let y = 6.283185307179586 * (0.25 - u);
    let y2 = y * y;
    return s * y * (1.0 + y2 * (-1.0 / 6.0 + y2 * (1.0 / 120.0 + y2 * (-1.0 / 5040.0 + y2 * (1.0 / 362880.0)))));
  }
  let x = 6.283185307179586 * u;
  let x2 = x * x;
  return s * (1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3628800.0))))));
}

// ln(u) for u in (0, 1]; near 1, where a float32 log loses relative accuracy, through the series
// 2 atanh(s) with s = (u - 1) / (u + 1) (u - 1 is exact for u = k 2^-24).
fn log_unit(u: f32) -> f32 {
  if (u < 0.75) { return log(u); }
  let s = (u - 1.0) / (u + 1.0);
  let s2 = s * s;
  return 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 / 13.0))))));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg, 256u);
  if (i >= md[0]) { return; }
  let rank = md[1];
  let p = 2u + rank + rank + 1u;
  let lo = md[p + 2u] + i;
  let hi = md[p + 3u] + select(0u, 1u, lo < i);
  let x = philox(vec4u(lo, hi, 0u, 0u), vec2u(md[p], md[p + 1u]));
  var v: f32;
  if (md[p + 4u] == 0u) {
    v = f32(x.x >> 8u) * 5.960464477539063e-8;
  } else {
    let u1 = f32((x.x >> 8u) + 1u) * 5.960464477539063e-8;
    let u2 = f32(x.y >> 8u) * 5.960464477539063e-8;
    v = sqrt(-2.0 * log_unit(u1)) * cos_turns(u2);
  }
  out[view_offset(i, rank, 2u, 2u + rank)] = $STORE;
}

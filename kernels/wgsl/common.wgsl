// Shared prelude of every lavender WGSL kernel. Binding 0 is the per-dispatch metadata (shapes, strides,
// offsets, scalars as u32 words); the kernel's own buffers follow from binding 1. Element offsets are in
// elements (every webgpu dtype is 4 bytes wide). Strides are signed (bitcast from u32).
@group(0) @binding(0) var<storage, read> md: array<u32>;

// Infinity and NaN at run time (a constant expression may not evaluate to either).
var<private> INF_BITS: u32 = 0x7f800000u;
var<private> NAN_BITS: u32 = 0x7fc00000u;
fn inf_() -> f32 { return bitcast<f32>(INF_BITS); }
fn nan_() -> f32 { return bitcast<f32>(NAN_BITS); }

fn mi(k: u32) -> i32 { return bitcast<i32>(md[k]); }
fn mf(k: u32) -> f32 { return bitcast<f32>(md[k]); }

// The 1-D invocation index of a dispatch that may be split over x and y (65535 workgroups per axis).
fn flat_id(gid: vec3u, nwg: vec3u, wg: u32) -> u32 { return gid.x + gid.y * nwg.x * wg; }
fn flat_group(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

// Offset of logical element i (row-major over the shape at md[shape_at .. shape_at+rank)) in the
// strided view whose offset is md[view_at] and strides md[view_at+1 .. view_at+1+rank).
fn view_offset(i: u32, rank: u32, shape_at: u32, view_at: u32) -> u32 {
  var rem = i;
  var off = mi(view_at);
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let s = md[shape_at + u32(d)];
    off += i32(rem % s) * mi(view_at + 1u + u32(d));
    rem = rem / s;
  }
  return u32(off);
}

// ---- scalar math, float32 ------------------------------------------------------------------------
fn sigmoid_(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

fn tanh_(x: f32) -> f32 {
  let t = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - t) / (1.0 + t);
}

// erf: its Maclaurin series for |x| < 1, the Numerical Recipes erfc approximation beyond (|error| < 2e-7).
fn erf_(x: f32) -> f32 {
  let ax = abs(x);
  if (ax < 1.0) {
    let x2 = x * x;
    return x * 1.1283791670955126 * erf_series(x2);
  }
  if (ax > 4.0) { return sign(x); }
  // erfc(ax) ~ exp(-ax^2) * P(t), t = 1 / (1 + p ax) (Numerical Recipes erfcc, |rel error| < 1.2e-7)
  let t = 1.0 / (1.0 + 0.5 * ax);
  let y = t * exp(-ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return sign(x) * (1.0 - y);
}

fn erf_series(x2: f32) -> f32 {
  // sum_{n=0}^{10} (-1)^n x2^n / (n! (2n+1)), Horner from the top
  var s = 0.0;
  var c = array<f32, 11>(1.0, -1.0 / 3.0, 1.0 / 10.0, -1.0 / 42.0, 1.0 / 216.0, -1.0 / 1320.0, 1.0 / 9360.0,
    -1.0 / 75600.0, 1.0 / 685440.0, -1.0 / 6894720.0, 1.0 / 76204800.0);
  for (var n = 10; n >= 0; n--) { s = s * x2 + c[n]; }
  return s;
}

// erfinv: Giles' single-precision approximation, polished by one Newton step on erf_.
fn erfinv_(y: f32) -> f32 {
  if (y <= -1.0) { if (y == -1.0) { return -inf_(); } return nan_(); }
  if (y >= 1.0) { if (y == 1.0) { return inf_(); } return nan_(); }
  var w = -log((1.0 - y) * (1.0 + y));
  var p: f32;
  if (w < 5.0) {
    w = w - 2.5;
    p = 2.81022636e-08;
    p = 3.43273939e-07 + p * w; p = -3.5233877e-06 + p * w; p = -4.39150654e-06 + p * w;
    p = 0.00021858087 + p * w; p = -0.00125372503 + p * w; p = -0.00417768164 + p * w;
    p = 0.246640727 + p * w; p = 1.50140941 + p * w;
  } else {
    w = sqrt(w) - 3.0;
    p = -0.000200214257;
    p = 0.000100950558 + p * w; p = 0.00134934322 + p * w; p = -0.00367342844 + p * w;
    p = 0.00573950773 + p * w; p = -0.0076224613 + p * w; p = 0.00943887047 + p * w;
    p = 1.00167406 + p * w; p = 2.83297682 + p * w;
  }
  var x = p * y;
  x = x - (erf_(x) - y) / (1.1283791670955126 * exp(-x * x));
  return x;
}

fn gelu_(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_(x * 0.7071067811865476)); }
fn gelu_tanh_(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

// Math.pow semantics for the cases WGSL leaves undefined (zero exponent, zero and negative bases), and
// small integer exponents by repeated squaring: pow(y, 3) in a gradient rule must not carry the error of
// exp2(b * log2(a)), which cancellation downstream can magnify.
fn pow_(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (b == floor(b) && abs(b) <= 64.0) {
    var e = u32(abs(b));
    var base = a;
    var r = 1.0;
    loop {
      if ((e & 1u) == 1u) { r = r * base; }
      e = e >> 1u;
      if (e == 0u) { break; }
      base = base * base;
    }
    if (b < 0.0) { return 1.0 / r; }
    return r;
  }
  if (a == 0.0) { if (b > 0.0) { return 0.0; } return inf_(); }
  if (a < 0.0) { return nan_(); }
  return pow(a, b);
}

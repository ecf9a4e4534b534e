// Shared pieces of the cpu kernels (AssemblyScript -> WebAssembly SIMD): the fixed low-memory map, the
// vector constants, exp and the FMA of the build variant.
//
// Memory map (bytes). Everything above HEAP is the cpu backend's heap: tensors live there and every
// kernel reads and writes them in place (src/backends/cpu/heap.ts owns the allocator).
//   [0, 64K)          the module's static data (AssemblyScript's Math.log tables)
//   [64K, 64K+1K)     vector constants (initConstants, once per memory)
//   [64K+1K, 64K+5K)  per-thread scratch: 16 slots x 256 bytes for the edge tiles of the gemm
//   [64K+5K, 64K+9K)  per-thread scratch: 16 slots x 256 bytes of loop state (the kernels allocate nothing)
//   [64K+12K, 64K+16K) job parameters (f64), written by the publishing thread
//   [128K, ...)       heap

export const KB: usize = 65536;
export const EDGE: usize = KB + 1024;
export const EDGE_SLOT: usize = 256;
export const IDX: usize = KB + 5120;
export const IDX_SLOT: usize = 256;
export const JOB: usize = KB + 12288;
export const HEAP: usize = KB * 2;

export const K_LO: usize = KB, K_HI: usize = KB + 16, K_LOG2E: usize = KB + 32, K_C1: usize = KB + 48, K_C2: usize = KB + 64,
  K_P0: usize = KB + 80, K_P1: usize = KB + 96, K_P2: usize = KB + 112, K_P3: usize = KB + 128, K_P4: usize = KB + 144, K_P5: usize = KB + 160,
  K_ONE: usize = KB + 176, K_MAGIC: usize = KB + 192, K_BIAS: usize = KB + 208, K_BIG: usize = KB + 224, K_OVF: usize = KB + 240,
  K_INF: usize = KB + 256, K_E88: usize = KB + 272, K_ABS: usize = KB + 288, K_NAN: usize = KB + 304,
  K_NC1: usize = KB + 320, K_NC2: usize = KB + 336;

// @ts-ignore: decorator
@inline export function splat(x: f32): v128 { return f32x4.splat(x); }

export function initConstants(): void {
  v128.store(K_LO, splat(-87.33654));
  v128.store(K_HI, splat(88.0));
  v128.store(K_LOG2E, splat(1.44269504088896341));
  v128.store(K_C1, splat(0.693359375));
  v128.store(K_C2, splat(-2.12194440e-4));
  v128.store(K_P0, splat(1.9875691500e-4));
  v128.store(K_P1, splat(1.3981999507e-3));
  v128.store(K_P2, splat(8.3334519073e-3));
  v128.store(K_P3, splat(4.1665795894e-2));
  v128.store(K_P4, splat(1.6666665459e-1));
  v128.store(K_P5, splat(5.0000001201e-1));
  v128.store(K_ONE, splat(1.0));
  v128.store(K_MAGIC, splat(12582912.0));
  v128.store(K_BIAS, i32x4.splat(0x3f800000));
  v128.store(K_BIG, splat(88.0));
  v128.store(K_OVF, splat(88.72283));
  v128.store(K_INF, splat(Infinity));
  v128.store(K_E88, splat(1.6516363e+38));
  v128.store(K_ABS, i32x4.splat(0x7fffffff));
  v128.store(K_NAN, splat(NaN));
  v128.store(K_NC1, splat(-0.693359375));
  v128.store(K_NC2, splat(2.12194440e-4));
}

/** f32x4 a * b + c: an FMA in the relaxed build (f32x4.relaxed_madd), mul + add otherwise. */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(c, f32x4.mul(a, b));
  }
}

// exp: Cephes' expf (range reduction by ln2 split in two, degree-6 polynomial), ~1 ulp on its range,
// exact 0 below -87.34 (where float32 exp is denormal or 0) and +Inf above 88.72.

/** exp(x): clamp, n = round(x log2 e) by the 1.5*2^23 trick, r = x - n ln2 (two parts), polynomial, * 2^n.
 *  The Horner steps and the reduction are FMAs in the relaxed build. */
// @ts-ignore: decorator
@inline function vexpCore(x: v128): v128 {
  const xc = f32x4.pmin(f32x4.pmax(x, v128.load(K_LO)), v128.load(K_HI));
  const magic = v128.load(K_MAGIC);
  const t = madd(xc, v128.load(K_LOG2E), magic);
  const fx = f32x4.sub(t, magic);
  let r = madd(fx, v128.load(K_NC1), xc);
  r = madd(fx, v128.load(K_NC2), r);
  let p = madd(v128.load(K_P0), r, v128.load(K_P1));
  p = madd(p, r, v128.load(K_P2));
  p = madd(p, r, v128.load(K_P3));
  p = madd(p, r, v128.load(K_P4));
  p = madd(p, r, v128.load(K_P5));
  const y = f32x4.add(madd(p, f32x4.mul(r, r), r), v128.load(K_ONE));
  return f32x4.mul(y, i32x4.add(i32x4.shl(t, 23), v128.load(K_BIAS)));
}

function bigTail(x: v128, e: v128, big: v128): v128 {
  const e2 = f32x4.mul(vexpCore(f32x4.sub(x, v128.load(K_BIG))), v128.load(K_E88));
  e = v128.bitselect(e2, e, big);
  return v128.bitselect(v128.load(K_INF), e, f32x4.gt(x, v128.load(K_OVF)));
}

// @ts-ignore: decorator
@inline export function vexp(x: v128): v128 {
  // pmax/pmin keep x when it is NaN (x is their first operand), so NaN flows through the polynomial.
  let e = vexpCore(x);
  // exp(x) for x in (88, 88.72] is exp(88) * exp(x - 88); beyond, +Inf.
  const big = f32x4.gt(x, v128.load(K_BIG));
  if (v128.any_true(big)) e = bigTail(x, e, big);
  // below -87.34 the float32 result is (nearly) 0.
  return v128.andnot(e, f32x4.lt(x, v128.load(K_LO)));
}

/** exp for arguments <= 88 (softmax after subtracting the max, attention's recomputed probabilities): no overflow tail. */
// @ts-ignore: decorator
@inline export function vexpNeg(x: v128): v128 {
  return v128.andnot(vexpCore(x), f32x4.lt(x, v128.load(K_LO)));
}

// @ts-ignore: decorator
@inline export function sexp(x: f32): f32 { return f32x4.extract_lane(vexp(f32x4.splat(x)), 0); }

// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** Sum of the four lanes in float64 (row statistics). */
// @ts-ignore: decorator
@inline export function hsum64(v: v128): f64 {
  return (<f64>f32x4.extract_lane(v, 0) + <f64>f32x4.extract_lane(v, 1)) + (<f64>f32x4.extract_lane(v, 2) + <f64>f32x4.extract_lane(v, 3));
}

// @ts-ignore: decorator
@inline export function vsigmoid(x: v128): v128 {
  const one = v128.load(K_ONE);
  return f32x4.div(one, f32x4.add(one, vexp(f32x4.neg(x))));
}

/** Job parameter i (the job block is an f64 array written by the host). */
// @ts-ignore: decorator
@inline export function pf(job: usize, i: i32): f64 { return load<f64>(job + (<usize>i << 3)); }
// @ts-ignore: decorator
@inline export function pi(job: usize, i: i32): i32 { return <i32>load<f64>(job + (<usize>i << 3)); }
// @ts-ignore: decorator
@inline export function pu(job: usize, i: i32): usize { return <usize>load<f64>(job + (<usize>i << 3)); }

export function expf32(x: f32): f32 { return sexp(x); }

// Float32 row kernels for the lavender `cpu` backend (AssemblyScript -> WebAssembly SIMD): softmax
// (scale, log), softmax backward, layer norm, silu backward and the exp-based unary ops.
//
// Built by scripts/build-wasm.mjs as rowops-simd.wasm (plain memory). The module's only data is
// Math.log's tables (below 65536) and it has no heap: the host (src/backends/cpu/fast/rowops.ts) copies rows in, passes byte
// addresses and copies the results out. Every kernel is written for f32x4 with a scalar tail.
//
// exp: Cephes' expf (range reduction by ln2 split in two, degree-6 polynomial), ~1 ulp on its range,
// with exact 0 below -87.34 (where float32 exp is denormal or 0) and +Inf above 88.72.

// @ts-ignore: decorator
@inline function splat(x: f32): v128 { return f32x4.splat(x); }

// Constants live in memory (written by initConstants at 65536: below is the module's own data, the
// tables of Math.log; the host's buffers start above 65536 + 1024) and are
// loaded into locals once per call: inlined v128.const operands are rematerialised by V8 on every use.
const KB: usize = 65536;
const K_LO: usize = KB, K_HI: usize = KB + 16, K_LOG2E: usize = KB + 32, K_C1: usize = KB + 48, K_C2: usize = KB + 64,
  K_P0: usize = KB + 80, K_P1: usize = KB + 96, K_P2: usize = KB + 112, K_P3: usize = KB + 128, K_P4: usize = KB + 144, K_P5: usize = KB + 160,
  K_ONE: usize = KB + 176, K_MAGIC: usize = KB + 192, K_BIAS: usize = KB + 208, K_BIG: usize = KB + 224, K_OVF: usize = KB + 240, K_INF: usize = KB + 256, K_E88: usize = KB + 272;

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
}

/** exp(x): clamp, n = round(x log2 e) by the 1.5*2^23 trick, r = x - n ln2 (two parts), polynomial, * 2^n. */
// @ts-ignore: decorator
@inline function vexpCore(x: v128): v128 {
  const xc = f32x4.pmin(f32x4.pmax(x, v128.load(K_LO)), v128.load(K_HI));
  const magic = v128.load(K_MAGIC);
  const t = f32x4.add(f32x4.mul(xc, v128.load(K_LOG2E)), magic);
  const fx = f32x4.sub(t, magic);
  let r = f32x4.sub(xc, f32x4.mul(fx, v128.load(K_C1)));
  r = f32x4.sub(r, f32x4.mul(fx, v128.load(K_C2)));
  let p = v128.load(K_P0);
  p = f32x4.add(f32x4.mul(p, r), v128.load(K_P1));
  p = f32x4.add(f32x4.mul(p, r), v128.load(K_P2));
  p = f32x4.add(f32x4.mul(p, r), v128.load(K_P3));
  p = f32x4.add(f32x4.mul(p, r), v128.load(K_P4));
  p = f32x4.add(f32x4.mul(p, r), v128.load(K_P5));
  const y = f32x4.add(f32x4.add(f32x4.mul(p, f32x4.mul(r, r)), r), v128.load(K_ONE));
  return f32x4.mul(y, i32x4.add(i32x4.shl(t, 23), v128.load(K_BIAS)));
}

// @ts-ignore: decorator
@inline function vexp(x: v128): v128 {
  // pmax/pmin keep x when it is NaN (x is their first operand), so NaN flows through the polynomial.
  let e = vexpCore(x);
  // exp(x) for x in (88, 88.72] is exp(88) * exp(x - 88); beyond, +Inf.
  const big = f32x4.gt(x, v128.load(K_BIG));
  if (v128.any_true(big)) e = bigTail(x, e, big);
  // below -87.34 the float32 result is (nearly) 0.
  return v128.andnot(e, f32x4.lt(x, v128.load(K_LO)));
}

/** exp for arguments <= 0 (softmax after subtracting the max): no overflow tail. */
// @ts-ignore: decorator
@inline function vexpNeg(x: v128): v128 {
  return v128.andnot(vexpCore(x), f32x4.lt(x, v128.load(K_LO)));
}

function bigTail(x: v128, e: v128, big: v128): v128 {
  const e2 = f32x4.mul(vexpCore(f32x4.sub(x, v128.load(K_BIG))), v128.load(K_E88));
  e = v128.bitselect(e2, e, big);
  return v128.bitselect(v128.load(K_INF), e, f32x4.gt(x, v128.load(K_OVF)));
}

// @ts-ignore: decorator
@inline function sexp(x: f32): f32 { return f32x4.extract_lane(vexp(f32x4.splat(x)), 0); }

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

export function expf32(x: f32): f32 { return sexp(x); }

/** Softmax (log = 0) or log-softmax (log = 1) of scale * x over rows of `cols` contiguous floats. */
export function softmax(x: usize, o: usize, rows: i32, cols: i32, scale: f32, log: i32): void {
  const c4 = cols & ~3;
  const vs = splat(scale);
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * <usize>cols * 4, or = o + <usize>r * <usize>cols * 4;
    // max (NaN propagates, like the reference's NaN-poisoned sum)
    // pmax skips NaN here; a NaN still poisons the row through the sum below, as in the reference.
    let vm = splat(-Infinity), vm2 = vm;
    let j = 0;
    for (; j + 8 <= c4; j += 8) {
      vm = f32x4.pmax(vm, v128.load(xr + (<usize>j << 2)));
      vm2 = f32x4.pmax(vm2, v128.load(xr + (<usize>j << 2), 16));
    }
    for (; j < c4; j += 4) vm = f32x4.pmax(vm, v128.load(xr + (<usize>j << 2)));
    vm = f32x4.pmax(vm, vm2);
    let mx = max(max(f32x4.extract_lane(vm, 0), f32x4.extract_lane(vm, 1)), max(f32x4.extract_lane(vm, 2), f32x4.extract_lane(vm, 3)));
    for (; j < cols; j++) mx = max(mx, load<f32>(xr + (<usize>j << 2)));
    const m = mx * scale;
    const vmm = splat(m);
    let acc = splat(0);
    let sum: f32 = 0;
    if (log) {
      for (j = 0; j < c4; j += 4) acc = f32x4.add(acc, vexpNeg(f32x4.sub(f32x4.mul(v128.load(xr + (<usize>j << 2)), vs), vmm)));
      sum = hsum(acc);
      for (; j < cols; j++) sum += sexp(load<f32>(xr + (<usize>j << 2)) * scale - m);
      const lse = <f32>(<f64>m + Math.log(<f64>sum));
      const vl = splat(lse);
      for (j = 0; j < c4; j += 4) v128.store(or + (<usize>j << 2), f32x4.sub(f32x4.mul(v128.load(xr + (<usize>j << 2)), vs), vl));
      for (; j < cols; j++) store<f32>(or + (<usize>j << 2), load<f32>(xr + (<usize>j << 2)) * scale - lse);
    } else {
      for (j = 0; j < c4; j += 4) {
        const e = vexpNeg(f32x4.sub(f32x4.mul(v128.load(xr + (<usize>j << 2)), vs), vmm));
        v128.store(or + (<usize>j << 2), e);
        acc = f32x4.add(acc, e);
      }
      sum = hsum(acc);
      for (; j < cols; j++) {
        const e = sexp(load<f32>(xr + (<usize>j << 2)) * scale - m);
        store<f32>(or + (<usize>j << 2), e);
        sum += e;
      }
      const inv: f32 = <f32>(1.0 / <f64>sum);
      const vi = splat(inv);
      for (j = 0; j < c4; j += 4) v128.store(or + (<usize>j << 2), f32x4.mul(v128.load(or + (<usize>j << 2)), vi));
      for (; j < cols; j++) store<f32>(or + (<usize>j << 2), load<f32>(or + (<usize>j << 2)) * inv);
    }
  }
}

/** out = scale * y * (g - rowsum(g * y)). */
export function softmaxBackward(y: usize, g: usize, o: usize, rows: i32, cols: i32, scale: f32): void {
  const c4 = cols & ~3;
  for (let r = 0; r < rows; r++) {
    const base = <usize>r * <usize>cols * 4;
    const yr = y + base, gr = g + base, or = o + base;
    // the dot product in float64 (as the reference): g - dot cancels
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
    let j = 0;
    for (; j < c4; j += 4) {
      const gv = v128.load(gr + (<usize>j << 2)), yv = v128.load(yr + (<usize>j << 2));
      a0 = f64x2.add(a0, f64x2.mul(f64x2.promote_low_f32x4(gv), f64x2.promote_low_f32x4(yv)));
      a1 = f64x2.add(a1, f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<f32>(gv, gv, 2, 3, 0, 1)),
        f64x2.promote_low_f32x4(v128.shuffle<f32>(yv, yv, 2, 3, 0, 1))));
    }
    a0 = f64x2.add(a0, a1);
    let dd: f64 = f64x2.extract_lane(a0, 0) + f64x2.extract_lane(a0, 1);
    for (; j < cols; j++) dd += <f64>load<f32>(gr + (<usize>j << 2)) * <f64>load<f32>(yr + (<usize>j << 2));
    const dot = <f32>dd;
    const vd = splat(dot), vs = splat(scale);
    for (j = 0; j < c4; j += 4) {
      const yy = v128.load(yr + (<usize>j << 2));
      v128.store(or + (<usize>j << 2), f32x4.mul(f32x4.mul(vs, yy), f32x4.sub(v128.load(gr + (<usize>j << 2)), vd)));
    }
    for (; j < cols; j++) store<f32>(or + (<usize>j << 2), scale * load<f32>(yr + (<usize>j << 2)) * (load<f32>(gr + (<usize>j << 2)) - dot));
  }
}

/** Layer norm over rows; w / b are 0 when absent. Writes mean and rstd per row. */
export function layerNorm(x: usize, w: usize, b: usize, o: usize, mean: usize, rstd: usize, rows: i32, cols: i32, eps: f64): void {
  const c4 = cols & ~3;
  for (let r = 0; r < rows; r++) {
    const base = <usize>r * <usize>cols * 4;
    const xr = x + base, or = o + base;
    let acc = splat(0);
    let j = 0;
    for (; j < c4; j += 4) acc = f32x4.add(acc, v128.load(xr + (<usize>j << 2)));
    let s: f64 = <f64>hsum(acc);
    for (; j < cols; j++) s += <f64>load<f32>(xr + (<usize>j << 2));
    const mu = <f32>(s / <f64>cols);
    const vmu = splat(mu);
    acc = splat(0);
    for (j = 0; j < c4; j += 4) {
      const d = f32x4.sub(v128.load(xr + (<usize>j << 2)), vmu);
      acc = f32x4.add(acc, f32x4.mul(d, d));
    }
    let v: f64 = <f64>hsum(acc);
    for (; j < cols; j++) { const d = <f64>(load<f32>(xr + (<usize>j << 2)) - mu); v += d * d; }
    const rs = <f32>(1.0 / Math.sqrt(v / <f64>cols + eps));
    store<f32>(mean + (<usize>r << 2), mu);
    store<f32>(rstd + (<usize>r << 2), rs);
    const vr = splat(rs);
    for (j = 0; j < c4; j += 4) {
      let yv = f32x4.mul(f32x4.sub(v128.load(xr + (<usize>j << 2)), vmu), vr);
      if (w) yv = f32x4.mul(yv, v128.load(w + (<usize>j << 2)));
      if (b) yv = f32x4.add(yv, v128.load(b + (<usize>j << 2)));
      v128.store(or + (<usize>j << 2), yv);
    }
    for (; j < cols; j++) {
      let yy = (load<f32>(xr + (<usize>j << 2)) - mu) * rs;
      if (w) yy *= load<f32>(w + (<usize>j << 2));
      if (b) yy += load<f32>(b + (<usize>j << 2));
      store<f32>(or + (<usize>j << 2), yy);
    }
  }
}

// @ts-ignore: decorator
@inline function vsigmoid(x: v128): v128 {
  return f32x4.div(splat(1.0), f32x4.add(splat(1.0), vexp(f32x4.neg(x))));
}

/** out = g * s * (1 + x * (1 - s)), s = sigmoid(x). */
export function siluBackward(x: usize, g: usize, o: usize, n: i32): void {
  const n4 = n & ~3;
  const one = splat(1.0);
  let i = 0;
  for (; i < n4; i += 4) {
    const xv = v128.load(x + (<usize>i << 2));
    const s = vsigmoid(xv);
    const t = f32x4.add(one, f32x4.mul(xv, f32x4.sub(one, s)));
    v128.store(o + (<usize>i << 2), f32x4.mul(f32x4.mul(v128.load(g + (<usize>i << 2)), s), t));
  }
  for (; i < n; i++) {
    const xv = load<f32>(x + (<usize>i << 2));
    const s = f32x4.extract_lane(vsigmoid(f32x4.splat(xv)), 0);
    store<f32>(o + (<usize>i << 2), load<f32>(g + (<usize>i << 2)) * s * (1 + xv * (1 - s)));
  }
}

// @ts-ignore: decorator
@inline function vunary(op: i32, xv: v128): v128 {
  if (op == 0) return vexp(xv);
  if (op == 1) return vsigmoid(xv);
  return f32x4.mul(xv, vsigmoid(xv));
}

/** op 0: exp, 1: sigmoid, 2: silu, over n contiguous floats. */
export function unary(op: i32, x: usize, o: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  if (op == 0) for (; i < n4; i += 4) v128.store(o + (<usize>i << 2), vunary(0, v128.load(x + (<usize>i << 2))));
  else if (op == 1) for (; i < n4; i += 4) v128.store(o + (<usize>i << 2), vunary(1, v128.load(x + (<usize>i << 2))));
  else for (; i < n4; i += 4) v128.store(o + (<usize>i << 2), vunary(2, v128.load(x + (<usize>i << 2))));
  for (; i < n; i++) store<f32>(o + (<usize>i << 2), f32x4.extract_lane(vunary(op, f32x4.splat(load<f32>(x + (<usize>i << 2)))), 0));
}

// @ts-ignore: decorator
@inline function vbin(op: i32, a: v128, b: v128): v128 {
  if (op == 0) return f32x4.add(a, b);
  if (op == 1) return f32x4.sub(a, b);
  if (op == 2) return f32x4.mul(a, b);
  return f32x4.div(a, b);
}

// @ts-ignore: decorator
@inline function binLoop(op: i32, a: usize, as: i32, b: usize, bs: i32, o: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  if (as == 1 && bs == 1) {
    for (; i < n4; i += 4) v128.store(o + (<usize>i << 2), vbin(op, v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  } else if (as == 1) {
    const vb = v128.load32_splat(b);
    for (; i < n4; i += 4) v128.store(o + (<usize>i << 2), vbin(op, v128.load(a + (<usize>i << 2)), vb));
  } else {
    const va = v128.load32_splat(a);
    for (; i < n4; i += 4) v128.store(o + (<usize>i << 2), vbin(op, va, v128.load(b + (<usize>i << 2))));
  }
  for (; i < n; i++) {
    const x = f32x4.splat(load<f32>(a + (<usize>(i * as) << 2))), y = f32x4.splat(load<f32>(b + (<usize>(i * bs) << 2)));
    store<f32>(o + (<usize>i << 2), f32x4.extract_lane(vbin(op, x, y), 0));
  }
}

/** o = a op b over n floats; op 0 add, 1 sub, 2 mul, 3 div; as / bs are 1 (dense) or 0 (a scalar), not both 0. */
export function binary(op: i32, a: usize, as: i32, b: usize, bs: i32, o: usize, n: i32): void {
  if (op == 0) binLoop(0, a, as, b, bs, o, n);
  else if (op == 1) binLoop(1, a, as, b, bs, o, n);
  else if (op == 2) binLoop(2, a, as, b, bs, o, n);
  else binLoop(3, a, as, b, bs, o, n);
}

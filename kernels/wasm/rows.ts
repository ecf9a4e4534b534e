// Float32 row kernels, in place on the heap: softmax (scale, log), softmax backward, layer norm forward
// and backward, silu backward. Rows are contiguous; each task owns a fixed range of rows, so results do
// not depend on the number of threads.
import { K_ONE, hsum, hsum64, pf, pi, pu, sexp, splat, vexpNeg, vsigmoid } from './common';

// @ts-ignore: decorator
@inline function range(rows: i32, t: i32, tasks: i32): i64 {
  const r0 = <i32>(<i64>rows * <i64>t / <i64>tasks), r1 = <i32>(<i64>rows * <i64>(t + 1) / <i64>tasks);
  return (<i64>r0 << 32) | <i64>r1;
}

/** Softmax (log = 0) or log-softmax (log = 1) of scale * x over `rows` rows of `cols` floats; lse (if
 *  not 0) receives each row's log-sum-exp of scale * x. */
export function softmaxRows(x: usize, o: usize, r0: i32, r1: i32, cols: i32, scale: f32, log: i32, lse: usize): void {
  const c4 = cols & ~3;
  const vs = splat(scale);
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * <usize>cols * 4, or = o + <usize>r * <usize>cols * 4;
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
      const l = <f32>(<f64>m + Math.log(<f64>sum));
      const vl = splat(l);
      for (j = 0; j < c4; j += 4) v128.store(or + (<usize>j << 2), f32x4.sub(f32x4.mul(v128.load(xr + (<usize>j << 2)), vs), vl));
      for (; j < cols; j++) store<f32>(or + (<usize>j << 2), load<f32>(xr + (<usize>j << 2)) * scale - l);
      if (lse) store<f32>(lse + (<usize>r << 2), l);
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
      if (lse) store<f32>(lse + (<usize>r << 2), <f32>(<f64>m + Math.log(<f64>sum)));
    }
  }
}

/** Job: 1 x, 2 out, 3 rows, 4 cols, 5 scale, 6 log, 7 tasks. */
export function softmaxTask(job: usize, t: i32): void {
  const rr = range(pi(job, 3), t, pi(job, 7));
  softmaxRows(pu(job, 1), pu(job, 2), <i32>(rr >> 32), <i32>rr, pi(job, 4), <f32>pf(job, 5), pi(job, 6), 0);
}

/** out = scale * y * (g - rowsum(g * y)). Job: 1 y, 2 g, 3 out, 4 rows, 5 cols, 6 scale, 7 tasks. */
export function softmaxBackwardTask(job: usize, t: i32): void {
  const y = pu(job, 1), g = pu(job, 2), o = pu(job, 3), cols = pi(job, 5);
  const scale = <f32>pf(job, 6);
  const rr = range(pi(job, 4), t, pi(job, 7));
  const c4 = cols & ~3;
  for (let r = <i32>(rr >> 32); r < <i32>rr; r++) {
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

/** Layer norm; w / b are 0 when absent; writes mean and rstd per row.
 *  Job: 1 x, 2 w, 3 b, 4 out, 5 mean, 6 rstd, 7 rows, 8 cols, 9 eps, 10 tasks. */
export function layerNormTask(job: usize, t: i32): void {
  const x = pu(job, 1), w = pu(job, 2), b = pu(job, 3), o = pu(job, 4), mean = pu(job, 5), rstd = pu(job, 6);
  const cols = pi(job, 8);
  const eps = pf(job, 9);
  const rr = range(pi(job, 7), t, pi(job, 10));
  const c4 = cols & ~3;
  for (let r = <i32>(rr >> 32); r < <i32>rr; r++) {
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

/**
 * Layer norm backward, the composed rule's arithmetic in one pass per row:
 *   xhat = (x - mu) * rstd, gy = g * w, dx = rstd * ((gy - mean(gy)) - xhat * mean(gy * xhat)),
 * and task t's partial column sums of g * xhat (dw) and g (db) at partial + t * 2 * cols * 4.
 * Job: 1 x, 2 mean (0: x holds xhat already, the norm's output), 3 rstd, 4 w (0: none), 5 g, 6 dx,
 * 7 partial, 8 rows, 9 cols, 10 tasks.
 */
export function layerNormBackwardTask(job: usize, t: i32): void {
  const x = pu(job, 1), mean = pu(job, 2), rstd = pu(job, 3), w = pu(job, 4), g = pu(job, 5), dx = pu(job, 6);
  const cols = pi(job, 9);
  const pw = pu(job, 7) + <usize>t * <usize>cols * 8, pb = pw + <usize>cols * 4;
  memory.fill(pw, 0, <usize>cols * 8);
  const rr = range(pi(job, 8), t, pi(job, 10));
  const c4 = cols & ~3;
  const n = <f32>cols;
  for (let r = <i32>(rr >> 32); r < <i32>rr; r++) {
    const base = <usize>r * <usize>cols * 4;
    const xr = x + base, gr = g + base, dr = dx + base;
    const rs = splat(load<f32>(rstd + (<usize>r << 2)));
    // x - 0 and x * 1 are x exactly: without a mean, x is used as xhat
    const mu = mean ? splat(load<f32>(mean + (<usize>r << 2))) : splat(0), xs = mean ? rs : splat(1);
    let s1 = splat(0), s2 = splat(0);
    let j = 0;
    for (; j < c4; j += 4) {
      const q = <usize>j << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + q), mu), xs);
      const gv = v128.load(gr + q);
      const gy = w ? f32x4.mul(gv, v128.load(w + q)) : gv;
      s1 = f32x4.add(s1, gy);
      s2 = f32x4.add(s2, f32x4.mul(gy, xh));
      v128.store(pw + q, f32x4.add(v128.load(pw + q), f32x4.mul(gv, xh)));
      v128.store(pb + q, f32x4.add(v128.load(pb + q), gv));
    }
    let d1: f64 = hsum64(s1), d2: f64 = hsum64(s2);
    const mus = f32x4.extract_lane(mu, 0), xss = f32x4.extract_lane(xs, 0), rss = f32x4.extract_lane(rs, 0);
    for (; j < cols; j++) {
      const q = <usize>j << 2;
      const xh = (load<f32>(xr + q) - mus) * xss;
      const gv = load<f32>(gr + q);
      const gy = w ? gv * load<f32>(w + q) : gv;
      d1 += <f64>gy;
      d2 += <f64>(gy * xh);
      store<f32>(pw + q, load<f32>(pw + q) + gv * xh);
      store<f32>(pb + q, load<f32>(pb + q) + gv);
    }
    const m1 = splat(<f32>d1 / n), m2 = splat(<f32>d2 / n);
    for (j = 0; j < c4; j += 4) {
      const q = <usize>j << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + q), mu), xs);
      const gv = v128.load(gr + q);
      const gy = w ? f32x4.mul(gv, v128.load(w + q)) : gv;
      v128.store(dr + q, f32x4.mul(rs, f32x4.sub(f32x4.sub(gy, m1), f32x4.mul(xh, m2))));
    }
    const m1s = f32x4.extract_lane(m1, 0), m2s = f32x4.extract_lane(m2, 0);
    for (; j < cols; j++) {
      const q = <usize>j << 2;
      const xh = (load<f32>(xr + q) - mus) * xss;
      const gv = load<f32>(gr + q);
      const gy = w ? gv * load<f32>(w + q) : gv;
      store<f32>(dr + q, rss * ((gy - m1s) - xh * m2s));
    }
  }
}

/** out = g * s * (1 + x * (1 - s)), s = sigmoid(x). Job: 1 x, 2 g, 3 out, 4 n, 5 tasks. */
export function siluBackwardTask(job: usize, t: i32): void {
  const x = pu(job, 1), g = pu(job, 2), o = pu(job, 3);
  const rr = range(pi(job, 4) >> 2, t, pi(job, 5));
  const n = pi(job, 4);
  const i0 = <i32>(rr >> 32) << 2, i1 = t == pi(job, 5) - 1 ? n : <i32>rr << 2;
  const one = v128.load(K_ONE);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const xv = v128.load(x + (<usize>i << 2));
    const s = vsigmoid(xv);
    const tt = f32x4.add(one, f32x4.mul(xv, f32x4.sub(one, s)));
    v128.store(o + (<usize>i << 2), f32x4.mul(f32x4.mul(v128.load(g + (<usize>i << 2)), s), tt));
  }
  for (; i < i1; i++) {
    const xv = load<f32>(x + (<usize>i << 2));
    const s = f32x4.extract_lane(vsigmoid(f32x4.splat(xv)), 0);
    store<f32>(o + (<usize>i << 2), load<f32>(g + (<usize>i << 2)) * s * (1 + xv * (1 - s)));
  }
}


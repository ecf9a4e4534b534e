// Fused elementwise kernels for composite ops (src/ops/composite.ts): the SwiGLU gate and its backward,
// and the rotary embedding. Each does in one pass what the composed ops do in several, with the same
// float32 operations in the same order (so the same bits; no FMA contraction).
import { K_ONE, pi, pu, vsigmoid } from './common';

// @ts-ignore: decorator
@inline function range(n: i32, t: i32, tasks: i32): i64 {
  return (<i64>(<i32>(<i64>n * <i64>t / <i64>tasks)) << 32) | <i64>(<i32>(<i64>n * <i64>(t + 1) / <i64>tasks));
}

/** out = silu(a) * b. Job: 1 a, 2 b, 3 out, 4 n, 5 tasks. */
export function swigluTask(job: usize, t: i32): void {
  const a = pu(job, 1), b = pu(job, 2), o = pu(job, 3), n = pi(job, 4);
  const rr = range(n >> 2, t, pi(job, 5));
  const i0 = <i32>(rr >> 32) << 2, i1 = t == pi(job, 5) - 1 ? n : <i32>rr << 2;
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const q = <usize>i << 2;
    const x = v128.load(a + q);
    v128.store(o + q, f32x4.mul(f32x4.mul(x, vsigmoid(x)), v128.load(b + q)));
  }
  for (; i < i1; i++) {
    const q = <usize>i << 2;
    const x = load<f32>(a + q);
    store<f32>(o + q, (x * f32x4.extract_lane(vsigmoid(f32x4.splat(x)), 0)) * load<f32>(b + q));
  }
}

/**
 * da = (g * b) * s * (1 + a * (1 - s)), db = g * (a * s), s = sigmoid(a) (either output optional: 0).
 * Job: 1 a, 2 b, 3 g, 4 da, 5 db, 6 n, 7 tasks.
 */
export function swigluBackwardTask(job: usize, t: i32): void {
  const a = pu(job, 1), b = pu(job, 2), g = pu(job, 3), da = pu(job, 4), db = pu(job, 5), n = pi(job, 6);
  const rr = range(n >> 2, t, pi(job, 7));
  const i0 = <i32>(rr >> 32) << 2, i1 = t == pi(job, 7) - 1 ? n : <i32>rr << 2;
  const one = v128.load(K_ONE);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const q = <usize>i << 2;
    const x = v128.load(a + q), gv = v128.load(g + q);
    const s = vsigmoid(x);
    if (da) {
      const gb = f32x4.mul(gv, v128.load(b + q));
      v128.store(da + q, f32x4.mul(f32x4.mul(gb, s), f32x4.add(one, f32x4.mul(x, f32x4.sub(one, s)))));
    }
    if (db) v128.store(db + q, f32x4.mul(gv, f32x4.mul(x, s)));
  }
  for (; i < i1; i++) {
    const q = <usize>i << 2;
    const x = load<f32>(a + q), gv = load<f32>(g + q);
    const s = f32x4.extract_lane(vsigmoid(f32x4.splat(x)), 0);
    if (da) store<f32>(da + q, ((gv * load<f32>(b + q)) * s) * (1 + x * (1 - s)));
    if (db) store<f32>(db + q, gv * (x * s));
  }
}

/**
 * Rotary embedding of contiguous rows of hd floats (row r belongs to token (r / H) % T): pairs
 * (x0, x1) -> (x0 c - x1 s, x0 s + x1 c), or the inverse (x0 c + x1 s, x1 c - x0 s).
 * Job: 1 x, 2 cos, 3 sin ([T, hd/2] contiguous), 4 out, 5 rows, 6 H, 7 T, 8 hd, 9 inverse, 10 tasks.
 */
export function rotaryTask(job: usize, t: i32): void {
  const x = pu(job, 1), cs = pu(job, 2), sn = pu(job, 3), o = pu(job, 4);
  const H = pi(job, 6), T = pi(job, 7), hd = pi(job, 8), inv = pi(job, 9) != 0;
  const half = hd >> 1;
  const rr = range(pi(job, 5), t, pi(job, 10));
  for (let r = <i32>(rr >> 32); r < <i32>rr; r++) {
    const tok = (r / H) % T;
    const xr = x + (<usize>(r * hd) << 2), orow = o + (<usize>(r * hd) << 2);
    const cr = cs + (<usize>(tok * half) << 2), sr = sn + (<usize>(tok * half) << 2);
    let m = 0;
    for (; m + 4 <= half; m += 4) {
      const p = xr + (<usize>m << 3);
      const u = v128.load(p), w = v128.load(p, 16);
      const x0 = v128.shuffle<f32>(u, w, 0, 2, 4, 6), x1 = v128.shuffle<f32>(u, w, 1, 3, 5, 7);
      const c = v128.load(cr + (<usize>m << 2)), s = v128.load(sr + (<usize>m << 2));
      const r0 = inv ? f32x4.add(f32x4.mul(x0, c), f32x4.mul(x1, s)) : f32x4.sub(f32x4.mul(x0, c), f32x4.mul(x1, s));
      const r1 = inv ? f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x0, s)) : f32x4.add(f32x4.mul(x0, s), f32x4.mul(x1, c));
      const q = orow + (<usize>m << 3);
      v128.store(q, v128.shuffle<f32>(r0, r1, 0, 4, 1, 5));
      v128.store(q, v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), 16);
    }
    for (; m < half; m++) {
      const x0 = load<f32>(xr + (<usize>m << 3)), x1 = load<f32>(xr + (<usize>m << 3), 4);
      const c = load<f32>(cr + (<usize>m << 2)), s = load<f32>(sr + (<usize>m << 2));
      store<f32>(orow + (<usize>m << 3), inv ? x0 * c + x1 * s : x0 * c - x1 * s);
      store<f32>(orow + (<usize>m << 3), inv ? x1 * c - x0 * s : x0 * s + x1 * c, 4);
    }
  }
}

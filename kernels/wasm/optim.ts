// Fused optimizer steps over many parameters in one job: Adam / AdamW and SGD (momentum, weight decay).
// The arithmetic is the composed float32 ops of src/optim/ in the same order, so a fused step gives the
// same bits as the decomposition. The host splits the parameters into chunks (a table in the heap, one
// task per chunk); chunks never overlap, so results do not depend on the number of threads.
import { pf, pi, pu } from './common';

/**
 * Job: 1 chunk table, 2 chunks, 3 decoupled (AdamW) or 0 (Adam, L2), 4 weight decay, 5 beta1,
 * 6 1 - beta1, 7 beta2, 8 1 - beta2, 9 eps, 10 gradient scale (1: none). Table entry (9 f64): p, g, m, v
 * (byte addresses of element 0), start, length, -lr / (1 - beta1^t), sqrt(1 - beta2^t), 1 - lr * wd.
 * Every scalar is already rounded to float32 (as a 0-d float32 operand of the composed ops would be).
 */
export function adamTask(job: usize, t: i32): void {
  const e = pu(job, 1) + <usize>t * 72;
  const start = <usize>load<f64>(e, 32) << 2, n = <i32>load<f64>(e, 40);
  const p = <usize>load<f64>(e, 0) + start, g = <usize>load<f64>(e, 8) + start;
  const m = <usize>load<f64>(e, 16) + start, v = <usize>load<f64>(e, 24) + start;
  const step = f32x4.splat(<f32>load<f64>(e, 48)), bc2 = f32x4.splat(<f32>load<f64>(e, 56)), decay = f32x4.splat(<f32>load<f64>(e, 64));
  const decoupled = pi(job, 3) != 0;
  const wdv = <f32>pf(job, 4);
  const wd = f32x4.splat(wdv);
  const b1 = f32x4.splat(<f32>pf(job, 5)), c1 = f32x4.splat(<f32>pf(job, 6));
  const b2 = f32x4.splat(<f32>pf(job, 7)), c2 = f32x4.splat(<f32>pf(job, 8));
  const eps = f32x4.splat(<f32>pf(job, 9));
  const gsv = <f32>pf(job, 10), gs = f32x4.splat(gsv);
  const hasWd = wdv != 0, scaled = gsv != 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const q = <usize>i << 2;
    let pv = v128.load(p + q), gv = v128.load(g + q);
    if (scaled) gv = f32x4.mul(gv, gs);
    if (hasWd) {
      if (decoupled) pv = f32x4.mul(pv, decay);
      else gv = f32x4.add(gv, f32x4.mul(pv, wd));
    }
    const mv = f32x4.add(f32x4.mul(v128.load(m + q), b1), f32x4.mul(gv, c1));
    const vv = f32x4.add(f32x4.mul(v128.load(v + q), b2), f32x4.mul(f32x4.mul(gv, c2), gv));
    v128.store(m + q, mv);
    v128.store(v + q, vv);
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vv), bc2), eps);
    v128.store(p + q, f32x4.add(pv, f32x4.div(f32x4.mul(mv, step), denom)));
  }
  for (; i < n; i++) {
    const q = <usize>i << 2;
    let pv = load<f32>(p + q), gv = load<f32>(g + q);
    if (scaled) gv = gv * gsv;
    if (hasWd) {
      if (decoupled) pv = pv * f32x4.extract_lane(decay, 0);
      else gv = gv + pv * wdv;
    }
    const mv = load<f32>(m + q) * f32x4.extract_lane(b1, 0) + gv * f32x4.extract_lane(c1, 0);
    const vv = load<f32>(v + q) * f32x4.extract_lane(b2, 0) + (gv * f32x4.extract_lane(c2, 0)) * gv;
    store<f32>(m + q, mv);
    store<f32>(v + q, vv);
    const denom = Mathf.sqrt(vv) / f32x4.extract_lane(bc2, 0) + f32x4.extract_lane(eps, 0);
    store<f32>(p + q, pv + (mv * f32x4.extract_lane(step, 0)) / denom);
  }
}

/**
 * Job: 1 chunk table, 2 chunks, 3 lr, 4 momentum, 5 weight decay. Table entry (5 f64): p, g, momentum
 * buffer (0: none), start, length. g' = g + p * wd; buf = buf * momentum + g'; p = p - buf * lr.
 */
export function sgdTask(job: usize, t: i32): void {
  const e = pu(job, 1) + <usize>t * 40;
  const start = <usize>load<f64>(e, 24) << 2, n = <i32>load<f64>(e, 32);
  const p = <usize>load<f64>(e, 0) + start, g = <usize>load<f64>(e, 8) + start;
  const bufBase = <usize>load<f64>(e, 16);
  const buf = bufBase ? bufBase + start : 0;
  const lrs = <f32>pf(job, 3), moms = <f32>pf(job, 4), wds = <f32>pf(job, 5);
  const lr = f32x4.splat(lrs), mom = f32x4.splat(moms), wd = f32x4.splat(wds);
  const hasWd = wds != 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const q = <usize>i << 2;
    const pv = v128.load(p + q);
    let gv = v128.load(g + q);
    if (hasWd) gv = f32x4.add(gv, f32x4.mul(pv, wd));
    if (buf) {
      gv = f32x4.add(f32x4.mul(v128.load(buf + q), mom), gv);
      v128.store(buf + q, gv);
    }
    v128.store(p + q, f32x4.sub(pv, f32x4.mul(gv, lr)));
  }
  for (; i < n; i++) {
    const q = <usize>i << 2;
    const pv = load<f32>(p + q);
    let gv = load<f32>(g + q);
    if (hasWd) gv = gv + pv * wds;
    if (buf) {
      gv = load<f32>(buf + q) * moms + gv;
      store<f32>(buf + q, gv);
    }
    store<f32>(p + q, pv - gv * lrs);
  }
}

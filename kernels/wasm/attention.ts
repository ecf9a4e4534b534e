// Fused attention for the cpu backend: out = softmax(scale * q k^T) v per (batch, head), forward and
// backward, without a T x T matrix in the heap. One task per (batch, head): the products run through the
// gemm's packing and micro-kernel on blocks of Br query rows whose scores stay in the task's scratch (in
// L2), the softmax statistics are kept as a per-row log-sum-exp, and the backward recomputes the
// probabilities from it (as flash attention does). Every task writes only its own (batch, head) slices,
// so results do not depend on the number of threads.
//
// Job parameters (f64 slots):
//   1 H, 2 Tq, 3 Tk, 4 D, 5 Dv, 6 q, 7..9 q strides (batch, head, token; elements, unit stride on D),
//   10 k, 11..13, 14 v, 15..17, 18 out, 19..21, 22 lse ([B, H, Tq] contiguous; 0: none), 23 scale,
//   24 Br, 25 scratch base, 26 scratch bytes per slot, 27 KC,
//   backward: 28 dout, 29..31 its strides, 32 dq, 33 dk, 34 dv (fresh contiguous [B, H, T, D] tensors).
import { hsum64, pf, pi, pu, splat, vexp } from './common';
import { MR, NR, packA, packB, tile } from './gemm';
import { softmaxRows } from './rows';

// @ts-ignore: decorator
@inline function up(x: i32, m: i32): i32 { return (x + m - 1) / m * m; }

/** Bytes of scratch one task needs (the host allocates this per thread slot). */
export function attentionScratch(backward: i32, Tq: i32, Tk: i32, D: i32, Dv: i32, Br: i32): i32 {
  const Tkp = up(Tk, NR), TkA = up(Tk, MR), Dp = up(D, NR), Dvp = up(Dv, NR), Brp = up(Br, MR);
  let f = 0;
  if (!backward) f = D * Tkp + Tk * Dvp + Brp * D + Br * Tk + Brp * Tk;
  else f = D * Tkp + Dv * Tkp + Tk * Dp + Brp * D + Br * Tk + Brp * Dv + Br * Tk + Brp * Tk + TkA * Br + Br * Dp + TkA * Br + Br * Dvp + Tq;
  return (f + 16 * 16) * 4;
}

/** Bump allocation inside a task's scratch, 64-byte aligned. */
// @ts-ignore: decorator
@inline function take(p: usize, floats: i32): usize { return (p + (<usize>floats << 2) + 63) & ~(<usize>63); }

// @ts-ignore: decorator
@inline function addr(job: usize, base: i32, b: i32, h: i32): usize {
  return pu(job, base) + (<usize>(b * pi(job, base + 1) + h * pi(job, base + 2)) << 2);
}

export function attentionForwardTask(job: usize, u: i32, slot: i32): void {
  const H = pi(job, 1), Tq = pi(job, 2), Tk = pi(job, 3), D = pi(job, 4), Dv = pi(job, 5);
  const b = u / H, h = u - b * H;
  const q = addr(job, 6, b, h), k = addr(job, 10, b, h), v = addr(job, 14, b, h), o = addr(job, 18, b, h);
  const qst = pi(job, 9), kst = pi(job, 13), vst = pi(job, 17), ost = pi(job, 21);
  const lse0 = pu(job, 22);
  const lse = lse0 ? lse0 + (<usize>(u * Tq) << 2) : 0;
  const scale = <f32>pf(job, 23), Br = pi(job, 24), KC = pi(job, 27);
  const Tkp = up(Tk, NR), Dvp = up(Dv, NR);
  const s0 = (pu(job, 25) + <usize>slot * pu(job, 26) + 63) & ~(<usize>63);
  const kp = s0, vp = take(kp, D * Tkp), qp = take(vp, Tk * Dvp), s = take(qp, up(Br, MR) * D), pp = take(s, Br * Tk);
  packB(k, 1, kst, Tk, D, kp, Tkp / NR);
  packB(v, vst, 1, Dv, Tk, vp, Dvp / NR);
  for (let r0 = 0; r0 < Tq; r0 += Br) {
    const br = min(Br, Tq - r0), brp = up(br, MR);
    packA(q + (<usize>(r0 * qst) << 2), qst, 1, br, D, qp, brp / MR);
    tile(qp, kp, D, 0, brp, 0, Tkp, s, Tk, KC, br, Tk, 0, slot);
    softmaxRows(s, s, 0, br, Tk, scale, 0, lse ? lse + (<usize>r0 << 2) : 0);
    packA(s, Tk, 1, br, Tk, pp, brp / MR);
    tile(pp, vp, Tk, 0, brp, 0, Dvp, o + (<usize>(r0 * ost) << 2), ost, KC, br, Dv, 0, slot);
  }
}

export function attentionBackwardTask(job: usize, u: i32, slot: i32): void {
  const H = pi(job, 1), Tq = pi(job, 2), Tk = pi(job, 3), D = pi(job, 4), Dv = pi(job, 5);
  const b = u / H, h = u - b * H;
  const q = addr(job, 6, b, h), k = addr(job, 10, b, h), v = addr(job, 14, b, h), o = addr(job, 18, b, h), dout = addr(job, 28, b, h);
  const qst = pi(job, 9), kst = pi(job, 13), vst = pi(job, 17), ost = pi(job, 21), dost = pi(job, 31);
  const lse = pu(job, 22) + (<usize>(u * Tq) << 2);
  const dq = pu(job, 32) + (<usize>(u * Tq * D) << 2), dk = pu(job, 33) + (<usize>(u * Tk * D) << 2), dv = pu(job, 34) + (<usize>(u * Tk * Dv) << 2);
  const scale = <f32>pf(job, 23), Br = pi(job, 24), KC = pi(job, 27);
  const Tkp = up(Tk, NR), TkA = up(Tk, MR), Dp = up(D, NR), Dvp = up(Dv, NR), Brp = up(Br, MR);
  const s0 = (pu(job, 25) + <usize>slot * pu(job, 26) + 63) & ~(<usize>63);
  const kp = s0, vtp = take(kp, D * Tkp), kB = take(vtp, Dv * Tkp), qp = take(kB, Tk * Dp), s = take(qp, Brp * D);
  const dop = take(s, Br * Tk), dp = take(dop, Brp * Dv), dsp = take(dp, Br * Tk), dstp = take(dsp, Brp * Tk);
  const qbp = take(dstp, TkA * Br), ptp = take(qbp, Br * Dp), dobp = take(ptp, TkA * Br), dvec = take(dobp, Br * Dvp);
  // dvec[r] = sum_d dout[r][d] * out[r][d]
  const dv4 = Dv & ~3;
  for (let r = 0; r < Tq; r++) {
    const orow = o + (<usize>(r * ost) << 2), drow = dout + (<usize>(r * dost) << 2);
    let acc = splat(0);
    let j = 0;
    for (; j < dv4; j += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(orow + (<usize>j << 2)), v128.load(drow + (<usize>j << 2))));
    let d: f64 = hsum64(acc);
    for (; j < Dv; j++) d += <f64>(load<f32>(orow + (<usize>j << 2)) * load<f32>(drow + (<usize>j << 2)));
    store<f32>(dvec + (<usize>r << 2), <f32>d);
  }
  packB(k, 1, kst, Tk, D, kp, Tkp / NR);     // k^T as the B of q k^T
  packB(v, 1, vst, Tk, Dv, vtp, Tkp / NR);   // v^T as the B of dout v^T
  packB(k, kst, 1, D, Tk, kB, Dp / NR);      // k as the B of ds k
  const vsc = splat(scale);
  const tk4 = Tk & ~3;
  for (let r0 = 0; r0 < Tq; r0 += Br) {
    const br = min(Br, Tq - r0), brp = up(br, MR);
    const beta = r0 > 0 ? 1 : 0;
    // p = exp(scale * q k^T - lse)
    packA(q + (<usize>(r0 * qst) << 2), qst, 1, br, D, qp, brp / MR);
    tile(qp, kp, D, 0, brp, 0, Tkp, s, Tk, KC, br, Tk, 0, slot);
    // dp = dout v^T
    packA(dout + (<usize>(r0 * dost) << 2), dost, 1, br, Dv, dop, brp / MR);
    tile(dop, vtp, Dv, 0, brp, 0, Tkp, dp, Tk, KC, br, Tk, 0, slot);
    for (let r = 0; r < br; r++) {
      const sr = s + (<usize>(r * Tk) << 2), dr = dp + (<usize>(r * Tk) << 2);
      const l = load<f32>(lse + (<usize>(r0 + r) << 2)), dd = load<f32>(dvec + (<usize>(r0 + r) << 2));
      const vl = splat(l), vd = splat(dd);
      let j = 0;
      for (; j < tk4; j += 4) {
        const q4 = <usize>j << 2;
        const pv = vexp(f32x4.sub(f32x4.mul(v128.load(sr + q4), vsc), vl));
        v128.store(sr + q4, pv);
        // ds = scale * p * (dp - dvec)
        v128.store(dr + q4, f32x4.mul(f32x4.mul(pv, f32x4.sub(v128.load(dr + q4), vd)), vsc));
      }
      for (; j < Tk; j++) {
        const q4 = <usize>j << 2;
        const pv = f32x4.extract_lane(vexp(f32x4.splat(load<f32>(sr + q4) * scale - l)), 0);
        store<f32>(sr + q4, pv);
        store<f32>(dr + q4, (pv * (load<f32>(dr + q4) - dd)) * scale);
      }
    }
    // dq rows = ds k
    packA(dp, Tk, 1, br, Tk, dsp, brp / MR);
    tile(dsp, kB, Tk, 0, brp, 0, Dp, dq + (<usize>(r0 * D) << 2), D, KC, br, D, 0, slot);
    // dk += ds^T q_block
    packA(dp, 1, Tk, Tk, br, dstp, TkA / MR);
    packB(q + (<usize>(r0 * qst) << 2), qst, 1, D, br, qbp, Dp / NR);
    tile(dstp, qbp, br, 0, TkA, 0, Dp, dk, D, KC, Tk, D, beta, slot);
    // dv += p^T dout_block
    packA(s, 1, Tk, Tk, br, ptp, TkA / MR);
    packB(dout + (<usize>(r0 * dost) << 2), dost, 1, Dv, br, dobp, Dvp / NR);
    tile(ptp, dobp, br, 0, TkA, 0, Dvp, dv, Dv, KC, Tk, Dv, beta, slot);
  }
}

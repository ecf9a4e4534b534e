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
import { EDGE, EDGE_SLOT, hsum64, madd, pf, pi, pu, splat, vexp, vexpNeg } from './common';
import { MR, NR, packA, packB, tile } from './gemm';
import { softmaxRows } from './rows';

// @ts-ignore: decorator
@inline function up(x: i32, m: i32): i32 { return (x + m - 1) / m * m; }

/** Bytes of scratch one task needs (the host allocates this per thread slot). */
export function attentionScratch(backward: i32, Tq: i32, Tk: i32, D: i32, Dv: i32, Br: i32): i32 {
  const Tkp = up(Tk, NR), Brp = up(Br, MR), D16 = up(D, 16), Dv16 = up(Dv, 16);
  let f = 0;
  if (!backward) f = D * Tkp + Tk * Dv16 + Brp * D + Br * Tk;
  else f = D * Tkp + Dv * Tkp + Tk * D16 + Brp * D + Br * Tk + Brp * Dv + Br * Tk + Br * D16 + Br * Dv16 + Tq;
  return (f + 16 * 16) * 4;
}

/** Bump allocation inside a task's scratch, 64-byte aligned. */
// @ts-ignore: decorator
@inline function take(p: usize, floats: i32): usize { return (p + (<usize>floats << 2) + 63) & ~(<usize>63); }

// @ts-ignore: decorator
@inline function addr(job: usize, base: i32, b: i32, h: i32): usize {
  return pu(job, base) + (<usize>(b * pi(job, base + 1) + h * pi(job, base + 2)) << 2);
}

/** rows x n floats (row stride ss) into rows of width w (a multiple of 16), zero-padded. */
function padRows(src: usize, ss: i32, rows: i32, n: i32, dst: usize, w: i32): void {
  for (let r = 0; r < rows; r++) {
    const d = dst + (<usize>(r * w) << 2);
    memory.copy(d, src + (<usize>(r * ss) << 2), <usize>n << 2);
    if (w > n) memory.fill(d + (<usize>n << 2), 0, <usize>(w - n) << 2);
  }
}

/** Stores 16 columns (or the first w) of a row: c (+)= v0..v3. */
// @ts-ignore: decorator
@inline function storeRow(c: usize, w: i32, beta: bool, v0: v128, v1: v128, v2: v128, v3: v128, edge: usize): void {
  if (w == 16) {
    if (beta) {
      v0 = f32x4.add(v0, v128.load(c)); v1 = f32x4.add(v1, v128.load(c, 16));
      v2 = f32x4.add(v2, v128.load(c, 32)); v3 = f32x4.add(v3, v128.load(c, 48));
    }
    v128.store(c, v0); v128.store(c, v1, 16); v128.store(c, v2, 32); v128.store(c, v3, 48);
    return;
  }
  v128.store(edge, v0); v128.store(edge, v1, 16); v128.store(edge, v2, 32); v128.store(edge, v3, 48);
  for (let i = 0; i < w; i++) {
    const q = c + (<usize>i << 2);
    const v = load<f32>(edge + (<usize>i << 2));
    store<f32>(q, beta ? load<f32>(q) + v : v);
  }
}

/**
 * C[r][0, n) (+)= sum_j X[r][j] Y[j][0, n) for r < m, j < kk: X rows of stride xs (scores in scratch),
 * Y rows of width yw (zero-padded to a multiple of 16), C rows of stride cs. Two rows of C and 16 columns
 * are held in registers; Y's row j is loaded once for both.
 */
function rowsTimes(x: usize, xs: i32, m: i32, kk: i32, y: usize, yw: i32, n: i32, c: usize, cs: i32, beta: bool, edge: usize): void {
  for (let c0 = 0; c0 < n; c0 += 16) {
    const w = min(16, n - c0);
    const yc = y + (<usize>c0 << 2);
    let r = 0;
    for (; r + 2 <= m; r += 2) {
      const x0 = x + (<usize>(r * xs) << 2), x1 = x0 + (<usize>xs << 2);
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      let yp = yc;
      for (let j = 0; j < kk; j++) {
        const y0 = v128.load(yp), y1 = v128.load(yp, 16), y2 = v128.load(yp, 32), y3 = v128.load(yp, 48);
        const s0 = v128.load32_splat(x0 + (<usize>j << 2)), s1 = v128.load32_splat(x1 + (<usize>j << 2));
        a0 = madd(s0, y0, a0); a1 = madd(s0, y1, a1); a2 = madd(s0, y2, a2); a3 = madd(s0, y3, a3);
        b0 = madd(s1, y0, b0); b1 = madd(s1, y1, b1); b2 = madd(s1, y2, b2); b3 = madd(s1, y3, b3);
        yp += <usize>yw << 2;
      }
      const cr = c + (<usize>(r * cs + c0) << 2);
      storeRow(cr, w, beta, a0, a1, a2, a3, edge);
      storeRow(cr + (<usize>cs << 2), w, beta, b0, b1, b2, b3, edge);
    }
    if (r < m) {
      const x0 = x + (<usize>(r * xs) << 2);
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
      let yp = yc;
      for (let j = 0; j < kk; j++) {
        const s0 = v128.load32_splat(x0 + (<usize>j << 2));
        a0 = madd(s0, v128.load(yp), a0); a1 = madd(s0, v128.load(yp, 16), a1);
        a2 = madd(s0, v128.load(yp, 32), a2); a3 = madd(s0, v128.load(yp, 48), a3);
        yp += <usize>yw << 2;
      }
      storeRow(c + (<usize>(r * cs + c0) << 2), w, beta, a0, a1, a2, a3, edge);
    }
  }
}

/**
 * C[j][0, n) (+)= sum_r X[r][j] Y[r][0, n) for j < kk, r < m (the transposed product: dk = ds^T q,
 * dv = p^T dout), two rows of C at a time, 16 columns in registers.
 */
function rowsTimesT(x: usize, xs: i32, m: i32, kk: i32, y: usize, yw: i32, n: i32, c: usize, cs: i32, beta: bool, edge: usize): void {
  for (let c0 = 0; c0 < n; c0 += 16) {
    const w = min(16, n - c0);
    const yc = y + (<usize>c0 << 2);
    let j = 0;
    for (; j + 2 <= kk; j += 2) {
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      let yp = yc, xp = x + (<usize>j << 2);
      for (let r = 0; r < m; r++) {
        const y0 = v128.load(yp), y1 = v128.load(yp, 16), y2 = v128.load(yp, 32), y3 = v128.load(yp, 48);
        const s0 = v128.load32_splat(xp), s1 = v128.load32_splat(xp + 4);
        a0 = madd(s0, y0, a0); a1 = madd(s0, y1, a1); a2 = madd(s0, y2, a2); a3 = madd(s0, y3, a3);
        b0 = madd(s1, y0, b0); b1 = madd(s1, y1, b1); b2 = madd(s1, y2, b2); b3 = madd(s1, y3, b3);
        yp += <usize>yw << 2;
        xp += <usize>xs << 2;
      }
      const cr = c + (<usize>(j * cs + c0) << 2);
      storeRow(cr, w, beta, a0, a1, a2, a3, edge);
      storeRow(cr + (<usize>cs << 2), w, beta, b0, b1, b2, b3, edge);
    }
    if (j < kk) {
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
      let yp = yc, xp = x + (<usize>j << 2);
      for (let r = 0; r < m; r++) {
        const s0 = v128.load32_splat(xp);
        a0 = madd(s0, v128.load(yp), a0); a1 = madd(s0, v128.load(yp, 16), a1);
        a2 = madd(s0, v128.load(yp, 32), a2); a3 = madd(s0, v128.load(yp, 48), a3);
        yp += <usize>yw << 2;
        xp += <usize>xs << 2;
      }
      storeRow(c + (<usize>(j * cs + c0) << 2), w, beta, a0, a1, a2, a3, edge);
    }
  }
}

export function attentionForwardTask(job: usize, u: i32, slot: i32): void {
  const H = pi(job, 1), Tq = pi(job, 2), Tk = pi(job, 3), D = pi(job, 4), Dv = pi(job, 5);
  const b = u / H, h = u - b * H;
  const q = addr(job, 6, b, h), k = addr(job, 10, b, h), v = addr(job, 14, b, h), o = addr(job, 18, b, h);
  const qst = pi(job, 9), kst = pi(job, 13), vst = pi(job, 17), ost = pi(job, 21);
  const lse0 = pu(job, 22);
  const lse = lse0 ? lse0 + (<usize>(u * Tq) << 2) : 0;
  const scale = <f32>pf(job, 23), Br = pi(job, 24), KC = pi(job, 27);
  const Tkp = up(Tk, NR), Dv16 = up(Dv, 16);
  const edge = EDGE + <usize>slot * EDGE_SLOT;
  const s0 = (pu(job, 25) + <usize>slot * pu(job, 26) + 63) & ~(<usize>63);
  const kp = s0, vpad = take(kp, D * Tkp), qp = take(vpad, Tk * Dv16), s = take(qp, up(Br, MR) * D);
  packB(k, 1, kst, Tk, D, kp, Tkp / NR);
  padRows(v, vst, Tk, Dv, vpad, Dv16);
  for (let r0 = 0; r0 < Tq; r0 += Br) {
    const br = min(Br, Tq - r0), brp = up(br, MR);
    packA(q + (<usize>(r0 * qst) << 2), qst, 1, br, D, qp, brp / MR);
    tile(qp, kp, D, 0, brp, 0, Tkp, s, Tk, KC, br, Tk, 0, slot);
    softmaxRows(s, s, 0, br, Tk, scale, 0, lse ? lse + (<usize>r0 << 2) : 0);
    rowsTimes(s, Tk, br, Tk, vpad, Dv16, Dv, o + (<usize>(r0 * ost) << 2), ost, false, edge);
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
  const Tkp = up(Tk, NR), Brp = up(Br, MR), D16 = up(D, 16), Dv16 = up(Dv, 16);
  const edge = EDGE + <usize>slot * EDGE_SLOT;
  const s0 = (pu(job, 25) + <usize>slot * pu(job, 26) + 63) & ~(<usize>63);
  const kp = s0, vtp = take(kp, D * Tkp), kpad = take(vtp, Dv * Tkp), qp = take(kpad, Tk * D16), s = take(qp, Brp * D);
  const dop = take(s, Br * Tk), dp = take(dop, Brp * Dv), qpad = take(dp, Br * Tk), dopad = take(qpad, Br * D16), dvec = take(dopad, Br * Dv16);
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
  padRows(k, kst, Tk, D, kpad, D16);         // k rows for ds k
  const vsc = splat(scale);
  const tk4 = Tk & ~3;
  for (let r0 = 0; r0 < Tq; r0 += Br) {
    const br = min(Br, Tq - r0), brp = up(br, MR);
    const beta = r0 > 0;
    const qb = q + (<usize>(r0 * qst) << 2), db = dout + (<usize>(r0 * dost) << 2);
    // p = exp(scale * q k^T - lse)
    packA(qb, qst, 1, br, D, qp, brp / MR);
    tile(qp, kp, D, 0, brp, 0, Tkp, s, Tk, KC, br, Tk, 0, slot);
    // dp = dout v^T
    packA(db, dost, 1, br, Dv, dop, brp / MR);
    tile(dop, vtp, Dv, 0, brp, 0, Tkp, dp, Tk, KC, br, Tk, 0, slot);
    for (let r = 0; r < br; r++) {
      const sr = s + (<usize>(r * Tk) << 2), dr = dp + (<usize>(r * Tk) << 2);
      const l = load<f32>(lse + (<usize>(r0 + r) << 2)), dd = load<f32>(dvec + (<usize>(r0 + r) << 2));
      const vl = splat(l), vd = splat(dd);
      let j = 0;
      for (; j < tk4; j += 4) {
        const q4 = <usize>j << 2;
        const pv = vexpNeg(f32x4.sub(f32x4.mul(v128.load(sr + q4), vsc), vl));
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
    // dq rows = ds k; dk += ds^T q_block; dv += p^T dout_block
    rowsTimes(dp, Tk, br, Tk, kpad, D16, D, dq + (<usize>(r0 * D) << 2), D, false, edge);
    padRows(qb, qst, br, D, qpad, D16);
    rowsTimesT(dp, Tk, br, Tk, qpad, D16, D, dk, D, beta, edge);
    padRows(db, dost, br, Dv, dopad, Dv16);
    rowsTimesT(s, Tk, br, Tk, dopad, Dv16, Dv, dv, Dv, beta, edge);
  }
}

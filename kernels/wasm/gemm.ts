// Float32 GEMM for the cpu backend: GotoBLAS/BLIS-style packing plus a register-blocked micro-kernel.
//
// Built in two flavours from one source (scripts/build-wasm.mjs):
//   * relaxed: `--enable relaxed-simd` -> f32x4.relaxed_madd (an FMA on x86 with FMA3), 6x8 micro-kernel
//   * simd:    plain SIMD, f32x4.mul + f32x4.add, 5x8 micro-kernel (the 6x8 one spills: V8 gives wasm
//              only xmm0-xmm15 and mul+add needs a temporary)
// A is packed into MR-row slivers ([K][MR] per sliver), B into NR-column slivers ([K][NR] per sliver),
// both zero-padded to whole slivers. C is written in place (any row stride): full MR x NR blocks
// directly, blocks on the bottom/right edge through a small per-thread scratch.
import { EDGE, EDGE_SLOT, madd, pi, pu } from './common';

// Micro-kernel shape. NR is fixed at 8 (two v128 of B per k step).
// @ts-ignore: decorator
@inline const FMA: bool = ASC_FEATURE_RELAXED_SIMD;
// @ts-ignore: decorator
@inline export const MR: i32 = FMA ? 6 : 5;
// @ts-ignore: decorator
@inline export const NR: i32 = 8;

export function mr(): i32 { return MR; }
export function nr(): i32 { return NR; }
export function relaxed(): i32 { return FMA ? 1 : 0; }


/** C[0:MR, 0:NR] (row stride ldcB bytes) = (acc ? C : 0) + Apanel[kc][MR]^T * Bpanel[kc][NR]. */
function kernel(a: usize, b: usize, kc: i32, c: usize, ldcB: usize, acc: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(b, 0);
    const b1 = v128.load(b, 16);
    const a0 = v128.load32_splat(a, 0);
    c00 = madd(a0, b0, c00); c01 = madd(a0, b1, c01);
    const a1 = v128.load32_splat(a, 4);
    c10 = madd(a1, b0, c10); c11 = madd(a1, b1, c11);
    const a2 = v128.load32_splat(a, 8);
    c20 = madd(a2, b0, c20); c21 = madd(a2, b1, c21);
    const a3 = v128.load32_splat(a, 12);
    c30 = madd(a3, b0, c30); c31 = madd(a3, b1, c31);
    const a4 = v128.load32_splat(a, 16);
    c40 = madd(a4, b0, c40); c41 = madd(a4, b1, c41);
    if (MR > 5) {
      const a5 = v128.load32_splat(a, 20);
      c50 = madd(a5, b0, c50); c51 = madd(a5, b1, c51);
    }
    a += <usize>(MR << 2);
    b += <usize>(NR << 2);
  }
  const r1 = c + ldcB, r2 = r1 + ldcB, r3 = r2 + ldcB, r4 = r3 + ldcB, r5 = r4 + ldcB;
  if (acc) {
    v128.store(c, f32x4.add(v128.load(c, 0), c00), 0);
    v128.store(c, f32x4.add(v128.load(c, 16), c01), 16);
    v128.store(r1, f32x4.add(v128.load(r1, 0), c10), 0);
    v128.store(r1, f32x4.add(v128.load(r1, 16), c11), 16);
    v128.store(r2, f32x4.add(v128.load(r2, 0), c20), 0);
    v128.store(r2, f32x4.add(v128.load(r2, 16), c21), 16);
    v128.store(r3, f32x4.add(v128.load(r3, 0), c30), 0);
    v128.store(r3, f32x4.add(v128.load(r3, 16), c31), 16);
    v128.store(r4, f32x4.add(v128.load(r4, 0), c40), 0);
    v128.store(r4, f32x4.add(v128.load(r4, 16), c41), 16);
    if (MR > 5) {
      v128.store(r5, f32x4.add(v128.load(r5, 0), c50), 0);
      v128.store(r5, f32x4.add(v128.load(r5, 16), c51), 16);
    }
  } else {
    v128.store(c, c00, 0); v128.store(c, c01, 16);
    v128.store(r1, c10, 0); v128.store(r1, c11, 16);
    v128.store(r2, c20, 0); v128.store(r2, c21, 16);
    v128.store(r3, c30, 0); v128.store(r3, c31, 16);
    v128.store(r4, c40, 0); v128.store(r4, c41, 16);
    if (MR > 5) {
      v128.store(r5, c50, 0); v128.store(r5, c51, 16);
    }
  }
}

/**
 * Packs `nsl` MR-row slivers of A. `src` is the byte address of A[i0][0]; rs/cs are element strides
 * (any sign); `rows` is how many rows from i0 exist (rows past it are zero-filled). Output: sliver s at
 * dst + s*K*MR*4, laid out [K][MR].
 */
export function packA(src: usize, rs: i32, cs: i32, rows: i32, K: i32, dst: usize, nsl: i32): void {
  const rsB = <usize>(rs << 2), csB = <usize>(cs << 2);
  let s0 = 0;
  if (rs == 1) {
    // Column-major A (a transposed view): MR contiguous floats per k. Walk K in blocks so each column
    // segment (all slivers of the group) is used while its cache lines are hot.
    const full = min(nsl, rows / MR);
    const slA = <usize>K * <usize>(MR << 2);
    for (let kb = 0; kb < K; kb += 16) {
      const ke = min(K, kb + 16);
      for (let s = 0; s < full; s++) {
        let p = src + <usize>kb * csB + <usize>(s * MR << 2);
        let d = dst + <usize>s * slA + <usize>(kb * MR << 2);
        for (let k = kb; k < ke; k++) {
          v128.store(d, v128.load(p));
          if (MR == 6) store<u64>(d, load<u64>(p, 16), 16);
          else store<f32>(d, load<f32>(p, 16), 16);
          d += <usize>(MR << 2);
          p += csB;
        }
      }
    }
    s0 = full;
  }
  for (let s = s0; s < nsl; s++) {
    const r0 = s * MR;
    const valid = min(MR, rows - r0);
    const base = src + <usize>r0 * rsB;
    let d = dst + <usize>s * <usize>K * <usize>(MR << 2);
    if (valid == MR && cs == 1) {
      // Row-major A: read 4 consecutive k of each row, transpose into [k][MR].
      const p0 = base, p1 = p0 + rsB, p2 = p1 + rsB, p3 = p2 + rsB, p4 = p3 + rsB, p5 = p4 + rsB;
      let k = 0;
      let off: usize = 0;
      for (; k + 4 <= K; k += 4) {
        const x0 = v128.load(p0 + off), x1 = v128.load(p1 + off), x2 = v128.load(p2 + off);
        const x3 = v128.load(p3 + off), x4 = v128.load(p4 + off);
        // 4x4 transpose of rows 0..3
        const t0 = v128.shuffle<i32>(x0, x1, 0, 4, 1, 5); // a0 b0 a1 b1
        const t1 = v128.shuffle<i32>(x2, x3, 0, 4, 1, 5); // c0 d0 c1 d1
        const t2 = v128.shuffle<i32>(x0, x1, 2, 6, 3, 7); // a2 b2 a3 b3
        const t3 = v128.shuffle<i32>(x2, x3, 2, 6, 3, 7); // c2 d2 c3 d3
        const k0 = v128.shuffle<i64>(t0, t1, 0, 2);
        const k1 = v128.shuffle<i64>(t0, t1, 1, 3);
        const k2 = v128.shuffle<i64>(t2, t3, 0, 2);
        const k3 = v128.shuffle<i64>(t2, t3, 1, 3);
        if (MR == 6) {
          const x5 = v128.load(p5 + off);
          const u0 = v128.shuffle<i32>(x4, x5, 0, 4, 1, 5); // e0 f0 e1 f1
          const u1 = v128.shuffle<i32>(x4, x5, 2, 6, 3, 7); // e2 f2 e3 f3
          // [k][6]: k0(4) e0 f0 | k1(4) e1 f1 | k2(4) e2 f2 | k3(4) e3 f3 = 24 floats = 6 v128
          v128.store(d, k0, 0);
          v128.store(d, v128.shuffle<i64>(u0, k1, 0, 2), 16);
          v128.store(d, v128.shuffle<i64>(k1, u0, 1, 3), 32);
          v128.store(d, k2, 48);
          v128.store(d, v128.shuffle<i64>(u1, k3, 0, 2), 64);
          v128.store(d, v128.shuffle<i64>(k3, u1, 1, 3), 80);
        } else {
          // [k][5]: 20 floats
          v128.store(d, k0, 0);
          store<f32>(d, f32x4.extract_lane(x4, 0), 16);
          v128.store(d, k1, 20);
          store<f32>(d, f32x4.extract_lane(x4, 1), 36);
          v128.store(d, k2, 40);
          store<f32>(d, f32x4.extract_lane(x4, 2), 56);
          v128.store(d, k3, 60);
          store<f32>(d, f32x4.extract_lane(x4, 3), 76);
        }
        d += <usize>(MR << 4);
        off += 16;
      }
      for (; k < K; k++) {
        store<f32>(d, load<f32>(p0 + off), 0);
        store<f32>(d, load<f32>(p1 + off), 4);
        store<f32>(d, load<f32>(p2 + off), 8);
        store<f32>(d, load<f32>(p3 + off), 12);
        store<f32>(d, load<f32>(p4 + off), 16);
        if (MR == 6) store<f32>(d, load<f32>(p5 + off), 20);
        d += <usize>(MR << 2);
        off += 4;
      }
    } else if (valid == MR) {
      // General strides, full sliver.
      let col = base;
      for (let k = 0; k < K; k++) {
        let p = col;
        store<f32>(d, load<f32>(p), 0); p += rsB;
        store<f32>(d, load<f32>(p), 4); p += rsB;
        store<f32>(d, load<f32>(p), 8); p += rsB;
        store<f32>(d, load<f32>(p), 12); p += rsB;
        store<f32>(d, load<f32>(p), 16);
        if (MR == 6) { p += rsB; store<f32>(d, load<f32>(p), 20); }
        d += <usize>(MR << 2);
        col += csB;
      }
    } else {
      // Edge sliver: `valid` (possibly <= 0) real rows, zero padding.
      let col = base;
      for (let k = 0; k < K; k++) {
        let p = col;
        for (let r = 0; r < MR; r++) {
          store<f32>(d + <usize>(r << 2), r < valid ? load<f32>(p) : <f32>0);
          p += rsB;
        }
        d += <usize>(MR << 2);
        col += csB;
      }
    }
  }
}

/**
 * Packs `nsl` NR-column slivers of B. `src` is the byte address of B[0][j0]; `cols` is how many columns
 * from j0 exist. Output: sliver s at dst + s*K*NR*4, laid out [K][NR].
 */
export function packB(src: usize, rs: i32, cs: i32, cols: i32, K: i32, dst: usize, nsl: i32): void {
  const rsB = <usize>(rs << 2), csB = <usize>(cs << 2);
  let s0 = 0;
  if (cs == 1) {
    // Row-major B: walk K in blocks so each row segment (all slivers of the group) is read while its
    // cache lines are hot, instead of one 32-byte piece per row per sliver.
    const full = min(nsl, cols / NR);
    const slB = <usize>K * <usize>(NR << 2);
    for (let kb = 0; kb < K; kb += 16) {
      const ke = min(K, kb + 16);
      for (let s = 0; s < full; s++) {
        let p = src + <usize>kb * rsB + <usize>(s * NR << 2);
        let d = dst + <usize>s * slB + <usize>(kb * NR << 2);
        for (let k = kb; k < ke; k++) {
          v128.store(d, v128.load(p, 0), 0);
          v128.store(d, v128.load(p, 16), 16);
          d += <usize>(NR << 2);
          p += rsB;
        }
      }
    }
    s0 = full;
  }
  for (let s = s0; s < nsl; s++) {
    const c0 = s * NR;
    const valid = min(NR, cols - c0);
    let p = src + <usize>c0 * csB;
    let d = dst + <usize>s * <usize>K * <usize>(NR << 2);
    if (valid == NR && cs == 1) {
      for (let k = 0; k < K; k++) {
        v128.store(d, v128.load(p, 0), 0);
        v128.store(d, v128.load(p, 16), 16);
        d += <usize>(NR << 2);
        p += rsB;
      }
    } else if (valid == NR && rs == 1) {
      // Transposed B (column-major): 8 column streams, 4 k at a time with a 4x4 transpose per half.
      const q0 = p, q1 = q0 + csB, q2 = q1 + csB, q3 = q2 + csB;
      const q4 = q3 + csB, q5 = q4 + csB, q6 = q5 + csB, q7 = q6 + csB;
      let k = 0;
      let off: usize = 0;
      for (; k + 4 <= K; k += 4) {
        const x0 = v128.load(q0 + off), x1 = v128.load(q1 + off), x2 = v128.load(q2 + off), x3 = v128.load(q3 + off);
        const t0 = v128.shuffle<i32>(x0, x1, 0, 4, 1, 5);
        const t1 = v128.shuffle<i32>(x2, x3, 0, 4, 1, 5);
        const t2 = v128.shuffle<i32>(x0, x1, 2, 6, 3, 7);
        const t3 = v128.shuffle<i32>(x2, x3, 2, 6, 3, 7);
        v128.store(d, v128.shuffle<i64>(t0, t1, 0, 2), 0);
        v128.store(d, v128.shuffle<i64>(t0, t1, 1, 3), 32);
        v128.store(d, v128.shuffle<i64>(t2, t3, 0, 2), 64);
        v128.store(d, v128.shuffle<i64>(t2, t3, 1, 3), 96);
        const y0 = v128.load(q4 + off), y1 = v128.load(q5 + off), y2 = v128.load(q6 + off), y3 = v128.load(q7 + off);
        const s0 = v128.shuffle<i32>(y0, y1, 0, 4, 1, 5);
        const s1 = v128.shuffle<i32>(y2, y3, 0, 4, 1, 5);
        const s2 = v128.shuffle<i32>(y0, y1, 2, 6, 3, 7);
        const s3 = v128.shuffle<i32>(y2, y3, 2, 6, 3, 7);
        v128.store(d, v128.shuffle<i64>(s0, s1, 0, 2), 16);
        v128.store(d, v128.shuffle<i64>(s0, s1, 1, 3), 48);
        v128.store(d, v128.shuffle<i64>(s2, s3, 0, 2), 80);
        v128.store(d, v128.shuffle<i64>(s2, s3, 1, 3), 112);
        d += <usize>(NR << 4);
        off += 16;
      }
      for (; k < K; k++) {
        store<f32>(d, load<f32>(q0 + off), 0);
        store<f32>(d, load<f32>(q1 + off), 4);
        store<f32>(d, load<f32>(q2 + off), 8);
        store<f32>(d, load<f32>(q3 + off), 12);
        store<f32>(d, load<f32>(q4 + off), 16);
        store<f32>(d, load<f32>(q5 + off), 20);
        store<f32>(d, load<f32>(q6 + off), 24);
        store<f32>(d, load<f32>(q7 + off), 28);
        d += <usize>(NR << 2);
        off += 4;
      }
    } else {
      for (let k = 0; k < K; k++) {
        let q = p;
        for (let c = 0; c < NR; c++) {
          store<f32>(d + <usize>(c << 2), c < valid ? load<f32>(q) : <f32>0);
          q += csB;
        }
        d += <usize>(NR << 2);
        p += rsB;
      }
    }
  }
}

/**
 * C rows [i0, i0+mc) x cols [j0, j0+nc) (i0, mc multiples of MR; j0, nc multiples of NR) from packed A
 * (`ap`, all rows) and packed B (`bp`, all columns). `c` is the byte address of C[0][0], `ldc` its row
 * stride in elements, M x N its real size (the packed panels are padded). With beta = 1 the product is
 * added to C, else C is overwritten. K is blocked by `kcBlock` (L1 residency of the B sliver).
 */
export function tile(ap: usize, bp: usize, K: i32, i0: i32, mc: i32, j0: i32, nc: i32, c: usize, ldc: i32, kcBlock: i32,
  M: i32, N: i32, beta: i32, slot: i32): void {
  const ldcB = <usize>ldc << 2;
  const aSl = <usize>K * <usize>(MR << 2);
  const bSl = <usize>K * <usize>(NR << 2);
  const iEnd = min(i0 + mc, M), jEnd = min(j0 + nc, N);
  const edge = EDGE + <usize>slot * EDGE_SLOT;
  for (let pc = 0; pc < K; pc += kcBlock) {
    const kc = min(kcBlock, K - pc);
    const acc = beta != 0 || pc > 0;
    for (let j = j0; j < jEnd; j += NR) {
      const bs = bp + <usize>(j / NR) * bSl + <usize>(pc * NR << 2);
      let as = ap + <usize>(i0 / MR) * aSl + <usize>(pc * MR << 2);
      const vc = min(NR, N - j);
      for (let i = i0; i < iEnd; i += MR) {
        const vr = min(MR, M - i);
        const cp = c + <usize>i * ldcB + (<usize>j << 2);
        if (vr == MR && vc == NR) kernel(as, bs, kc, cp, ldcB, acc);
        else edgeTile(as, bs, kc, cp, ldcB, acc, vr, vc, edge);
        as += aSl;
      }
    }
  }
  if (K == 0 && beta == 0) {
    for (let i = i0; i < iEnd; i++) memory.fill(c + <usize>i * ldcB + (<usize>j0 << 2), 0, <usize>(jEnd - j0) << 2);
  }
}

/** A partial MR x NR block: computed in the slot's scratch, only the vr x vc valid part touches C. */
function edgeTile(as: usize, bs: usize, kc: i32, cp: usize, ldcB: usize, acc: bool, vr: i32, vc: i32, edge: usize): void {
  const vcB = <usize>vc << 2;
  if (acc) for (let r = 0; r < vr; r++) memory.copy(edge + <usize>(r * NR << 2), cp + <usize>r * ldcB, vcB);
  kernel(as, bs, kc, edge, <usize>(NR << 2), acc);
  for (let r = 0; r < vr; r++) memory.copy(cp + <usize>r * ldcB, edge + <usize>(r * NR << 2), vcB);
}

// ---------------------------------------------------------------------------------------------------
// Jobs. Parameters (f64 slots of the job block), shared by the plain and the batched job:
//   1 K, 2 A, 3 ars, 4 acs, 5 B, 6 brs, 7 bcs, 8 packed A, 9 packed B, 10 C, 11 ldc, 12 Mp, 13 Np, 14 M, 15 N,
//   16 KC, 17 MC, 18 NC, 19 tiles along N, 20 A packing tasks, 21 slivers per A task, 22 B packing tasks,
//   23 slivers per B task, 24 beta, 25 A batch stride, 26 B batch stride, 27 C batch stride (elements),
//   28 A shared, 29 B shared, 30 scratch base, 31 scratch bytes per slot, 32 slots.
// Tasks: A packing groups, then B packing groups (the host runs them before any later task), then one
// task per C tile (plain job) or per batch item (batched job: packs its own operands into its slot's scratch).

export function gemmTask(job: usize, t: i32, slot: i32, batched: bool): void {
  const K = pi(job, 1);
  const npa = pi(job, 20), npb = pi(job, 22);
  if (t < npa) {
    const ga = pi(job, 21);
    const r0 = t * ga * MR;
    const nsl = min(ga, pi(job, 12) / MR - t * ga);
    const ars = pi(job, 3);
    packA(pu(job, 2) + (<usize>(r0 * ars) << 2), ars, pi(job, 4), pi(job, 14) - r0, K, pu(job, 8) + (<usize>(r0 * K) << 2), nsl);
    return;
  }
  t -= npa;
  if (t < npb) {
    const gb = pi(job, 23);
    const c0 = t * gb * NR;
    const nsl = min(gb, pi(job, 13) / NR - t * gb);
    const bcs = pi(job, 7);
    packB(pu(job, 5) + (<usize>(c0 * bcs) << 2), pi(job, 6), bcs, pi(job, 15) - c0, K, pu(job, 9) + (<usize>(c0 * K) << 2), nsl);
    return;
  }
  t -= npb;
  const M = pi(job, 14), N = pi(job, 15), Mp = pi(job, 12), Np = pi(job, 13);
  const MC = pi(job, 17), NC = pi(job, 18), kc = pi(job, 16), ldc = pi(job, 11), beta = pi(job, 24);
  if (!batched) {
    const tilesN = pi(job, 19);
    const ti = t / tilesN, tj = t - ti * tilesN;
    const i0 = ti * MC, j0 = tj * NC;
    tile(pu(job, 8), pu(job, 9), K, i0, min(MC, Mp - i0), j0, min(NC, Np - j0), pu(job, 10), ldc, kc, M, N, beta, slot);
    return;
  }
  // one batch item
  let scr = pu(job, 30) + <usize>slot * pu(job, 31);
  let ap = pu(job, 8), bp = pu(job, 9);
  if (pi(job, 28) == 0) {
    ap = scr;
    packA(pu(job, 2) + (<usize>(t * pi(job, 25)) << 2), pi(job, 3), pi(job, 4), M, K, ap, Mp / MR);
    scr += <usize>(Mp * K) << 2;
  }
  if (pi(job, 29) == 0) {
    bp = scr;
    packB(pu(job, 5) + (<usize>(t * pi(job, 26)) << 2), pi(job, 6), pi(job, 7), N, K, bp, Np / NR);
  }
  const c = pu(job, 10) + (<usize>(t * pi(job, 27)) << 2);
  for (let i0 = 0; i0 < Mp; i0 += MC) {
    const mc = min(MC, Mp - i0);
    for (let j0 = 0; j0 < Np; j0 += NC) tile(ap, bp, K, i0, mc, j0, min(NC, Np - j0), c, ldc, kc, M, N, beta, slot);
  }
}

// Float32 elementwise kernels over strided views, in place on the heap: unary maps, binary maps (a
// scalar operand is a stride-0 view of one float in the job block), strided copy / copy-accumulate and
// sum reductions. The host collapses dimensions first (src/backends/cpu/fast/elementwise.ts), so a
// dense op arrives as one long row; the innermost dimension is the row, the others are walked with an
// index carried from row to row.
//
// Job parameters (f64 slots): 1 op, 2 ndim (<= 6), 3..8 dims, 9..14 / 15..20 / 21..26 strides of
// operands 0 / 1 / 2 (elements), 27 / 28 / 29 their byte addresses, 30 rows (product of the outer dims),
// 31 pieces per row, 32 tasks, 33 flag (copy: accumulate). Operand 2 is the output (copy: destination).
// Work units are (row, piece) pairs split evenly over the tasks; every unit writes its own outputs, so
// results do not depend on how many threads run the tasks.
import { IDX, IDX_SLOT, K_ABS, K_NAN, K_ONE, pi, pu, vexp, vsigmoid } from './common';

// ---- unary ----------------------------------------------------------------------------------------
// 0 neg, 1 abs, 2 sqrt, 3 rsqrt, 4 exp, 5 sigmoid, 6 silu, 7 relu, 8 square, 9 reciprocal

// @ts-ignore: decorator
@inline function vun(op: i32, x: v128): v128 {
  if (op == 0) return f32x4.neg(x);
  if (op == 1) return v128.and(x, v128.load(K_ABS));
  if (op == 2) return f32x4.sqrt(x);
  if (op == 3) {
    // 1 / sqrt(x) in float64, rounded once (as the reference's double arithmetic)
    const one = f64x2.splat(1);
    const lo = f64x2.div(one, f64x2.sqrt(f64x2.promote_low_f32x4(x)));
    const hi = f64x2.div(one, f64x2.sqrt(f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1))));
    return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
  }
  if (op == 4) return vexp(x);
  if (op == 5) return vsigmoid(x);
  if (op == 6) return f32x4.mul(x, vsigmoid(x));
  if (op == 7) return v128.and(x, f32x4.gt(x, f32x4.splat(0)));
  if (op == 8) return f32x4.mul(x, x);
  return f32x4.div(v128.load(K_ONE), x);
}

// @ts-ignore: decorator
@inline function unRowT(op: i32, x: usize, xs: i32, o: usize, os: i32, n: i32): void {
  let i = 0;
  if (xs == 1 && os == 1) {
    for (; i + 4 <= n; i += 4) v128.store(o + (<usize>i << 2), vun(op, v128.load(x + (<usize>i << 2))));
  }
  for (; i < n; i++) {
    const v = f32x4.splat(load<f32>(x + (<usize>(i * xs) << 2)));
    store<f32>(o + (<usize>(i * os) << 2), f32x4.extract_lane(vun(op, v), 0));
  }
}

function unRow(op: i32, x: usize, xs: i32, o: usize, os: i32, n: i32): void {
  switch (op) {
    case 0: unRowT(0, x, xs, o, os, n); break;
    case 1: unRowT(1, x, xs, o, os, n); break;
    case 2: unRowT(2, x, xs, o, os, n); break;
    case 3: unRowT(3, x, xs, o, os, n); break;
    case 4: unRowT(4, x, xs, o, os, n); break;
    case 5: unRowT(5, x, xs, o, os, n); break;
    case 6: unRowT(6, x, xs, o, os, n); break;
    case 7: unRowT(7, x, xs, o, os, n); break;
    case 8: unRowT(8, x, xs, o, os, n); break;
    default: unRowT(9, x, xs, o, os, n); break;
  }
}

// ---- binary ---------------------------------------------------------------------------------------
// 0 add, 1 sub, 2 mul, 3 div, 4 maximum, 5 minimum (NaN if either is NaN, else a > b ? a : b, as the reference)

// @ts-ignore: decorator
@inline function vbin(op: i32, a: v128, b: v128): v128 {
  if (op == 0) return f32x4.add(a, b);
  if (op == 1) return f32x4.sub(a, b);
  if (op == 2) return f32x4.mul(a, b);
  if (op == 3) return f32x4.div(a, b);
  const pick = op == 4 ? v128.bitselect(a, b, f32x4.gt(a, b)) : v128.bitselect(a, b, f32x4.lt(a, b));
  const nan = v128.or(f32x4.ne(a, a), f32x4.ne(b, b));
  return v128.bitselect(v128.load(K_NAN), pick, nan);
}

/** The scalar form of vbin (same results lane by lane). */
// @ts-ignore: decorator
@inline function sbin(op: i32, a: f32, b: f32): f32 {
  if (op == 0) return a + b;
  if (op == 1) return a - b;
  if (op == 2) return a * b;
  if (op == 3) return a / b;
  if (a != a || b != b) return NaN;
  return op == 4 ? (a > b ? a : b) : (a < b ? a : b);
}

// @ts-ignore: decorator
@inline function binRowT(op: i32, a: usize, as: i32, b: usize, bs: i32, o: usize, os: i32, n: i32): void {
  let i = 0;
  if (os == 1) {
    if (as == 1 && bs == 1) {
      for (; i + 8 <= n; i += 8) {
        const p = <usize>i << 2;
        v128.store(o + p, vbin(op, v128.load(a + p), v128.load(b + p)));
        v128.store(o + p, vbin(op, v128.load(a + p, 16), v128.load(b + p, 16)), 16);
      }
      for (; i + 4 <= n; i += 4) v128.store(o + (<usize>i << 2), vbin(op, v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
    } else if (as == 1 && bs == 0) {
      const vb = v128.load32_splat(b);
      for (; i + 4 <= n; i += 4) v128.store(o + (<usize>i << 2), vbin(op, v128.load(a + (<usize>i << 2)), vb));
    } else if (as == 0 && bs == 1) {
      const va = v128.load32_splat(a);
      for (; i + 4 <= n; i += 4) v128.store(o + (<usize>i << 2), vbin(op, va, v128.load(b + (<usize>i << 2))));
    }
  }
  for (; i < n; i++) {
    store<f32>(o + (<usize>(i * os) << 2), sbin(op, load<f32>(a + (<usize>(i * as) << 2)), load<f32>(b + (<usize>(i * bs) << 2))));
  }
}

function binRow(op: i32, a: usize, as: i32, b: usize, bs: i32, o: usize, os: i32, n: i32): void {
  switch (op) {
    case 0: binRowT(0, a, as, b, bs, o, os, n); break;
    case 1: binRowT(1, a, as, b, bs, o, os, n); break;
    case 2: binRowT(2, a, as, b, bs, o, os, n); break;
    case 3: binRowT(3, a, as, b, bs, o, os, n); break;
    case 4: binRowT(4, a, as, b, bs, o, os, n); break;
    default: binRowT(5, a, as, b, bs, o, os, n); break;
  }
}

// ---- copy -----------------------------------------------------------------------------------------

function copyRow(s: usize, ss: i32, d: usize, ds: i32, n: i32, acc: bool): void {
  let i = 0;
  if (ss == 1 && ds == 1) {
    if (!acc) { memory.copy(d, s, <usize>n << 2); return; }
    for (; i + 4 <= n; i += 4) v128.store(d + (<usize>i << 2), f32x4.add(v128.load(d + (<usize>i << 2)), v128.load(s + (<usize>i << 2))));
    for (; i < n; i++) store<f32>(d + (<usize>i << 2), load<f32>(d + (<usize>i << 2)) + load<f32>(s + (<usize>i << 2)));
    return;
  }
  if (ss == 0 && ds == 1 && !acc) {
    const v = v128.load32_splat(s);
    for (; i + 4 <= n; i += 4) v128.store(d + (<usize>i << 2), v);
  }
  if (acc) for (; i < n; i++) { const q = d + (<usize>(i * ds) << 2); store<f32>(q, load<f32>(q) + load<f32>(s + (<usize>(i * ss) << 2))); }
  else for (; i < n; i++) store<f32>(d + (<usize>(i * ds) << 2), load<f32>(s + (<usize>(i * ss) << 2)));
}

// ---- the N-d walk ---------------------------------------------------------------------------------
// Loop state in the slot's scratch (i32): [0, 6) outer index digits, [8, 14) dims, [16, 22) / [24, 30) /
// [32, 38) strides of operands 0 / 1 / 2. Row offsets are carried from row to row (no division per row).

// @ts-ignore: decorator
@inline function st(base: usize, i: i32): i32 { return load<i32>(base + (<usize>i << 2)); }

/** Caches dims and strides as i32 and sets the digits of row r; returns nothing (offsets via rowOffset). */
function setup(job: usize, nd: i32, r: i32, base: usize): void {
  for (let d = 0; d < nd; d++) {
    store<i32>(base + (<usize>(8 + d) << 2), pi(job, 3 + d));
    store<i32>(base + (<usize>(16 + d) << 2), pi(job, 9 + d));
    store<i32>(base + (<usize>(24 + d) << 2), pi(job, 15 + d));
    store<i32>(base + (<usize>(32 + d) << 2), pi(job, 21 + d));
  }
  let q = r;
  for (let d = nd - 2; d >= 0; d--) {
    const n = st(base, 8 + d);
    store<i32>(base + (<usize>d << 2), q % n);
    q /= n;
  }
}

// @ts-ignore: decorator
@inline function rowOffset(base: usize, nd: i32, which: i32): i32 {
  let o = 0;
  for (let d = 0; d < nd - 1; d++) o += st(base, d) * st(base, 16 + 8 * which + d);
  return o;
}

function walk(job: usize, kind: i32, t: i32, slot: i32): void {
  const op = pi(job, 1), nd = pi(job, 2);
  const rows = pi(job, 30), pieces = pi(job, 31), tasks = pi(job, 32);
  const acc = pi(job, 33) != 0;
  const n = pi(job, 3 + nd - 1);
  const s0 = pi(job, 9 + nd - 1), s1 = pi(job, 15 + nd - 1), s2 = pi(job, 21 + nd - 1);
  const b0 = pu(job, 27), b1 = pu(job, 28), b2 = pu(job, 29);
  const units = <i64>rows * <i64>pieces;
  const u0 = <i32>(units * <i64>t / <i64>tasks), u1 = <i32>(units * <i64>(t + 1) / <i64>tasks);
  if (u0 >= u1) return;
  const base = IDX + <usize>slot * IDX_SLOT;
  let k = u0 % pieces;
  setup(job, nd, u0 / pieces, base);
  let o0 = rowOffset(base, nd, 0), o1 = rowOffset(base, nd, 1), o2 = rowOffset(base, nd, 2);
  for (let u = u0; u < u1; u++) {
    const j0 = pieces == 1 ? 0 : <i32>(<i64>n * <i64>k / <i64>pieces);
    const j1 = pieces == 1 ? n : <i32>(<i64>n * <i64>(k + 1) / <i64>pieces);
    const a0 = b0 + (<usize>(o0 + j0 * s0) << 2), a1 = b1 + (<usize>(o1 + j0 * s1) << 2), a2 = b2 + (<usize>(o2 + j0 * s2) << 2);
    if (kind == 0) unRow(op, a0, s0, a2, s2, j1 - j0);
    else if (kind == 1) binRow(op, a0, s0, a1, s1, a2, s2, j1 - j0);
    else copyRow(a0, s0, a2, s2, j1 - j0, acc);
    if (++k == pieces) {
      k = 0;
      // next row: carry through the outer digits, moving the three offsets with them
      for (let d = nd - 2; d >= 0; d--) {
        const p = base + (<usize>d << 2);
        const i = load<i32>(p) + 1;
        const q0 = st(base, 16 + d), q1 = st(base, 24 + d), q2 = st(base, 32 + d);
        if (i < st(base, 8 + d)) { store<i32>(p, i); o0 += q0; o1 += q1; o2 += q2; break; }
        store<i32>(p, 0);
        o0 -= q0 * (i - 1); o1 -= q1 * (i - 1); o2 -= q2 * (i - 1);
      }
    }
  }
}

export function unaryTask(job: usize, t: i32, slot: i32): void { walk(job, 0, t, slot); }
export function binaryTask(job: usize, t: i32, slot: i32): void { walk(job, 1, t, slot); }
export function copyTask(job: usize, t: i32, slot: i32): void { walk(job, 2, t, slot); }

// ---- sum ------------------------------------------------------------------------------------------
// Operand 0 is x, operand 2 the (zero-filled) output with stride 0 on the reduced dimensions.
// op 0 (the row is reduced, out stride 0 on it): out[o] = f32(out[o] + sum of the row in float64).
//   Tasks own groups of `33` consecutive rows (rows of one group may share outputs; groups never do).
// op 1 (the row is kept): out[o + j] += x[row + j] in float32, row after row; task t owns the columns
//   [t n / tasks, (t+1) n / tasks) of every row.

export function sumTask(job: usize, t: i32, slot: i32): void {
  const mode = pi(job, 1), nd = pi(job, 2), rows = pi(job, 30), tasks = pi(job, 32);
  const n = pi(job, 3 + nd - 1);
  const xs = pi(job, 9 + nd - 1), os = pi(job, 21 + nd - 1);
  const bx = pu(job, 27), bo = pu(job, 29);
  const base = IDX + <usize>slot * IDX_SLOT;
  let r0 = 0, r1 = rows, j0 = 0, j1 = n;
  if (mode == 0) {
    const g = pi(job, 33), groups = rows / g;
    r0 = <i32>(<i64>groups * <i64>t / <i64>tasks) * g;
    r1 = <i32>(<i64>groups * <i64>(t + 1) / <i64>tasks) * g;
  } else {
    j0 = <i32>(<i64>n * <i64>t / <i64>tasks);
    j1 = <i32>(<i64>n * <i64>(t + 1) / <i64>tasks);
  }
  if (r0 >= r1 || j0 >= j1) return;
  setup(job, nd, r0, base);
  let ox = rowOffset(base, nd, 0), oo = rowOffset(base, nd, 2);
  const m = j1 - j0;
  for (let r = r0; r < r1; r++) {
    const xp = bx + (<usize>(ox + j0 * xs) << 2), op = bo + (<usize>(oo + j0 * os) << 2);
    if (mode == 0) {
      let acc: f64 = <f64>load<f32>(op);
      let j = 0;
      if (xs == 1) {
        let v0 = f64x2.splat(0), v1 = f64x2.splat(0);
        for (; j + 4 <= m; j += 4) {
          const v = v128.load(xp + (<usize>j << 2));
          v0 = f64x2.add(v0, f64x2.promote_low_f32x4(v));
          v1 = f64x2.add(v1, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
        }
        v0 = f64x2.add(v0, v1);
        acc += f64x2.extract_lane(v0, 0) + f64x2.extract_lane(v0, 1);
      }
      for (; j < m; j++) acc += <f64>load<f32>(xp + (<usize>(j * xs) << 2));
      store<f32>(op, <f32>acc);
    } else {
      let j = 0;
      if (xs == 1 && os == 1) {
        for (; j + 4 <= m; j += 4) v128.store(op + (<usize>j << 2), f32x4.add(v128.load(op + (<usize>j << 2)), v128.load(xp + (<usize>j << 2))));
      }
      for (; j < m; j++) { const q = op + (<usize>(j * os) << 2); store<f32>(q, load<f32>(q) + load<f32>(xp + (<usize>(j * xs) << 2))); }
    }
    for (let d = nd - 2; d >= 0; d--) {
      const p = base + (<usize>d << 2);
      const i = load<i32>(p) + 1;
      const qx = st(base, 16 + d), qo = st(base, 32 + d);
      if (i < st(base, 8 + d)) { store<i32>(p, i); ox += qx; oo += qo; break; }
      store<i32>(p, 0);
      ox -= qx * (i - 1); oo -= qo * (i - 1);
    }
  }
}

// Float32 fast paths for the cpu backend's elementwise primitives (binary add/sub/mul/div, strided copy
// and copy-accumulate, sum reduction), in plain TypeScript.
//
// The reference (../kernels.ts) calls a closure per row through forEachRow with TypedArray-typed
// operands, so V8 sees every dtype at one site (polymorphic element access) and pays a call per row,
// which dominates for short rows (rotary embeddings: rows of 8; conv unfold: rows of 32). Here the
// operands are Float32Array only (monomorphic), the two innermost collapsed dimensions are walked as
// a 2-D tile inside one call, and the common stride patterns (dense, broadcast scalar) get their own
// loops. Results are bit-identical to the reference: the same operations in the same order.
import type { BinaryOp, View } from '../../backend.js';
import { collapse } from '../strided.js';
import { fastBinary } from './rowops.js';

const BIN: Partial<Record<BinaryOp, number>> = { add: 0, sub: 1, mul: 2, div: 3 };

/** Whether binaryF32 handles op. */
export const binaryF32Op = (op: BinaryOp): boolean => BIN[op] !== undefined;

function rowBin(op: number, A: Float32Array, a: number, as: number, B: Float32Array, b: number, bs: number, O: Float32Array, o: number, n: number): void {
  // long rows: wasm SIMD (same float32 results)
  if (n >= 1024 && fastBinary(op, A, a, as, B, b, bs, O, o, n)) return;
  if (as === 1 && bs === 1) {
    switch (op) {
      case 0: for (let i = 0; i < n; i++) O[o + i] = A[a + i]! + B[b + i]!; return;
      case 1: for (let i = 0; i < n; i++) O[o + i] = A[a + i]! - B[b + i]!; return;
      case 2: for (let i = 0; i < n; i++) O[o + i] = A[a + i]! * B[b + i]!; return;
      default: for (let i = 0; i < n; i++) O[o + i] = A[a + i]! / B[b + i]!; return;
    }
  }
  if (as === 1 && bs === 0) {
    const v = B[b]!;
    switch (op) {
      case 0: for (let i = 0; i < n; i++) O[o + i] = A[a + i]! + v; return;
      case 1: for (let i = 0; i < n; i++) O[o + i] = A[a + i]! - v; return;
      case 2: for (let i = 0; i < n; i++) O[o + i] = A[a + i]! * v; return;
      default: for (let i = 0; i < n; i++) O[o + i] = A[a + i]! / v; return;
    }
  }
  if (as === 0 && bs === 1) {
    const v = A[a]!;
    switch (op) {
      case 0: for (let i = 0; i < n; i++) O[o + i] = v + B[b + i]!; return;
      case 1: for (let i = 0; i < n; i++) O[o + i] = v - B[b + i]!; return;
      case 2: for (let i = 0; i < n; i++) O[o + i] = v * B[b + i]!; return;
      default: for (let i = 0; i < n; i++) O[o + i] = v / B[b + i]!; return;
    }
  }
  switch (op) {
    case 0: for (let i = 0; i < n; i++) O[o + i] = A[a + i * as]! + B[b + i * bs]!; return;
    case 1: for (let i = 0; i < n; i++) O[o + i] = A[a + i * as]! - B[b + i * bs]!; return;
    case 2: for (let i = 0; i < n; i++) O[o + i] = A[a + i * as]! * B[b + i * bs]!; return;
    default: for (let i = 0; i < n; i++) O[o + i] = A[a + i * as]! / B[b + i * bs]!; return;
  }
}

/** A tile of short rows (no call per row); the common inner-stride patterns get contiguous loops unrolled by 4. */
function tileBin(op: number, A: Float32Array, a: number, ra: number, sa: number, B: Float32Array, b: number, rb: number, sb: number,
  O: Float32Array, o: number, ro: number, m: number, n: number): void {
  const n4 = n & ~3;
  if (sa === 1 && sb === 1) {
    switch (op) {
      case 0: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = A[x]! + B[z]!; O[y + 1] = A[x + 1]! + B[z + 1]!; O[y + 2] = A[x + 2]! + B[z + 2]!; O[y + 3] = A[x + 3]! + B[z + 3]!; } for (; j < n; j++) O[o + j] = A[a + j]! + B[b + j]!; } return;
      case 1: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = A[x]! - B[z]!; O[y + 1] = A[x + 1]! - B[z + 1]!; O[y + 2] = A[x + 2]! - B[z + 2]!; O[y + 3] = A[x + 3]! - B[z + 3]!; } for (; j < n; j++) O[o + j] = A[a + j]! - B[b + j]!; } return;
      case 2: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = A[x]! * B[z]!; O[y + 1] = A[x + 1]! * B[z + 1]!; O[y + 2] = A[x + 2]! * B[z + 2]!; O[y + 3] = A[x + 3]! * B[z + 3]!; } for (; j < n; j++) O[o + j] = A[a + j]! * B[b + j]!; } return;
      default: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = A[x]! / B[z]!; O[y + 1] = A[x + 1]! / B[z + 1]!; O[y + 2] = A[x + 2]! / B[z + 2]!; O[y + 3] = A[x + 3]! / B[z + 3]!; } for (; j < n; j++) O[o + j] = A[a + j]! / B[b + j]!; } return;
    }
  }
  if (sa === 1 && sb === 0) {
    switch (op) {
      case 0: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { const v = B[b]!; let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = A[x]! + v; O[y + 1] = A[x + 1]! + v; O[y + 2] = A[x + 2]! + v; O[y + 3] = A[x + 3]! + v; } for (; j < n; j++) O[o + j] = A[a + j]! + v; } return;
      case 1: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { const v = B[b]!; let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = A[x]! - v; O[y + 1] = A[x + 1]! - v; O[y + 2] = A[x + 2]! - v; O[y + 3] = A[x + 3]! - v; } for (; j < n; j++) O[o + j] = A[a + j]! - v; } return;
      case 2: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { const v = B[b]!; let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = A[x]! * v; O[y + 1] = A[x + 1]! * v; O[y + 2] = A[x + 2]! * v; O[y + 3] = A[x + 3]! * v; } for (; j < n; j++) O[o + j] = A[a + j]! * v; } return;
      default: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { const v = B[b]!; let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = A[x]! / v; O[y + 1] = A[x + 1]! / v; O[y + 2] = A[x + 2]! / v; O[y + 3] = A[x + 3]! / v; } for (; j < n; j++) O[o + j] = A[a + j]! / v; } return;
    }
  }
  if (sa === 0 && sb === 1) {
    switch (op) {
      case 0: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { const v = A[a]!; let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = v + B[z]!; O[y + 1] = v + B[z + 1]!; O[y + 2] = v + B[z + 2]!; O[y + 3] = v + B[z + 3]!; } for (; j < n; j++) O[o + j] = v + B[b + j]!; } return;
      case 1: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { const v = A[a]!; let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = v - B[z]!; O[y + 1] = v - B[z + 1]!; O[y + 2] = v - B[z + 2]!; O[y + 3] = v - B[z + 3]!; } for (; j < n; j++) O[o + j] = v - B[b + j]!; } return;
      case 2: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { const v = A[a]!; let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = v * B[z]!; O[y + 1] = v * B[z + 1]!; O[y + 2] = v * B[z + 2]!; O[y + 3] = v * B[z + 3]!; } for (; j < n; j++) O[o + j] = v * B[b + j]!; } return;
      default: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) { const v = A[a]!; let j = 0; for (; j < n4; j += 4) { const x = a + j, z = b + j, y = o + j; O[y] = v / B[z]!; O[y + 1] = v / B[z + 1]!; O[y + 2] = v / B[z + 2]!; O[y + 3] = v / B[z + 3]!; } for (; j < n; j++) O[o + j] = v / B[b + j]!; } return;
    }
  }
  switch (op) {
    case 0: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) for (let j = 0; j < n; j++) O[o + j] = A[a + j * sa]! + B[b + j * sb]!; return;
    case 1: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) for (let j = 0; j < n; j++) O[o + j] = A[a + j * sa]! - B[b + j * sb]!; return;
    case 2: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) for (let j = 0; j < n; j++) O[o + j] = A[a + j * sa]! * B[b + j * sb]!; return;
    default: for (let i = 0; i < m; i++, a += ra, b += rb, o += ro) for (let j = 0; j < n; j++) O[o + j] = A[a + j * sa]! / B[b + j * sb]!; return;
  }
}

/** A 3-D tile (l x m x n) of a binary op: no call per row or per 2-D slice. */
function tile3Bin(op: number, A: Float32Array, a: number, la: number, ra: number, sa: number, B: Float32Array, b: number, lb: number, rb: number, sb: number,
  O: Float32Array, o: number, lo: number, ro: number, l: number, m: number, n: number): void {
  for (let k = 0; k < l; k++, a += la, b += lb, o += lo) {
    if (n >= 1024 || m === 1) {
      let ai = a, bi = b, oi = o;
      for (let i = 0; i < m; i++, ai += ra, bi += rb, oi += ro) rowBin(op, A, ai, sa, B, bi, sb, O, oi, n);
    } else {
      tileBin(op, A, a, ra, sa, B, b, rb, sb, O, o, ro, m, n);
    }
  }
}

/** A 3-D tile of a copy (or copy-accumulate). */
function tile3Copy(S: Float32Array, s: number, ls: number, rs: number, ss: number, D: Float32Array, d: number, ld: number, rd: number, sd: number,
  l: number, m: number, n: number, acc: boolean): void {
  for (let k = 0; k < l; k++, s += ls, d += ld) {
    let si = s, di = d;
    if (n >= 64 || m === 1) {
      for (let i = 0; i < m; i++, si += rs, di += rd) rowCopy(S, si, ss, D, di, sd, n, acc);
    } else if (ss === 1 && sd === 1) {
      const n4 = n & ~3;
      if (acc) {
        for (let i = 0; i < m; i++, si += rs, di += rd) {
          let j = 0;
          for (; j < n4; j += 4) { const x = si + j, y = di + j; D[y]! += S[x]!; D[y + 1]! += S[x + 1]!; D[y + 2]! += S[x + 2]!; D[y + 3]! += S[x + 3]!; }
          for (; j < n; j++) D[di + j]! += S[si + j]!;
        }
      } else {
        for (let i = 0; i < m; i++, si += rs, di += rd) {
          let j = 0;
          for (; j < n4; j += 4) { const x = si + j, y = di + j; D[y] = S[x]!; D[y + 1] = S[x + 1]!; D[y + 2] = S[x + 2]!; D[y + 3] = S[x + 3]!; }
          for (; j < n; j++) D[di + j] = S[si + j]!;
        }
      }
    } else if (acc) {
      for (let i = 0; i < m; i++, si += rs, di += rd) for (let j = 0; j < n; j++) D[di + j * sd]! += S[si + j * ss]!;
    } else {
      for (let i = 0; i < m; i++, si += rs, di += rd) for (let j = 0; j < n; j++) D[di + j * sd] = S[si + j * ss]!;
    }
  }
}

/**
 * Walks `dims` (collapsed) with one offset per operand, calling tile(offsets, rows, rowStrides, n,
 * innerStrides) once per 2-D tile of the two innermost dimensions.
 */
function forEachTile(dims: number[], st: number[][], offsets: number[],
  tile: (offs: number[], m: number, rs: number[], n: number, is: number[]) => void): void {
  const r = dims.length, k = st.length;
  if (dims.some((d) => d === 0)) return;
  if (r === 0) { tile(offsets, 1, offsets.map(() => 0), 1, offsets.map(() => 0)); return; }
  const n = dims[r - 1]!, is = st.map((s) => s[r - 1]!);
  const m = r >= 2 ? dims[r - 2]! : 1, rs = st.map((s) => (r >= 2 ? s[r - 2]! : 0));
  const od = Math.max(0, r - 2);
  const offs = offsets.slice();
  let outer = 1;
  for (let d = 0; d < od; d++) outer *= dims[d]!;
  const idx = new Array<number>(od).fill(0);
  while (outer-- > 0) {
    tile(offs, m, rs, n, is);
    for (let d = od - 1; d >= 0; d--) {
      idx[d]!++;
      for (let j = 0; j < k; j++) offs[j]! += st[j]![d]!;
      if (idx[d]! < dims[d]!) break;
      for (let j = 0; j < k; j++) offs[j]! -= st[j]![d]! * dims[d]!;
      idx[d] = 0;
    }
  }
}

/**
 * Like forEachTile with 3-D tiles (the three innermost collapsed dimensions): tile(offsets, l, planeStrides,
 * m, rowStrides, n, innerStrides). Short rows (rotary embeddings, head split/merge) then cost no call per row.
 */
function forEachTile3(dims: number[], st: number[][], offsets: number[],
  tile: (offs: number[], l: number, ls: number[], m: number, rs: number[], n: number, is: number[]) => void): void {
  const r = dims.length, k = st.length;
  if (dims.some((d) => d === 0)) return;
  const zero = offsets.map(() => 0);
  if (r === 0) { tile(offsets, 1, zero, 1, zero, 1, zero); return; }
  const n = dims[r - 1]!, is = st.map((s) => s[r - 1]!);
  const m = r >= 2 ? dims[r - 2]! : 1, rs = r >= 2 ? st.map((s) => s[r - 2]!) : zero;
  const l = r >= 3 ? dims[r - 3]! : 1, ls = r >= 3 ? st.map((s) => s[r - 3]!) : zero;
  const od = Math.max(0, r - 3);
  const offs = offsets.slice();
  let outer = 1;
  for (let d = 0; d < od; d++) outer *= dims[d]!;
  const idx = new Array<number>(od).fill(0);
  while (outer-- > 0) {
    tile(offs, l, ls, m, rs, n, is);
    for (let d = od - 1; d >= 0; d--) {
      idx[d]!++;
      for (let j = 0; j < k; j++) offs[j]! += st[j]![d]!;
      if (idx[d]! < dims[d]!) break;
      for (let j = 0; j < k; j++) offs[j]! -= st[j]![d]! * dims[d]!;
      idx[d] = 0;
    }
  }
}

/** out = a op b for float32 operands (already broadcast); false if not handled (then use the reference). */
export function binaryF32(op: BinaryOp, A: Float32Array, a: View, B: Float32Array, b: View, O: Float32Array, out: View): boolean {
  const code = BIN[op];
  if (code === undefined) return false;
  const { dims, st } = collapse(out.shape, [a.strides, b.strides, out.strides]);
  const r = dims.length;
  if (r > 0 && st[2]![r - 1] !== 1) return false;
  forEachTile3(dims, st, [a.offset, b.offset, out.offset], (p, l, ls, m, rs, n, is) =>
    tile3Bin(code, A, p[0]!, ls[0]!, rs[0]!, is[0]!, B, p[1]!, ls[1]!, rs[1]!, is[1]!, O, p[2]!, ls[2]!, rs[2]!, l, m, n));
  return true;
}

function rowCopy(S: Float32Array, s: number, ss: number, D: Float32Array, d: number, ds: number, n: number, acc: boolean): void {
  if (ss === 1 && ds === 1) {
    if (acc) for (let i = 0; i < n; i++) D[d + i]! += S[s + i]!;
    else if (n >= 64) D.set(S.subarray(s, s + n), d);
    else for (let i = 0; i < n; i++) D[d + i] = S[s + i]!;
    return;
  }
  if (acc) for (let i = 0; i < n; i++) D[d + i * ds]! += S[s + i * ss]!;
  else for (let i = 0; i < n; i++) D[d + i * ds] = S[s + i * ss]!;
}

/** dst (+)= src for float32 views. */
export function copyF32(S: Float32Array, src: View, D: Float32Array, dst: View, accumulate: boolean): void {
  const { dims, st } = collapse(src.shape, [src.strides, dst.strides]);
  forEachTile3(dims, st, [src.offset, dst.offset], (p, l, ls, m, rs, n, is) =>
    tile3Copy(S, p[0]!, ls[0]!, rs[0]!, is[0]!, D, p[1]!, ls[1]!, rs[1]!, is[1]!, l, m, n, accumulate));
}

/** Sum of x over axes into a dense float32 out (shape of x with the axes set to 1), in the reference's order. */
export function sumF32(X: Float32Array, x: View, axes: readonly number[], O: Float32Array, out: View): void {
  const os: number[] = new Array(out.shape.length);
  let s = 1;
  for (let d = out.shape.length - 1; d >= 0; d--) { os[d] = axes.includes(d) ? 0 : s; s *= out.shape[d]!; }
  O.fill(0, out.offset, out.offset + s);
  const { dims, st } = collapse(x.shape, [x.strides, os]);
  forEachTile(dims, st, [x.offset, out.offset], (p, m, rs, n, is) => {
    let xo = p[0]!, oo = p[1]!;
    const rx = rs[0]!, ro = rs[1]!, sx = is[0]!, so = is[1]!;
    if (ro === 0 && so === 1 && sx === 1 && m > 1) {
      // Column sums (a bias gradient): blocks of 8 rows per output element held in a register; each add
      // is rounded to float32 exactly as the reference's O[j] += x does.
      const fr = Math.fround;
      for (let i0 = 0; i0 < m; i0 += 8) {
        const ie = Math.min(m, i0 + 8), x0 = xo + i0 * rx;
        for (let j = 0; j < n; j++) {
          let acc = O[oo + j]!;
          for (let i = i0, q = x0 + j; i < ie; i++, q += rx) acc = fr(acc + X[q]!);
          O[oo + j] = acc;
        }
      }
      return;
    }
    for (let i = 0; i < m; i++, xo += rx, oo += ro) {
      if (so === 0) {
        let acc = O[oo]!;
        if (sx === 1) for (let j = 0; j < n; j++) acc += X[xo + j]!;
        else for (let j = 0; j < n; j++) acc += X[xo + j * sx]!;
        O[oo] = acc;
      } else if (sx === 1 && so === 1) {
        for (let j = 0; j < n; j++) O[oo + j]! += X[xo + j]!;
      } else {
        for (let j = 0; j < n; j++) O[oo + j * so]! += X[xo + j * sx]!;
      }
    }
  });
}

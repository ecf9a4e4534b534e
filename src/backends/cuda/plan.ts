// Pure layout planning for the cuda backend, kept free of the addon so it is tested on any machine:
// coalescing strided iteration spaces for the elementwise kernels and choosing how they walk them
// (planElementwise), and mapping a batched row-major matmul over arbitrary strides onto one
// cublasGemmStridedBatchedEx call (column-major).

export const MAX_DIMS = 8;

export interface Layout {
  shape: readonly number[];
  strides: readonly number[];
  offset: number;
}

/**
 * Drop size-1 dims and merge neighbours that are contiguous in every operand, so a dense tensor
 * becomes one dim and a broadcast over rows becomes two. The row-major order of elements is kept
 * (random streams and argmax indices depend on it).
 */
export function coalesce(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d]!;
    if (n === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStrides[k]![last] === s[d]! * n)) {
      outShape[last] = outShape[last]! * n;
      strides.forEach((s, k) => (outStrides[k]![last] = s[d]!));
      continue;
    }
    outShape.push(n);
    strides.forEach((s, k) => outStrides[k]!.push(s[d]!));
  }
  return { shape: outShape, strides: outStrides };
}

/** How an elementwise kernel walks its operands (LavPath in kernels/cuda/lav.h, kernels in map.cuh). */
export const PATH_VEC = 0, PATH_STRIDED32 = 1, PATH_GENERIC = 2;
export type ElementwisePath = typeof PATH_VEC | typeof PATH_STRIDED32 | typeof PATH_GENERIC;

/** One operand of an elementwise launch: its strides over the iteration shape, element offset, and where
 *  its buffer starts (a device address) with the element size, for the alignment of vector accesses. */
export interface Operand {
  strides: readonly number[];
  offset: number;
  ptr: number;
  bytes: number;
}

export interface ElementwisePlan {
  path: ElementwisePath;
  shape: number[];
  strides: number[][];
}

const INT32_MAX = 0x7fffffff;

/**
 * Coalesce, then pick the path: VEC when every operand is contiguous over the whole range and starts on
 * a 16-byte boundary (128-bit loads); STRIDED32 when the element count and every operand's reach (the
 * largest and smallest offset from its start) fit in int32; GENERIC otherwise. The addon takes VEC or
 * STRIDED32 only for dtypes with specialised kernels (float32/bfloat16/float16) and falls back itself.
 */
export function planElementwise(shape: readonly number[], operands: readonly Operand[]): ElementwisePlan {
  const c = coalesce(shape, operands.map((o) => o.strides));
  const n = c.shape.reduce((a, b) => a * b, 1);
  const dense = c.shape.length === 0 || (c.shape.length === 1 && c.strides.every((s) => s[0] === 1));
  const aligned = operands.every((o) => (o.ptr + o.offset * o.bytes) % 16 === 0);
  if (dense && aligned) return { path: PATH_VEC, ...c };
  const fits = n <= INT32_MAX && c.strides.every((st) => {
    let hi = 0, lo = 0;
    st.forEach((s, d) => { const r = (c.shape[d]! - 1) * s; if (r > 0) hi += r; else lo += r; });
    return hi <= INT32_MAX && lo >= -INT32_MAX;
  });
  return { path: fits ? PATH_STRIDED32 : PATH_GENERIC, ...c };
}

/** The op code binaryScalar sends for `s op x` (scalarFirst): reversed forms, or the mirrored comparison. */
export function scalarFirstOp(op: string): string {
  const mirror: Record<string, string> = { sub: 'rsub', div: 'rdiv', pow: 'rpow', lt: 'gt', le: 'ge', gt: 'lt', ge: 'le' };
  return mirror[op] ?? op;
}

/** How a logical R x C matrix with strides (sr, sc) is handed to cuBLAS as the transpose X^T = op(Y), Y column-major. */
export function transposedOperand(R: number, C: number, sr: number, sc: number): { trans: 0 | 1; ld: number } | null {
  // row-major (unit column stride): X^T is column-major C x R with ld = row stride
  const sr1 = R === 1 ? Math.max(1, C) : sr, sc1 = C === 1 ? 1 : sc;
  if (sc1 === 1 && sr1 >= Math.max(1, C)) return { trans: 0, ld: sr1 };
  // column-major (unit row stride): X is column-major R x C with ld = column stride, so X^T = op_T(X)
  const sr2 = R === 1 ? 1 : sr, sc2 = C === 1 ? Math.max(1, R) : sc;
  if (sr2 === 1 && sc2 >= Math.max(1, R)) return { trans: 1, ld: sc2 };
  return null;
}

export interface GemmPlan {
  transa: 0 | 1; transb: 0 | 1;
  m: number; n: number; k: number;
  /** cuBLAS operand A is our B, operand B is our A (C^T = B^T A^T). Offsets in elements. */
  aOffset: number; lda: number; strideA: number;
  bOffset: number; ldb: number; strideB: number;
  ldc: number; strideC: number;
  batch: number;
}

const INT_MAX = 0x7fffffff;

/**
 * out[p] = a[p] @ b[p] for a [B, M, K], b [B, K, N] (any non-negative strides, 0 for a broadcast batch),
 * out [B, M, N] contiguous. Returns null for an operand that must first be made contiguous ('a' or 'b').
 */
export function planGemm(a: Layout, b: Layout, outOffset: number): GemmPlan | 'a' | 'b' {
  let [batch, M, K] = a.shape as [number, number, number];
  const N = b.shape[2]!;
  let [as0, as1, as2] = a.strides as [number, number, number];
  const [bs0, bs1, bs2] = b.strides as [number, number, number];
  if ([as0, as1, as2].some((s) => s < 0)) return 'a';
  if ([bs0, bs1, bs2].some((s) => s < 0)) return 'b';
  // one shared B (a Linear layer's weight) and evenly spaced row-major A rows: a single [B*M, K] @ [K, N]
  if (batch > 1 && bs0 === 0) {
    const rowStride = M === 1 ? as0 : as1;
    if ((K === 1 || as2 === 1) && as0 === M * rowStride && batch * M <= INT_MAX) {
      M = batch * M;
      as1 = rowStride;
      as0 = 0;
      batch = 1;
    }
  }
  const opB = transposedOperand(K, N, bs1, bs2);
  if (!opB) return 'b';
  const opA = transposedOperand(M, K, as1, as2);
  if (!opA) return 'a';
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || batch > INT_MAX || opA.ld > INT_MAX || opB.ld > INT_MAX) {
    throw new Error(`cuda matmul: [${batch}, ${M}, ${K}] x [${K}, ${N}] exceeds cuBLAS's 32-bit sizes`);
  }
  return {
    transa: opB.trans, transb: opA.trans,
    m: N, n: M, k: K,
    aOffset: b.offset, lda: opB.ld, strideA: batch > 1 ? bs0 : 0,
    bOffset: a.offset, ldb: opA.ld, strideB: batch > 1 ? as0 : 0,
    ldc: Math.max(1, N), strideC: M * N,
    batch,
  };
}

/** Reference execution of a plan over flat arrays (column-major BLAS semantics): for tests. */
export function runPlanReference(p: GemmPlan, A: ArrayLike<number>, B: ArrayLike<number>, C: Float64Array, cOffset: number): void {
  // op(X)(i, j) for a column-major X with leading dimension ld
  const at = (X: ArrayLike<number>, off: number, ld: number, trans: 0 | 1, i: number, j: number) => (trans ? X[off + j + i * ld]! : X[off + i + j * ld]!);
  for (let q = 0; q < p.batch; q++) {
    for (let j = 0; j < p.n; j++) {
      for (let i = 0; i < p.m; i++) {
        let s = 0;
        for (let l = 0; l < p.k; l++) s += at(A, p.aOffset + q * p.strideA, p.lda, p.transa, i, l) * at(B, p.bOffset + q * p.strideB, p.ldb, p.transb, l, j);
        C[cOffset + q * p.strideC + i + j * p.ldc] = s;
      }
    }
  }
}

// Matmul planning for the webgpu backend: which kernel (tiled with workgroup memory, or direct), which
// tile, and how each operand is loaded (vec4 along its contiguous dim, or scalar), chosen per adapter
// limits, shape and layout; and the WGSL of that plan (kernels/wgsl/matmul*.wgsl). Pure string work.
import type { View } from '../backend.js';
import type { DeviceInfo } from './protocol.js';
import type { WType } from './codegen.js';
import { fill, storeFrom } from './codegen.js';
import { WGSL } from './wgsl.generated.js';

/** A tiled kernel's shape: a BM x BN output tile per workgroup, TM x TN outputs per invocation, K steps of BK. */
export interface Tile { bm: number; bn: number; bk: number; tm: number; tn: number }

/** How an operand is loaded: quads along K ('k') or along M / N ('mn'); vec4 loads or four scalar loads. */
export interface Load { along: 'k' | 'mn'; vec: boolean }

export type MatmulPlan =
  | { kind: 'direct' }
  /** Direct with vec4 loads of both operands (along `a` / `b`), K in steps of 4 (a multiple of 4 when a load is along K). */
  | { kind: 'direct4'; a: 'k' | 'mn'; b: 'k' | 'mn'; vecOut: boolean }
  | { kind: 'tiled'; tile: Tile; a: Load; b: Load; vecOut: boolean; f16Math: boolean };

/** The tiles the planner picks from (and that a forced config may name), largest first. */
export const TILES: Record<string, Tile> = {
  large: { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 },
  wide: { bm: 64, bn: 128, bk: 16, tm: 4, tn: 8 },
  medium: { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 },
  small: { bm: 32, bn: 32, bk: 16, tm: 4, tn: 4 },
};

export function parseTile(s: string): Tile {
  if (TILES[s]) return TILES[s]!;
  const m = /^(\d+)x(\d+)x(\d+)\/(\d+)x(\d+)$/.exec(s);
  if (!m) throw new Error(`webgpu matmul: tile '${s}' is not one of ${Object.keys(TILES).join(', ')} or BMxBNxBK/TMxTN (e.g. 128x128x8/8x8)`);
  const [bm, bn, bk, tm, tn] = m.slice(1).map(Number) as [number, number, number, number, number];
  return { bm, bn, bk, tm, tn };
}

/** Why a tile cannot run on this device, or null. */
export function tileProblem(t: Tile, info: DeviceInfo, bytesPerElement: number): string | null {
  const wx = t.bn / t.tn, wy = t.bm / t.tm, nt = wx * wy;
  if ([t.bm, t.bn, t.bk, t.tm, t.tn].some((v) => !Number.isInteger(v) || v <= 0)) return 'sizes must be positive integers';
  if (t.tm % 4 || t.tn % 4 || t.bk % 4) return 'TM, TN and BK must be multiples of 4';
  if (!Number.isInteger(wx) || !Number.isInteger(wy)) return 'TM must divide BM and TN divide BN';
  if ((t.bm * t.bk) % (4 * nt) || (t.bn * t.bk) % (4 * nt)) return `each of the ${nt} invocations must load whole quads of both tiles`;
  if (nt > info.maxComputeInvocationsPerWorkgroup) return `${nt} invocations exceed maxComputeInvocationsPerWorkgroup ${info.maxComputeInvocationsPerWorkgroup}`;
  const shared = (t.bm + t.bn) * t.bk * bytesPerElement;
  if (shared > info.maxComputeWorkgroupStorageSize) return `${shared} bytes of workgroup memory exceed maxComputeWorkgroupStorageSize ${info.maxComputeWorkgroupStorageSize}`;
  return null;
}

const aligned = (...xs: number[]) => xs.every((x) => x % 4 === 0);

/** Operand [rows, K] (A) or [K, cols] (B, passed transposed): vec4 quads along the unit-stride dim. */
function loadFor(offset: number, sBatch: number, sRows: number, sK: number, rows: number, K: number, batch: number): Load {
  const bOk = batch === 1 || sBatch % 4 === 0;
  if (sK === 1 && aligned(offset, sRows, K) && bOk) return { along: 'k', vec: true };
  if (sRows === 1 && aligned(offset, sK, rows) && bOk) return { along: 'mn', vec: true };
  return { along: Math.abs(sK) <= Math.abs(sRows) ? 'k' : 'mn', vec: false };
}

export interface MatmulShape { batch: number; M: number; K: number; N: number; a: View; b: View; outOffset: number }

/**
 * The plan for one matmul. `force` (LAVENDER_WEBGPU_MATMUL or backend.setMatmulConfig): 'direct', a
 * tile name or BMxBNxBK/TMxTN; otherwise: direct on software adapters and for small products, else the
 * largest tile that still gives the GPU a few waves of workgroups.
 */
export function planMatmul(s: MatmulShape, info: DeviceInfo, types: { a: WType; b: WType; out: WType }, force?: string): MatmulPlan {
  const f16Math = types.a === 'f16' && types.b === 'f16';
  const bpe = f16Math ? 2 : 4;
  let tile: Tile | null = null;
  const la = loadFor(s.a.offset, s.a.strides[0]!, s.a.strides[1]!, s.a.strides[2]!, s.M, s.K, s.batch);
  const lb = loadFor(s.b.offset, s.b.strides[0]!, s.b.strides[2]!, s.b.strides[1]!, s.N, s.K, s.batch);
  const vecOut = aligned(s.outOffset, s.N, s.M * s.N);
  // direct4 takes both operands as vec4 quads (loadFor has checked the alignment, and K % 4 for quads along K)
  const direct = (): MatmulPlan => (la.vec && lb.vec ? { kind: 'direct4', a: la.along, b: lb.along, vecOut } : { kind: 'direct' });
  if (force && force !== 'auto') {
    if (force === 'direct') return { kind: 'direct' };
    if (force === 'direct4') {
      const p = direct();
      if (p.kind !== 'direct4') throw new Error(`webgpu matmul: direct4 needs vec4 loads of both operands: a unit-stride dim that is a multiple of 4, other strides and the offset aligned (got [${s.M}, ${s.K}] x [${s.K}, ${s.N}] with A strides [${s.a.strides}], B strides [${s.b.strides}])`);
      return p;
    }
    tile = parseTile(force);
    const why = tileProblem(tile, info, bpe);
    if (why) throw new Error(`webgpu matmul: tile ${force} cannot run on this device: ${why}`);
  } else {
    const work = s.batch * s.M * s.N * s.K;
    if (info.software || work < 1 << 18 || s.M * s.N * s.batch < 4096) return direct();
    const groups = (t: Tile) => Math.ceil(s.M / t.bm) * Math.ceil(s.N / t.bn) * s.batch;
    for (const name of ['large', 'wide', 'medium', 'small']) {
      const t = TILES[name]!;
      if (tileProblem(t, info, bpe)) continue;
      if (name !== 'small' && groups(t) < 256) continue; // too few workgroups to fill a big GPU
      tile = t;
      break;
    }
    if (!tile) return direct();
  }
  return { kind: 'tiled', tile, a: la, b: lb, vecOut, f16Math };
}

export function planKey(p: MatmulPlan, t: { a: WType; b: WType; out: WType }): string {
  const types = `${t.a},${t.b}>${t.out}`;
  if (p.kind === 'direct') return `matmul:direct:${types}`;
  if (p.kind === 'direct4') return `matmul:direct4:${p.a}:${p.b}:${p.vecOut ? 4 : 1}:${types}`;
  const { bm, bn, bk, tm, tn } = p.tile;
  return `matmul:${bm}x${bn}x${bk}/${tm}x${tn}:${p.a.along}${p.a.vec ? 4 : 1}:${p.b.along}${p.b.vec ? 4 : 1}:${p.vecOut ? 4 : 1}:${p.f16Math ? 'h' : 's'}:${types}`;
}

/** Loader functions of one operand: load_x fills registers with this invocation's quads of a K step, store_x puts them in workgroup memory. */
function loaders(x: 'a' | 'b', l: Load, tile: Tile, S: string): string {
  const rows = x === 'a' ? 'BM' : 'BN', slots = x === 'a' ? 'LA' : 'LB', arr = x === 'a' ? 'A' : 'B', sh = x === 'a' ? 'ta' : 'tb';
  const r0 = x === 'a' ? 'c.m0' : 'c.n0', rLim = x === 'a' ? 'c.M' : 'c.N', base = x === 'a' ? 'c.a' : 'c.b';
  const sRow = x === 'a' ? 'c.as1' : 'c.bs2', sK = x === 'a' ? 'c.as2' : 'c.bs1';
  void tile;
  const sig = `(c: Tile, k0: u32, t: u32, r: ptr<function, array<vec4<${S}>, ${slots}>>)`;
  let body: string, store: string;
  if (l.along === 'mn') {
    // quad q: K row q / (rows/4), quad of rows q % (rows/4); lands at sh[q] as is
    const read = l.vec
      ? `if (row < ${rLim}) { v = vec4<${S}>(${arr}[u32(at) / 4u]); }`
      : `for (var i = 0u; i < 4u; i++) { if (row + i < ${rLim}) { v[i] = ${S}(${arr}[u32(at + i32(i) * ${sRow})]); } }`;
    body = `let k = k0 + q / (${rows} / 4u);
    let row = ${r0} + (q % (${rows} / 4u)) * 4u;
    var v = vec4<${S}>(0);
    if (k < c.K) {
      let at = ${base} + i32(row) * ${sRow} + i32(k) * ${sK};
      ${read}
    }`;
    store = `${sh}[q] = (*r)[e];`;
  } else {
    // quad q: row q / (BK/4), four K values from (q % (BK/4)) * 4; scattered into the [k][row] layout
    const read = l.vec
      ? `if (k < c.K) { v = vec4<${S}>(${arr}[u32(at) / 4u]); }`
      : `for (var i = 0u; i < 4u; i++) { if (k + i < c.K) { v[i] = ${S}(${arr}[u32(at + i32(i) * ${sK})]); } }`;
    body = `let row = ${r0} + q / (BK / 4u);
    let k = k0 + (q % (BK / 4u)) * 4u;
    var v = vec4<${S}>(0);
    if (row < ${rLim}) {
      let at = ${base} + i32(row) * ${sRow} + i32(k) * ${sK};
      ${read}
    }`;
    store = `let row = q / (BK / 4u);
    let kq = (q % (BK / 4u)) * 4u;
    for (var i = 0u; i < 4u; i++) { ${sh}[(kq + i) * (${rows} / 4u) + row / 4u][row % 4u] = (*r)[e][i]; }`;
  }
  return `fn load_${x}${sig} {
  for (var e = 0u; e < ${slots}; e++) {
    let q = t + e * NT;
    ${body}
    (*r)[e] = v;
  }
}
fn store_${x}(t: u32, r: ptr<function, array<vec4<${S}>, ${slots}>>) {
  for (var e = 0u; e < ${slots}; e++) {
    let q = t + e * NT;
    ${store}
  }
}`;
}

export function matmulWgsl(p: MatmulPlan, t: { a: WType; b: WType; out: WType }): string {
  if (p.kind === 'direct') return fill(WGSL.matmul_direct!, { OUT_T: t.out, A_T: t.a, B_T: t.b, STORE: storeFrom('acc[r][c]', t.out) });
  if (p.kind === 'direct4') return direct4Wgsl(p, t);
  const { bm, bn, bk, tm, tn } = p.tile;
  const wx = bn / tn, wy = bm / tm, nt = wx * wy;
  const S = p.f16Math ? 'f16' : 'f32';
  const vt = (w: WType, vec: boolean) => (vec ? `vec4<${w}>` : w);
  const outConv = t.out === 'f16' ? 'to_f16v(v)' : t.out === 'f32' ? 'v' : `vec4<${t.out}>(v)`;
  const store = p.vecOut
    ? `if (n < c.N) { out[u32(o + i32(m) * mi(13u) + i32(n)) / 4u] = ${outConv}; }`
    : `for (var i = 0u; i < 4u; i++) { if (n + i < c.N) { out[u32(o + i32(m) * mi(13u) + i32(n + i) * mi(14u))] = ${storeFrom('v[i]', t.out)}; } }`;
  const acc = p.f16Math ? 'part' : 'acc';
  const n4 = (tm * tn) / 4;
  return fill(WGSL.matmul!, {
    OUT_ST: vt(t.out, p.vecOut), A_ST: vt(t.a, p.a.vec), B_ST: vt(t.b, p.b.vec), S,
    BMu: `${bm}u`, BNu: `${bn}u`, BKu: `${bk}u`, WXu: `${wx}u`, WYu: `${wy}u`, NTu: `${nt}u`, RMu: `${tm / 4}u`, RNu: `${tn / 4}u`,
    LAu: `${(bm * bk) / 4 / nt}u`, LBu: `${(bn * bk) / 4 / nt}u`, TA_LENu: `${(bk * bm) / 4}u`, TB_LENu: `${(bk * bn) / 4}u`, ACC_LENu: `${n4}u`,
    LOADERS: `${loaders('a', p.a, p.tile, S)}\n${loaders('b', p.b, p.tile, S)}`,
    ACC: acc,
    PART_DECL: p.f16Math ? `var part: array<vec4<f16>, ${n4}u>;` : '',
    FLUSH: p.f16Math ? `for (var i = 0u; i < ${n4}u; i++) { acc[i] += vec4<f32>(part[i]); part[i] = vec4<f16>(0); }` : '',
    STORE: store,
  });
}

/**
 * direct4's loads: `a` is mat4x4 with column j = A[rows m0..m0+3][k + j], `b` has column c = B[k..k+3][n0 + c],
 * so acc += a * b. A quad along M/N past the end of the matrix (M or N not reached) reads zeros.
 */
function direct4Wgsl(p: Extract<MatmulPlan, { kind: 'direct4' }>, t: { a: WType; b: WType; out: WType }): string {
  const v = (w: WType, x: string) => (w === 'f32' ? x : `vec4<f32>(${x})`);
  const quad = (arr: 'A' | 'B', w: WType, at: string, ok: string) => `select(vec4<f32>(0.0), ${v(w, `${arr}[u32(${at}) / 4u]`)}, ${ok})`;
  // A along K: row r's quad of k values; along M: the k-th column's quad of rows
  const loadA = p.a === 'k'
    ? `let a = transpose(mat4x4<f32>(${[0, 1, 2, 3].map((r) => quad('A', t.a, `aBase + i32(m0 + ${r}u) * as1 + i32(k)`, `m0 + ${r}u < M`)).join(', ')}));`
    : `let a = mat4x4<f32>(${[0, 1, 2, 3].map((j) => quad('A', t.a, `aBase + i32(k + ${j}u) * as2 + i32(m0)`, `k + ${j}u < K`)).join(', ')});`;
  // B along K: column c's quad of k values; along N: the k-th row's quad of columns
  const loadB = p.b === 'k'
    ? `let b = mat4x4<f32>(${[0, 1, 2, 3].map((c) => quad('B', t.b, `bBase + i32(n0 + ${c}u) * bs2 + i32(k)`, `n0 + ${c}u < N`)).join(', ')});`
    : `let b = transpose(mat4x4<f32>(${[0, 1, 2, 3].map((j) => quad('B', t.b, `bBase + i32(k + ${j}u) * bs1 + i32(n0)`, `k + ${j}u < K`)).join(', ')}));`;
  const conv = t.out === 'f16' ? 'to_f16v(rows[r])' : 'rows[r]';
  const store = p.vecOut
    ? `out[u32(o + i32(m) * mi(13u) + i32(n0)) / 4u] = ${conv};`
    : `for (var c = 0u; c < 4u; c++) { if (n0 + c < N) { out[u32(o + i32(m) * mi(13u) + i32(n0 + c) * mi(14u))] = ${storeFrom('rows[r][c]', t.out)}; } }`;
  return fill(WGSL.matmul_direct4!, { OUT_ST: p.vecOut ? `vec4<${t.out}>` : t.out, A_T: t.a, B_T: t.b, LOAD_A: loadA, LOAD_B: loadB, STORE: store });
}

/** Workgroups of a plan for [batch] x M x N (batch goes in z, split by the caller at the device limit). */
export function matmulGroups(p: MatmulPlan, M: number, N: number, batch: number): [number, number, number] {
  if (p.kind === 'direct' || p.kind === 'direct4') return [Math.ceil(N / 32), Math.ceil(M / 32), batch];
  return [Math.ceil(N / p.tile.bn), Math.ceil(M / p.tile.bm), batch];
}

// WGSL generation: the templates of kernels/wgsl (bundled into wgsl.generated.ts) specialised per op
// and dtype, plus the metadata layouts the templates expect. Pure string work, no GPU.
import type { BinaryOp, ReduceOp, UnaryOp, View } from '../backend.js';
import type { DType } from '../../tensor/dtype.js';
import { WGSL } from './wgsl.generated.js';

export type WType = 'f32' | 'f16' | 'i32' | 'u32';

/**
 * How a dtype is stored on webgpu: float32 as f32, float16 as f16 (devices with shader-f16; the backend
 * checks), int32 and int64 as i32, bool as u32 (0/1).
 */
export function wtype(d: DType): WType {
  switch (d) {
    case 'float32': return 'f32';
    case 'float16': return 'f16';
    case 'int32': case 'int64': return 'i32';
    case 'bool': return 'u32';
    default: throw new Error(`webgpu: dtype ${d} is not supported on the webgpu backend (float32, float16 with shader-f16, int32, int64 as int32, bool); WGSL has no ${d === 'float64' ? 'float64' : 'bfloat16'}`);
  }
}

/** Bytes per element of a storage type. */
export const wbytes = (t: WType): number => (t === 'f16' ? 2 : 4);

export const loadF32 = (expr: string, t: WType): string => (t === 'f32' ? expr : `f32(${expr})`);
export function storeFrom(v: string, t: WType): string {
  if (t === 'f32') return v;
  if (t === 'f16') return `to_f16(${v})`;
  if (t === 'i32') return `i32(${v})`;
  return `select(0u, 1u, ${v} != 0.0)`;
}

export const UNARY: Record<UnaryOp, string> = {
  neg: '-a', abs: 'abs(a)', exp: 'exp(a)', log: 'log(a)', sqrt: 'sqrt(a)', rsqrt: '1.0 / sqrt(a)', sin: 'sin(a)', cos: 'cos(a)',
  tanh: 'tanh_(a)', sigmoid: 'sigmoid_(a)', silu: 'a * sigmoid_(a)', gelu: 'gelu_(a)', gelu_tanh: 'gelu_tanh_(a)', relu: 'max(a, 0.0)',
  erf: 'erf_(a)', erfinv: 'erfinv_(a)', sign: 'sign(a)', floor: 'floor(a)', ceil: 'ceil(a)', round: 'round(a)', reciprocal: '1.0 / a',
  square: 'a * a', not: 'select(0.0, 1.0, a == 0.0)',
};

export const BINARY: Record<BinaryOp, string> = {
  add: 'a + b', sub: 'a - b', mul: 'a * b', div: 'a / b', pow: 'pow_(a, b)', maximum: 'max(a, b)', minimum: 'min(a, b)',
  eq: 'select(0.0, 1.0, a == b)', ne: 'select(0.0, 1.0, a != b)', lt: 'select(0.0, 1.0, a < b)', le: 'select(0.0, 1.0, a <= b)',
  gt: 'select(0.0, 1.0, a > b)', ge: 'select(0.0, 1.0, a >= b)', and: 'select(0.0, 1.0, a != 0.0 && b != 0.0)', or: 'select(0.0, 1.0, a != 0.0 || b != 0.0)',
};

/** Ops whose expression is also valid, and exact, in i32 (used when every operand is an integer). */
export const INT_EXACT = new Set(['neg', 'abs', 'sign', 'square', 'add', 'sub', 'mul', 'maximum', 'minimum']);

/** Specialise a template: placeholders, then the common prelude (and the f16 helpers when f16 is used). */
export function fill(template: string, subs: Record<string, string>): string {
  // longest names first, so $NIN is not taken for a prefix of another placeholder
  const keys = Object.keys(subs).sort((a, b) => b.length - a.length);
  let s = template;
  for (const k of keys) s = s.split(`$${k}`).join(subs[k]!);
  if (/\bf16\b/.test(s.replace(/\/\/.*$/gm, ''))) return `enable f16;\n${WGSL.common}\n${WGSL.half}\n${s}`; // comments may name f16
  return `${WGSL.common}\n${s}`;
}

export interface ElementwiseSpec {
  ins: WType[];
  out: WType;
  /** The stored expression over a, b, c (already loaded). */
  expr: string;
  /** 'f32': loads convert to f32 and the result is stored through storeFrom; 'raw': no conversions. */
  mode: 'f32' | 'raw';
  accumulate?: boolean;
  /** Number of u32 scalars appended to the metadata (available as meta[scalars + k]). */
}

/** Which elementwise kernel a dispatch uses: flat (rank <= 1), grid (rank <= 4, padded to 4), strided. */
export type EwKind = 'flat' | 'grid' | 'strided';

export function elementwiseWgsl(s: ElementwiseSpec, kind: EwKind = 'strided'): string {
  const flat = kind === 'flat';
  const names = ['a', 'b', 'c'];
  const bindings = s.ins.map((t, k) => `@group(0) @binding(${k + 2}) var<storage, read> in${k}: array<${t}>;`).join('\n');
  const loads = s.ins.map((t, k) => {
    const raw = flat ? `in${k}[at(${k}u, i)]` : `in${k}[u32(offs[${k}])]`;
    return `let ${names[k]} = ${s.mode === 'f32' ? loadF32(raw, t) : raw};`;
  }).join('\n  ');
  let store: string;
  if (s.mode === 'raw') store = `out[o] = ${s.expr};`;
  else if (s.accumulate) store = `out[o] = ${storeFrom(`(${loadF32('out[o]', s.out)} + (${s.expr}))`, s.out)};`;
  else store = `out[o] = ${storeFrom(`(${s.expr})`, s.out)};`;
  return fill(flat ? WGSL.elementwise_flat! : kind === 'grid' ? WGSL.elementwise_grid! : WGSL.elementwise!, { OUT_T: s.out, BINDINGS: bindings, LOADS: loads, STORE: store, NOPS: `${s.ins.length + 1}u`, NIN: `${s.ins.length}u` });
}

const REDUCE_INIT: Record<ReduceOp, string> = { sum: '0.0', prod: '1.0', max: '-inf_()', argmax: '-inf_()', min: 'inf_()', argmin: 'inf_()' };

export function reduceWgsl(op: ReduceOp, x: WType, out: WType, serial = false): string {
  const pick = (cmp: string) => `if (b.i != 0xffffffffu && (a.i == 0xffffffffu || b.v ${cmp} a.v || (b.v == a.v && b.i < a.i))) { return b; }\n  return a;`;
  const merge = op === 'sum' ? 'return P(a.v + b.v, min(a.i, b.i));'
    : op === 'prod' ? 'return P(a.v * b.v, min(a.i, b.i));'
    : pick(op === 'max' || op === 'argmax' ? '>' : '<');
  const store = op === 'argmax' || op === 'argmin' ? `${out}(select(r.i, 0u, r.i == 0xffffffffu))` : storeFrom('r.v', out);
  return fill(serial ? WGSL.reduce_serial! : WGSL.reduce!, { OUT_T: out, X_T: x, MERGE: merge, INIT: REDUCE_INIT[op], STORE: store });
}

export const gatherWgsl = (x: WType): string => fill(WGSL.gather!, { OUT_T: x, X_T: x });
export const scatterAddWgsl = (): string => fill(WGSL.scatter_add!, {});
export const randomWgsl = (out: WType): string => fill(WGSL.random!, { OUT_T: out, STORE: storeFrom('v', out) });
/** Storage types of the row kernels' bindings (rows.wgsl): out, X, G, W, B and the mean/rstd pair. */
export interface RowTypes { out: WType; x: WType; g: WType; w: WType; b: WType; stat: WType }

const COOP_REDUCERS = `var<workgroup> red: array<f32, WG>;
fn row_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn row_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;

/** `coop`: a 64-invocation workgroup per row (GPUs); else one invocation per row (software adapters). */
export function rowsWgsl(entry: 'softmax' | 'softmax_backward' | 'layer_norm', t: RowTypes, coop: boolean): string {
  return fill(WGSL.rows!, {
    ENTRY: entry, WGu: '64u', STEPu: coop ? '64u' : '1u', O_T: t.out, X_T: t.x, G_T: t.g, W_T: t.w, B_T: t.b, M_T: t.stat,
    ST_OUT: storeFrom('v', t.out), ST_STAT: storeFrom('v', t.stat),
    REDUCERS: coop ? COOP_REDUCERS : 'fn row_sum(v: f32, lid: u32) -> f32 { return v; }\nfn row_max(v: f32, lid: u32) -> f32 { return v; }',
    ROW: coop ? 'let row = flat_group(wid, nwg); let l = lid;' : 'let row = flat_id(gid, nwg, WG); let l = 0u;',
  });
}

/** Fused attention forward for head dim D (attention.wgsl): WG query rows per workgroup, BKV keys per tile. */
export function attentionWgsl(t: { out: WType; q: WType; k: WType; v: WType }, D: number, wg: number, bkv: number): string {
  return fill(WGSL.attention!, {
    O_T: t.out, Q_T: t.q, K_T: t.k, V_T: t.v, Du: `${D}u`, WGu: `${wg}u`, BKVu: `${bkv}u`, KV_LENu: `${bkv * D}u`, ST_OUT: storeFrom('v', t.out),
  });
}

export function adamwWgsl(t: { p: WType; g: WType; low: WType }): string {
  return fill(WGSL.adamw!, { P_T: t.p, G_T: t.g, L_T: t.low, ST_P: storeFrom('next', t.p), ST_L: storeFrom('next', t.low) });
}

// ---- metadata ------------------------------------------------------------------------------------------

/**
 * Merge adjacent dims that every operand walks contiguously, and drop size-1 dims: a dense elementwise
 * op becomes rank 1 whatever its shape.
 */
export function collapse(shape: readonly number[], strides: (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const keep = shape.map((_, d) => d).filter((d) => shape[d] !== 1);
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (const d of keep) {
    const r = outShape.length;
    if (r > 0 && strides.every((s, k) => outStrides[k]![r - 1] === s[d]! * shape[d]!)) {
      outShape[r - 1]! *= shape[d]!;
      strides.forEach((s, k) => { outStrides[k]![r - 1] = s[d]!; });
      continue;
    }
    outShape.push(shape[d]!);
    strides.forEach((s, k) => outStrides[k]!.push(s[d]!));
  }
  return { shape: outShape, strides: outStrides };
}

/**
 * Elementwise metadata: n, rank, shape, per view (offset, strides), then extra words; or, when every
 * operand collapses to rank <= 1 (`flat`), n and per view (offset, stride), then the extra words.
 */
export function elementwiseMeta(shape: readonly number[], views: View[], extra: number[] = [], maxGroups = 65535): { meta: Uint32Array; kind: EwKind; groups?: [number, number, number] } {
  const c = collapse(shape, views.map((v) => v.strides));
  const n = shape.reduce((a, b) => a * b, 1);
  if (c.shape.length <= 1) {
    const words = [n];
    views.forEach((v, k) => words.push(v.offset, c.strides[k]![0] ?? 0));
    return { meta: u32(words.concat(extra)), kind: 'flat' };
  }
  if (c.shape.length <= 4) {
    const pad = 4 - c.shape.length;
    const dims = [...new Array(pad).fill(1), ...c.shape];
    const groups: [number, number, number] = [Math.ceil(dims[3]! / 64), dims[2]!, dims[0]! * dims[1]!];
    if (groups.every((g) => g <= maxGroups)) {
      const words = [n, 4, ...dims];
      views.forEach((v, k) => words.push(v.offset, ...new Array(pad).fill(0), ...c.strides[k]!));
      return { meta: u32(words.concat(extra)), kind: 'grid', groups };
    }
  }
  const words = [n, c.shape.length, ...c.shape];
  views.forEach((v, k) => words.push(v.offset, ...c.strides[k]!));
  return { meta: u32(words.concat(extra)), kind: 'strided' };
}

/** Words to u32 (negative strides as two's complement). */
export function u32(words: number[]): Uint32Array {
  const out = new Uint32Array(words.length);
  for (let i = 0; i < words.length; i++) out[i] = words[i]! >>> 0;
  return out;
}

const f32Bits = new Float32Array(1);
export function f32Word(x: number): number {
  f32Bits[0] = x;
  return new Uint32Array(f32Bits.buffer)[0]!;
}

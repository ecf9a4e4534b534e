// Fused attention on the cpu (kernels/wasm/attention.ts): forward with the per-row log-sum-exp, and the
// backward that recomputes the probabilities from it, one task per (batch, head). Nothing T x T lives in
// the heap: scores stay in each task's scratch, block by block of query rows.
import type { View } from '../../backend.js';
import type { CpuBuffer } from '../buffer.js';
import { ATTN_BWD, ATTN_FWD, hit, kernels, runJob, type Kernels } from './kernels.js';
import { allF32, Operands } from './operands.js';

/** Floats of scores per block of query rows kept in a task's scratch (L2-sized). */
const BLOCK_FLOATS = 32768;

function rank4UnitLast(...vs: View[]): boolean {
  return vs.every((v) => v.shape.length === 4 && (v.strides[3] === 1 || v.shape[3] === 1));
}

function contiguous(v: View): boolean {
  let s = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    if (v.shape[d] !== 1 && v.strides[d] !== s) return false;
    s *= v.shape[d]!;
  }
  return true;
}

/** Shapes [B, H, Tq, D], [B, H, Tk, D], [B, H, Tk, Dv], out [B, H, Tq, Dv]; null when they do not fit. */
function dims(q: View, k: View, v: View, out: View): [number, number, number, number, number, number] | null {
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const Tk = k.shape[2]!, Dv = v.shape[3]!;
  const same = (x: View, s: number[]) => x.shape.every((d, i) => d === s[i]);
  if (!same(k, [B, H, Tk, D]) || !same(v, [B, H, Tk, Dv]) || !same(out, [B, H, Tq, Dv])) return null;
  return [B, H, Tq, Tk, D, Dv];
}

function blockRows(k: Kernels, Tq: number, Tk: number): number {
  const br = Math.floor(BLOCK_FLOATS / Math.max(1, Tk) / k.MR) * k.MR;
  return Math.max(k.MR, Math.min(br, Math.ceil(Tq / k.MR) * k.MR));
}

/**
 * One attention job (forward, or backward): each thread's scratch of the kind's size, the shared parameters,
 * the kind's own (`own`), the run over the B*H heads; the scratch is freed after. False when the heap is full.
 */
function runAttention(k: Kernels, backward: boolean, [B, H, Tq, Tk, D, Dv]: readonly number[], a: number[], vs: View[], scale: number,
  own: (p: Kernels['params']) => void): boolean {
  const Br = blockRows(k, Tq!, Tk!);
  const per = k.ex.attentionScratch(backward ? 1 : 0, Tq!, Tk!, D!, Dv!, Br) + 64;
  const T = Math.min(k.threads, B! * H!);
  const scr = k.heap.alloc(per * T);
  if (scr < 0) return false;
  try {
    hit(backward ? 'attentionBackward' : 'attention');
    params(k, H!, Tq!, Tk!, D!, Dv!, a, vs, scale, Br, scr, per);
    own(k.params);
    runJob(k, B! * H!, T > 1 && B! * H! * Tq! * Tk! * D! >= 1 << 18);
  } finally {
    k.heap.free(scr, per * T);
  }
  return true;
}

function params(k: Kernels, H: number, Tq: number, Tk: number, D: number, Dv: number, a: number[], vs: View[], scale: number, Br: number, scr: number, scrBytes: number): void {
  const p = k.params;
  p[1] = H; p[2] = Tq; p[3] = Tk; p[4] = D; p[5] = Dv;
  for (let i = 0; i < 4; i++) {
    p[6 + 4 * i] = a[i]!;
    for (let j = 0; j < 3; j++) p[7 + 4 * i + j] = vs[i]!.strides[j]!;
  }
  p[23] = Math.fround(scale); p[24] = Br; p[25] = scr; p[26] = scrBytes; p[27] = 512;
}

function run(fn: (k: Kernels, ops: Operands) => boolean): boolean {
  const k = kernels();
  if (!k) return false;
  const ops = new Operands(k);
  let ok = false;
  try { ok = fn(k, ops); } finally { if (ok) ops.finish(); else ops.abort(); }
  return ok;
}

export function fastAttention(q: View, kk: View, v: View, out: View, scale: number, lse: View | null, causal: boolean): boolean {
  if (causal || !allF32(q, kk, v, out, lse) || !rank4UnitLast(q, kk, v, out)) return false;
  const d = dims(q, kk, v, out);
  if (!d || (lse && !contiguous(lse))) return false;
  const [B, H, Tq, Tk, D] = d;
  if (B * H === 0 || Tq === 0) return true;
  if (Tk === 0 || D === 0) return false;
  return run((k, ops) => {
    const a = [ops.view(q), ops.view(kk), ops.view(v), ops.view(out, true)];
    const l = lse ? ops.addr((lse.buf as CpuBuffer).data as Float32Array, lse.offset, 0, B * H * Tq - 1, true) : 0;
    if (a.some((x) => x < 0) || l < 0) return false;
    return runAttention(k, false, d, a, [q, kk, v, out], scale, (p) => { p[0] = ATTN_FWD; p[22] = l; });
  });
}

export function fastAttentionBackward(q: View, kk: View, v: View, out: View, lse: View, dout: View, dq: View, dk: View, dv: View,
  scale: number, causal: boolean): boolean {
  if (causal || !allF32(q, kk, v, out, lse, dout, dq, dk, dv) || !rank4UnitLast(q, kk, v, out, dout)) return false;
  const d = dims(q, kk, v, out);
  if (!d || !contiguous(lse) || !contiguous(dq) || !contiguous(dk) || !contiguous(dv)) return false;
  const [B, H, Tq, Tk, D] = d;
  if (!dout.shape.every((x, i) => x === out.shape[i])) return false;
  if (B * H === 0 || Tq === 0 || Tk === 0 || D === 0) return false;
  return run((k, ops) => {
    const a = [ops.view(q), ops.view(kk), ops.view(v), ops.view(out), ops.view(dout)];
    const l = ops.addr((lse.buf as CpuBuffer).data as Float32Array, lse.offset, 0, B * H * Tq - 1, false);
    const g = [ops.view(dq, true), ops.view(dk, true), ops.view(dv, true)];
    if (a.some((x) => x < 0) || g.some((x) => x < 0) || l < 0) return false;
    return runAttention(k, true, d, a, [q, kk, v, out], scale, (p) => {
      p[0] = ATTN_BWD; p[22] = l;
      p[28] = a[4]!; p[29] = dout.strides[0]!; p[30] = dout.strides[1]!; p[31] = dout.strides[2]!;
      p[32] = g[0]!; p[33] = g[1]!; p[34] = g[2]!;
    });
  });
}

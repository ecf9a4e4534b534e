// Finite-difference gradient checker in float64: compares backward() of L = sum(f(inputs) * W), for a fixed
// random W, with central differences (L(x + eps) - L(x - eps)) / 2eps on every element of every input.
import * as L from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { stridedOffsets } from '../../src/backends/cpu/strided.js';

export interface InputSpec {
  shape: number[];
  data: number[];
  /** Integer inputs (indices, labels) are not differentiated. */
  int?: boolean;
}

/**
 * How an input is laid out in memory. The logical values are the spec's either way; only the storage
 * differs, so an op must give the same result for every layout. Gaps hold NaN (floats) or an index far
 * out of range (integers), so a kernel that reads outside the view shows.
 */
export type Layout =
  | { kind: 'contiguous' }
  | { kind: 'offset'; offset: number }
  /** The dims stored in another order (a transpose / permute of a contiguous tensor). */
  | { kind: 'permuted'; order: number[]; offset: number }
  /** Every dim strided with gaps: the last with step `step`, the others padded by one element per row. */
  | { kind: 'strided'; step: number; offset: number };

export function describeLayout(l: Layout | undefined): string {
  if (!l || l.kind === 'contiguous') return 'contiguous';
  if (l.kind === 'offset') return `offset ${l.offset}`;
  if (l.kind === 'permuted') return `permuted [${l.order}] offset ${l.offset}`;
  return `strided step ${l.step} offset ${l.offset}`;
}

/** (storage size, strides, offset) of a view of `shape` in the given layout. */
function place(shape: readonly number[], l: Layout): { size: number; strides: number[]; offset: number } {
  const r = shape.length;
  const strides = new Array<number>(r).fill(0);
  if (l.kind === 'contiguous' || l.kind === 'offset') {
    let s = 1;
    for (let d = r - 1; d >= 0; d--) { strides[d] = s; s *= shape[d]!; }
    const offset = l.kind === 'offset' ? l.offset : 0;
    return { size: offset + s + (l.kind === 'offset' ? 2 : 0), strides, offset };
  }
  if (l.kind === 'permuted') {
    // memory order: dims order[0] (outermost) .. order[r-1] (innermost)
    let s = 1;
    for (let j = r - 1; j >= 0; j--) { strides[l.order[j]!] = s; s *= shape[l.order[j]!]!; }
    return { size: l.offset + s + 1, strides, offset: l.offset };
  }
  let s = l.step;
  for (let d = r - 1; d >= 0; d--) { strides[d] = s; s = s * shape[d]! + 1; }
  return { size: l.offset + s + 1, strides, offset: l.offset };
}

/** The permutation a 'permuted' layout uses for rank r, picked by k. */
export function permutationOf(r: number, k: number): number[] {
  const rest = [...Array(r).keys()], out: number[] = [];
  for (let i = r; i > 0; i--) { out.push(rest.splice(k % i, 1)[0]!); k = Math.floor(k / i); }
  // never the identity when the rank allows another order
  if (r > 1 && out.every((d, i) => d === i)) out.reverse();
  return out;
}

export function makeInputs(specs: readonly InputSpec[], opts: { dtype: 'float32' | 'float64'; device?: string; requiresGrad?: boolean; layouts?: readonly (Layout | undefined)[] }): Tensor[] {
  return specs.map((s, i) => {
    const dtype = s.int ? 'int64' : opts.dtype;
    const requiresGrad = !s.int && (opts.requiresGrad ?? false);
    const layout = opts.layouts?.[i];
    if (!layout || layout.kind === 'contiguous') return L.tensor(s.data, { shape: s.shape, dtype, device: opts.device, requiresGrad });
    const { size, strides, offset } = place(s.shape, layout);
    const raw = new Array<number>(size).fill(s.int ? 1e6 : NaN);
    const offs = stridedOffsets(s.shape, strides, offset);
    offs.forEach((o, k) => (raw[o] = s.data[k]!));
    const base = L.tensor(raw, { dtype, device: opts.device });
    const view = base.alias(s.shape, strides, offset);
    base.dispose();
    return requiresGrad ? view.requiresGrad_() : view;
  });
}

export interface GradcheckResult {
  ok: boolean;
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
}

export function gradcheck(
  f: (...xs: Tensor[]) => Tensor,
  specs: readonly InputSpec[],
  { eps = 1e-6, atol = 1e-5, rtol = 1e-4, layouts }: { eps?: number; atol?: number; rtol?: number; layouts?: readonly (Layout | undefined)[] } = {},
): GradcheckResult {
  return L.scope(() => {
    const xs = makeInputs(specs, { dtype: 'float64', requiresGrad: true, layouts });
    const out = f(...xs);
    const W = L.randn(out.shape, { dtype: 'float64', generator: new L.Generator(1234) });
    const weights = W.toArray();
    const loss = L.sum(L.mul(out, W));
    loss.backward();
    const evalLoss = (data: number[][]): number =>
      L.noGrad(() => L.scope(() => {
        const ys = makeInputs(specs.map((s, i) => ({ ...s, data: data[i]! })), { dtype: 'float64', layouts });
        const o = f(...ys).toArray();
        let acc = 0;
        for (let i = 0; i < o.length; i++) acc += o[i]! * weights[i]!;
        return acc;
      }));
    let worst: GradcheckResult['worst'] = null;
    let ok = true;
    specs.forEach((s, k) => {
      if (s.int) return;
      const analytic = xs[k]!.grad ? Array.from(xs[k]!.grad!.toArray()) : new Array<number>(s.data.length).fill(0);
      for (let i = 0; i < s.data.length; i++) {
        const plus = specs.map((t) => [...t.data]);
        const minus = specs.map((t) => [...t.data]);
        plus[k]![i]! += eps;
        minus[k]![i]! -= eps;
        const numeric = (evalLoss(plus) - evalLoss(minus)) / (2 * eps);
        const a = analytic[i]!;
        if (!(Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric))) {
          ok = false;
          if (!worst || Math.abs(a - numeric) > Math.abs(worst.analytic - worst.numeric)) worst = { input: k, index: i, analytic: a, numeric };
        }
      }
    });
    return { ok, worst };
  });
}

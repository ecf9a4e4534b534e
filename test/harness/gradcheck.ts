// Finite-difference gradient checker in float64: compares backward() of L = sum(f(inputs) * W), for a fixed
// random W, with central differences (L(x + eps) - L(x - eps)) / 2eps on every element of every input.
import * as L from '../../src/index.js';
import type { Tensor } from '../../src/index.js';

export interface InputSpec {
  shape: number[];
  data: number[];
  /** Integer inputs (indices, labels) are not differentiated. */
  int?: boolean;
}

export function makeInputs(specs: readonly InputSpec[], opts: { dtype: 'float32' | 'float64'; device?: string; requiresGrad?: boolean }): Tensor[] {
  return specs.map((s) =>
    L.tensor(s.data, {
      shape: s.shape,
      dtype: s.int ? 'int64' : opts.dtype,
      device: opts.device,
      requiresGrad: !s.int && (opts.requiresGrad ?? false),
    }),
  );
}

export interface GradcheckResult {
  ok: boolean;
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
}

export function gradcheck(
  f: (...xs: Tensor[]) => Tensor,
  specs: readonly InputSpec[],
  { eps = 1e-6, atol = 1e-5, rtol = 1e-4 } = {},
): GradcheckResult {
  return L.scope(() => {
    const xs = makeInputs(specs, { dtype: 'float64', requiresGrad: true });
    const out = f(...xs);
    const W = L.randn(out.shape, { dtype: 'float64', generator: new L.Generator(1234) });
    const weights = W.toArray();
    const loss = L.sum(L.mul(out, W));
    loss.backward();
    const evalLoss = (data: number[][]): number =>
      L.noGrad(() => L.scope(() => {
        const ys = makeInputs(specs.map((s, i) => ({ ...s, data: data[i]! })), { dtype: 'float64' });
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

// Ops built from other ops but recorded as one node, so the graph keeps less: swiglu keeps its two
// inputs (not silu's output), rotary keeps nothing but its tables (its gradient is the inverse rotation),
// modulate keeps x and scale, gatedAdd gate and y. A backend's fused kernels (Backend.fused.swiglu /
// swigluBackward / rotary / modulate / gatedAdd) do each in one pass; the composition below is the fallback and the definition (the fused
// kernels give the same float32 bits).
import { noGrad } from '../autograd/grad-mode.js';
import type { Tensor } from '../tensor/tensor.js';
import type { View } from '../backends/backend.js';
import { add, broadcastView, mul, silu, siluGrad, sub, sumTo } from './elementwise.js';
import { promote } from '../tensor/dtype.js';
import { cast, stack } from './movement.js';
import { backendOf, empty, record } from './record.js';
import { contiguous, reshape, select, unsqueeze } from './views.js';
import { sameShape } from '../tensor/shape.js';

/** silu(a) * b (the SwiGLU gate); the backward recomputes silu(a) instead of keeping it. */
export function swiglu(a: Tensor, b: Tensor): Tensor {
  const be = backendOf('swiglu', a, b);
  if (!sameShape(a.shape, b.shape)) throw new Error(`swiglu: operands must have one shape, got ${a.describe()} and ${b.describe()}`);
  const out = noGrad(() => {
    if (be.fused.swiglu && a.isContiguous() && b.isContiguous() && a.dtype === b.dtype) {
      const y = empty(be, a.shape, a.dtype);
      if (be.fused.swiglu(a.view(), b.view(), y.view())) return y;
      y.dispose();
    }
    const s = silu(a);
    const y = mul(s, b);
    s.dispose();
    return y;
  });
  return record(out, 'swiglu', [a, b], [a, b], (g, [sa, sb], [na, nb]) => {
    if (be.fused.swigluBackward && sa!.isContiguous() && sb!.isContiguous() && sa!.dtype === sb!.dtype) {
      const gc = contiguous(g);
      const da = na ? empty(be, sa!.shape, sa!.dtype) : null, db = nb ? empty(be, sb!.shape, sb!.dtype) : null;
      if (be.fused.swigluBackward(sa!.view(), sb!.view(), gc.view(), da?.view() ?? null, db?.view() ?? null)) return [da, db];
      da?.dispose();
      db?.dispose();
    }
    return [na ? siluGrad(mul(g, sb!), sa!) : null, nb ? mul(g, silu(sa!)) : null];
  });
}

/**
 * An adaLN hook's x-shaped result (Backend.fused.modulate / gatedAdd), its per-sample [B, D] operands
 * broadcast over T; null when the backend has no such hook or declines.
 */
function fusedAdaLN(hook: ((x: View, a: View, b: View, out: View) => boolean) | undefined, x: Tensor, a: Tensor, b: Tensor): Tensor | null {
  if (!hook) return null;
  const out = empty(x.backend, x.shape, x.dtype);
  const [av, bv] = [a, b].map((t) => (t.ndim === 2 ? broadcastView(unsqueeze(t, 1), x.shape) : t.alias()));
  const ok = hook(x.view(), av!.view(), bv!.view(), out.view());
  av!.dispose(); bv!.dispose();
  if (ok) return out;
  out.dispose();
  return null;
}

/**
 * adaLN's modulate, x * (1 + scale) + shift for x [B, T, D] and per-sample shift, scale [B, D]: one kernel
 * where the backend has it (three, and a full-size temporary, composed), one graph node keeping x and scale.
 */
export function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  const be = backendOf('modulate', x, shift, scale);
  const [B, , D] = x.shape as [number, number, number];
  if (x.ndim !== 3 || [shift, scale].some((t) => t.ndim !== 2 || t.shape[0] !== B || t.shape[1] !== D)) {
    throw new Error(`modulate: expected x [B, T, D] and shift, scale [B, D], got ${x.describe()}, ${shift.describe()}, ${scale.describe()}`);
  }
  const out = noGrad(() => (promote(x.dtype, promote(shift.dtype, scale.dtype)) === x.dtype && fusedAdaLN(be.fused.modulate, x, scale, shift))
    || add(mul(x, add(unsqueeze(scale, 1), 1)), unsqueeze(shift, 1)));
  // the composition's gradients, op for op (so the float32 bits are the same)
  return record(out, 'modulate', [x, shift, scale], [x, scale], (g, [sx, ss], [nx, nsh, nsc]) => [
    nx ? mul(g, add(unsqueeze(ss!, 1), 1)) : null,
    nsh ? reshape(sumTo(g, [B, 1, D]), [B, D]) : null,
    nsc ? reshape(sumTo(mul(g, sx!), [B, 1, D]), [B, D]) : null,
  ]);
}

/**
 * adaLN's gated residual, x + gate * y for x, y [B, T, D] and a per-sample gate [B, D]: one kernel where the
 * backend has it (two, and a full-size temporary, composed), one graph node keeping gate and y.
 */
export function gatedAdd(x: Tensor, gate: Tensor, y: Tensor): Tensor {
  const be = backendOf('gatedAdd', x, gate, y);
  const [B, , D] = x.shape as [number, number, number];
  if (x.ndim !== 3 || !sameShape(x.shape, y.shape) || gate.ndim !== 2 || gate.shape[0] !== B || gate.shape[1] !== D) {
    throw new Error(`gatedAdd: expected x, y [B, T, D] and gate [B, D], got ${x.describe()}, ${gate.describe()}, ${y.describe()}`);
  }
  const productDtype = promote(gate.dtype, y.dtype);
  const out = noGrad(() => (promote(x.dtype, productDtype) === x.dtype && fusedAdaLN(be.fused.gatedAdd, x, gate, y)) || add(x, mul(unsqueeze(gate, 1), y)));
  // the composition's gradients, op for op: the product's gradient arrives in its dtype (as the engine casts)
  return record(out, 'gatedAdd', [x, gate, y], [gate, y], (g, [sg, sy], [nx, ng, ny]) => {
    const dm = ng || ny ? (g.dtype === productDtype ? g : cast(g, productDtype)) : null;
    return [
      nx ? g.alias() : null,
      ng ? reshape(sumTo(mul(dm!, sy!), [B, 1, D]), [B, D]) : null,
      ny ? mul(dm!, unsqueeze(sg!, 1)) : null,
    ];
  });
}

/** Rotate adjacent pairs of x's last axis by the angles whose cos/sin are given (broadcast over x's leading dims). */
function rotate(x: Tensor, cos: Tensor, sin: Tensor, inverse: boolean): Tensor {
  const be = x.backend;
  if (be.fused.rotary && cos.dtype === x.dtype && sin.dtype === x.dtype) {
    const xc = contiguous(x), cc = contiguous(cos), sc = contiguous(sin);
    const out = empty(be, x.shape, x.dtype);
    const ok = be.fused.rotary(xc.view(), cc.view(), sc.view(), out.view(), inverse);
    xc.dispose(); cc.dispose(); sc.dispose();
    if (ok) return out;
    out.dispose();
  }
  return rotateByPrimitives(x, unsqueeze(cos, 1), unsqueeze(sin, 1), inverse);
}

function rotateByPrimitives(x: Tensor, cos: Tensor, sin: Tensor, inverse: boolean): Tensor {
  const shape = x.shape, hd = shape[shape.length - 1]!;
  const pairs = reshape(x, [...shape.slice(0, -1), hd / 2, 2]);
  const x0 = select(pairs, -1, 0), x1 = select(pairs, -1, 1);
  const r0 = inverse ? add(mul(x0, cos), mul(x1, sin)) : sub(mul(x0, cos), mul(x1, sin));
  const r1 = inverse ? sub(mul(x1, cos), mul(x0, sin)) : add(mul(x0, sin), mul(x1, cos));
  return reshape(stack([r0, r1], -1), shape);
}

/**
 * Rotary embedding of x [B, T, H, hd]: pairs (2m, 2m+1) of token n rotated by angle n * f_m, with cos/sin
 * tables [T, hd/2] (constants: they get no gradient). Recorded as one node that saves only the tables.
 */
export function rotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const [, T, , hd] = x.shape as [number, number, number, number];
  if (x.ndim !== 4 || hd % 2 || cos.ndim !== 2 || cos.shape[0] !== T || cos.shape[1] !== hd / 2 || sin.shape.join() !== cos.shape.join()) {
    throw new Error(`rotary: expected x [B, T, H, hd] (hd even) and cos/sin [T, hd/2], got ${x.describe()}, ${cos.describe()}, ${sin.describe()}`);
  }
  backendOf('rotary', x, cos, sin);
  const out = noGrad(() => rotate(x, cos, sin, false));
  return record(out, 'rotary', [x], [cos, sin], (g, [sc, ss]) => [rotate(g, sc!, ss!, true)]);
}

// Ops built from other ops but recorded as one node, so the graph keeps less: swiglu keeps its two
// inputs (not silu's output), rotary keeps nothing (its gradient is the inverse rotation). The forward
// arithmetic is exactly the composition's.
import { noGrad } from '../autograd/grad-mode.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, mul, silu, siluGrad, sub } from './elementwise.js';
import { stack } from './movement.js';
import { record } from './record.js';
import { reshape, select, unsqueeze } from './views.js';

/** silu(a) * b (the SwiGLU gate); the backward recomputes silu(a) instead of keeping it. */
export function swiglu(a: Tensor, b: Tensor): Tensor {
  const out = noGrad(() => {
    const s = silu(a);
    const y = mul(s, b);
    s.dispose();
    return y;
  });
  return record(out, 'swiglu', [a, b], [a, b], (g, [sa, sb], [na, nb]) => [
    na ? siluGrad(mul(g, sb!), sa!) : null,
    nb ? mul(g, silu(sa!)) : null,
  ]);
}

/** Rotate adjacent pairs of x's last axis by the angles whose cos/sin are given (broadcast over x's leading dims). */
function rotate(x: Tensor, cos: Tensor, sin: Tensor, inverse: boolean): Tensor {
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
  const [c, s] = noGrad(() => [unsqueeze(cos, 1), unsqueeze(sin, 1)]) as [Tensor, Tensor];
  const out = noGrad(() => rotate(x, c, s, false));
  const result = record(out, 'rotary', [x], [c, s], (g, [sc, ss]) => [rotate(g, sc!, ss!, true)]);
  c.dispose();
  s.dispose();
  return result;
}

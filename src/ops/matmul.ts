// Matrix products with torch.matmul semantics: 1-D operands, broadcast batch dims, batched backend kernel.
import { isFloat } from '../tensor/dtype.js';
import { broadcastShapes, numel, shapeStr } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, broadcastView, sumTo } from './elementwise.js';
import { backendOf, empty, record } from './record.js';
import { autocastDtype, lowInputs, lowOutput, lowWeight } from './autocast.js';
import { clone, permute, reshape, squeeze, transpose, unsqueeze } from './views.js';

/** t broadcast to batch shape `batch` as a [B, rows, cols] view, or null if its batch dims don't fold into one stride. */
function batched3d(t: Tensor, batch: readonly number[]): Tensor | null {
  const nb = batch.length;
  const v = broadcastView(t, [...batch, t.shape[t.ndim - 2]!, t.shape[t.ndim - 1]!]);
  const dims = batch.flatMap((d, i) => (d === 1 ? [] : [i]));
  let stride = 0;
  if (!dims.every((i) => v.strides[i] === 0)) {
    stride = v.strides[dims[dims.length - 1]!]!;
    let expect = stride;
    for (let k = dims.length - 1; k >= 0; k--) {
      if (v.strides[dims[k]!] !== expect) {
        v.dispose();
        return null;
      }
      expect *= batch[dims[k]!]!;
    }
  }
  const out = v.alias([numel(batch), v.shape[nb]!, v.shape[nb + 1]!], [stride, v.strides[nb]!, v.strides[nb + 1]!], v.offset);
  v.dispose();
  return out;
}

/** A contiguous broadcast copy for operands whose batch dims don't fold into one stride. */
function materialize(t: Tensor, shape: number[], batch: readonly number[]): [Tensor, Tensor] {
  const v = broadcastView(t, shape);
  const c = clone(v);
  v.dispose();
  return [c, batched3d(c, batch)!];
}

function matmulNd(a: Tensor, b: Tensor): Tensor {
  const be = backendOf('matmul', a, b);
  const [M, K] = [a.shape[a.ndim - 2]!, a.shape[a.ndim - 1]!];
  const [K2, N] = [b.shape[b.ndim - 2]!, b.shape[b.ndim - 1]!];
  if (K !== K2) throw new Error(`matmul: inner dimensions differ: ${a.describe()} @ ${b.describe()} (${K} vs ${K2})`);
  if (a.dtype !== b.dtype) throw new Error(`matmul: dtypes differ: ${a.describe()} @ ${b.describe()}`);
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  let a3 = batched3d(a, batch), b3 = batched3d(b, batch);
  let tmpA: Tensor | null = null, tmpB: Tensor | null = null;
  if (!a3) [tmpA, a3] = materialize(a, [...batch, M, K], batch);
  if (!b3) [tmpB, b3] = materialize(b, [...batch, K, N], batch);
  const out = empty(be, [...batch, M, N], a.dtype);
  be.matmul(a3.view('matmul'), b3.view('matmul'), out.view());
  for (const t of [a3, b3, tmpA, tmpB]) t?.dispose();
  if (!isFloat(a.dtype)) return out;
  return record(out, 'matmul', [a, b], [a, b], (g, [sa, sb], [na, nb]) => [na ? gradA(g, sa!, sb!) : null, nb ? gradB(g, sa!, sb!) : null]);
}

/**
 * d/da of a @ b. When a is a plain matrix shared by a batch of b (a conv weight), the batch sum is folded
 * into one product: [M, batch*N] @ [batch*N, K], instead of a product per batch item and a reduction.
 */
function gradA(g: Tensor, a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 2 && b.ndim > 2 && b.ndim === g.ndim) {
    const lead = [...Array(g.ndim - 2).keys()];
    // explicit sizes, not -1: a -1 next to a 0 is ambiguous for empty tensors
    const cols = numel(g.shape.slice(0, -2)) * g.shape[g.ndim - 1]!;
    const g2 = reshape(permute(g, [g.ndim - 2, ...lead, g.ndim - 1]), [g.shape[g.ndim - 2]!, cols]);
    const b2 = reshape(permute(b, [b.ndim - 2, ...lead.map((i) => i + b.ndim - g.ndim), b.ndim - 1]), [b.shape[b.ndim - 2]!, cols]);
    return matmulNd(g2, transpose(b2, 0, 1));
  }
  return sumTo(matmulNd(g, transpose(b, -2, -1)), a.shape);
}

/** d/db of a @ b; a weight shared by a batch of rows (b a plain matrix) gets one [K, batch*M] @ [batch*M, N] product. */
function gradB(g: Tensor, a: Tensor, b: Tensor): Tensor {
  if (b.ndim === 2 && a.ndim >= 2) {
    const K = a.shape[a.ndim - 1]!, N = g.shape[g.ndim - 1]!, rows = numel(a.shape.slice(0, -1));
    const a2 = reshape(a, [rows, K]), g2 = reshape(g, [rows, N]);
    // b a transposed matrix (linear's weight.T): the gradient made in the weight's own layout, [N, K]
    // contiguous, handed back as its transpose, so the weight's gradient (and its cast to float32 under
    // autocast) is read contiguously instead of element by element across rows
    if (b.strides[0] === 1 && b.strides[1] === K && N > 1) return transpose(matmulNd(transpose(g2, 0, 1), a2), 0, 1);
    if (a.ndim > 2) return matmulNd(transpose(a2, 0, 1), g2);
  }
  return sumTo(matmulNd(transpose(a, -2, -1), g), b.shape);
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  // under autocast: low-precision inputs and output (ops/autocast.ts)
  if (!autocastDtype()) return matmulPlain(a, b);
  const be = backendOf('matmul', a, b);
  const [la, lb] = lowInputs(be, [a, b]) as [Tensor, Tensor];
  return lowOutput(be, matmulPlain(la, lb));
}

function matmulPlain(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: both operands need at least one dimension, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  if (a.ndim === 1 && b.ndim === 1) return reshape(matmulNd(reshape(a, [1, -1]), reshape(b, [-1, 1])), []);
  if (a.ndim === 1) return squeeze(matmulNd(unsqueeze(a, 0), b), -2);
  if (b.ndim === 1) return squeeze(matmulNd(a, unsqueeze(b, 1)), -1);
  return matmulNd(a, b);
}

/** y = x W^T + b with W [out, in], as torch.nn.functional.linear. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  // under autocast the weight is lowered before the transpose, so the low copy is the weight's own (remade in the backward)
  const y = matmul(x, transpose(lowWeight(backendOf('linear', x, weight), weight), 0, 1));
  return bias ? add(y, bias) : y;
}

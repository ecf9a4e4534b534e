// 2-D convolution (cross-correlation) as batched matmuls over im2col columns, built in chunks of batch
// items so the columns (C*KH*KW x OH*OW floats per item: 25x the input for a 5x5 kernel) never exist
// for the whole batch at once. The backward rebuilds each chunk's columns instead of saving them: the op
// keeps only its (padded) input and the weight. Written on the primitives, so every backend runs it.
import type { Backend, View } from '../backends/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { backendOf, empty, record } from './record.js';

/** Floats of columns per chunk (a few MiB: the columns stay in cache between the copy and the product). */
let CHUNK_FLOATS = 1 << 21;

/** Test knob: a small chunk makes small convolutions run in several chunks. @internal */
export function convSetOptions(o: { chunkFloats?: number }): void {
  if (o.chunkFloats !== undefined) CHUNK_FLOATS = Math.max(1, o.chunkFloats);
}

interface Geometry {
  N: number; C: number; H: number; W: number; O: number; KH: number; KW: number; OH: number; OW: number; stride: number;
  /** Columns per item (C*KH*KW) and output positions per item (OH*OW). */
  K: number; J: number;
  /** Items per chunk. */
  G: number;
}

function geometry(x: Tensor, w: Tensor, stride: number): Geometry {
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [O, , KH, KW] = w.shape as [number, number, number, number];
  const OH = Math.floor((H - KH) / stride) + 1, OW = Math.floor((W - KW) / stride) + 1;
  const K = C * KH * KW, J = OH * OW;
  // a backend with its own budget (a GPU: launches cost more than memory) overrides the cache-sized chunk
  const chunk = x.backend.convChunkFloats ?? CHUNK_FLOATS;
  return { N, C, H, W, O, KH, KW, OH, OW, stride, K, J, G: Math.max(1, Math.min(N, Math.floor(chunk / Math.max(1, K * J)))) };
}

const v = (buf: View['buf'], shape: number[], strides: number[], offset: number): View => ({ buf, shape, strides, offset });

/** Columns [g, C, KH, KW, OH, OW] (contiguous) of items n0 .. n0+g-1 of the contiguous input x. */
function unfoldChunk(be: Backend, x: Tensor, geo: Geometry, n0: number, g: number): Tensor {
  const { C, H, W, KH, KW, OH, OW, stride } = geo;
  const cols = empty(be, [g, C, KH, KW, OH, OW], x.dtype);
  const xs = x.view('conv2d');
  be.copy(v(xs.buf, [g, C, KH, KW, OH, OW], [C * H * W, H * W, W, 1, W * stride, stride], xs.offset + n0 * C * H * W), cols.view(), false);
  return cols;
}

/**
 * conv2d of a contiguous (already padded) x [N, C, H, W] with weight [O, C, KH, KW] -> [N, O, OH, OW],
 * differentiable in x and the weight.
 */
export function conv2dChunked(x: Tensor, weight: Tensor, stride: number): Tensor {
  const be = backendOf('conv2d', x, weight);
  const geo = geometry(x, weight, stride);
  const { N, O, K, J, G } = geo;
  const out = empty(be, [N, O, geo.OH, geo.OW], x.dtype);
  const wv = weight.view('conv2d');
  for (let n0 = 0; n0 < N; n0 += G) {
    const g = Math.min(G, N - n0);
    const cols = unfoldChunk(be, x, geo, n0, g);
    const o = out.view();
    // out_n [O, J] = W [O, K] @ cols_n [K, J], W shared across the chunk
    be.matmul(v(wv.buf, [g, O, K], [0, K, 1], wv.offset), v(cols.view().buf, [g, K, J], [K * J, J, 1], 0), v(o.buf, [g, O, J], [O * J, J, 1], n0 * O * J));
    cols.dispose();
  }
  return record(out, 'conv2d', [x, weight], [x, weight], (gy, [sx, sw], [nx, nw]) => conv2dGrads(be, gy, sx!, sw!, geo, nx!, nw!));
}

function conv2dGrads(be: Backend, gy: Tensor, x: Tensor, w: Tensor, geo: Geometry, needX: boolean, needW: boolean): [Tensor | null, Tensor | null] {
  const { N, O, KH, KW, K, J, G } = geo;
  const gc = gy.isContiguous() ? gy.alias() : contiguousCopy(be, gy);
  const gv = gc.view('conv2d backward'), wv = w.view('conv2d backward');
  const dx = needX ? empty(be, x.shape, x.dtype) : null;
  if (dx) be.fill(dx.view(), 0);
  const dw = needW ? empty(be, [O, K], w.dtype) : null;
  if (dw) be.fill(dw.view(), 0);
  for (let n0 = 0; n0 < N; n0 += G) {
    const g = Math.min(G, N - n0);
    const gOff = gv.offset + n0 * O * J;
    if (dw) convWeightGrad(be, x, geo, n0, g, gv, gOff, dw);
    if (dx) convInputGrad(be, geo, n0, g, gv, gOff, wv, dx);
  }
  gc.dispose();
  if (!dw) return [dx, null];
  const dwShaped = dw.alias(w.shape, [K, KH * KW, KW, 1], 0);
  dw.dispose();
  return [dx, dwShaped];
}

/** dW += sum over items n0 .. n0+g-1 of g_n [O, J] @ cols_n^T [J, K]. */
function convWeightGrad(be: Backend, x: Tensor, geo: Geometry, n0: number, g: number, gv: View, gOff: number, dw: Tensor): void {
  const { O, K, J } = geo;
  const cols = unfoldChunk(be, x, geo, n0, g);
  const part = empty(be, [g, O, K], dw.dtype);
  be.matmul(v(gv.buf, [g, O, J], [O * J, J, 1], gOff), v(cols.view().buf, [g, J, K], [K * J, 1, J], 0), part.view());
  cols.dispose();
  const sum = empty(be, [1, O, K], dw.dtype);
  be.reduce('sum', part.view(), [0], sum.view());
  be.copy(v(sum.view().buf, [O, K], [K, 1], 0), dw.view(), true);
  part.dispose();
  sum.dispose();
}

/** dcols_n [K, J] = W^T [K, O] @ g_n [O, J] for items n0 .. n0+g-1, folded back onto the input windows (col2im). */
function convInputGrad(be: Backend, geo: Geometry, n0: number, g: number, gv: View, gOff: number, wv: View, dx: Tensor): void {
  const { C, H, W, O, KH, KW, OH, OW, stride, K, J } = geo;
  const dcols = empty(be, [g, C, KH, KW, OH, OW], dx.dtype);
  be.matmul(v(wv.buf, [g, K, O], [0, 1, K], wv.offset), v(gv.buf, [g, O, J], [O * J, J, 1], gOff), v(dcols.view().buf, [g, K, J], [K * J, J, 1], 0));
  const dv = dx.view();
  for (let i = 0; i < KH; i++) {
    for (let j = 0; j < KW; j++) {
      const src = v(dcols.view().buf, [g, C, OH, OW], [K * J, KH * KW * J, OW, 1], (i * KW + j) * J);
      const dst = v(dv.buf, [g, C, OH, OW], [C * H * W, H * W, W * stride, stride], n0 * C * H * W + i * W + j);
      be.copy(src, dst, true);
    }
  }
  dcols.dispose();
}

function contiguousCopy(be: Backend, t: Tensor): Tensor {
  const out = empty(be, t.shape, t.dtype);
  be.copy(t.view('conv2d backward'), out.view(), false);
  return out;
}

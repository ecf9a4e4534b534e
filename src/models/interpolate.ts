// Bilinear resize of a [h0, w0, D] grid to [h1, w1, D] with PyTorch's align_corners=False rule:
// source coordinate = (dst + 0.5) * in/out - 0.5, clamped at 0; neighbours i0 = floor, i1 = min(i0+1, in-1).
// Written as two small interpolation matrices so it is differentiable and runs on any backend.
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../ops/creation.js';
import { matmul } from '../ops/matmul.js';
import { reshape } from '../ops/views.js';

/** [out, in] matrix whose row i holds the two bilinear weights of output position i. */
export function interpolationMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = Math.fround(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    const src = Math.max(Math.fround(Math.fround(scale * (i + 0.5)) - 0.5), 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l1 = Math.fround(src - i0), l0 = Math.fround(1 - l1);
    m[i * inSize + i0]! += l0;
    m[i * inSize + i1]! += l1;
  }
  return m;
}

export function bilinearResize(grid: Tensor, h1: number, w1: number): Tensor {
  const [h0, w0, D] = grid.shape as [number, number, number];
  const rh = tensor(interpolationMatrix(h0, h1), { shape: [h1, h0], device: grid.device, dtype: grid.dtype });
  const rw = tensor(interpolationMatrix(w0, w1), { shape: [w1, w0], device: grid.device, dtype: grid.dtype });
  const rows = reshape(matmul(rh, reshape(grid, [h0, w0 * D])), [h1, w0, D]);
  return matmul(rw, rows); // [w1, w0] @ [h1, w0, D] -> [h1, w1, D]
}

// Copying ops: cat, stack, split/chunk, pad, gather, index_select, dtype casts and device moves.
import { getBackend } from '../backends/registry.js';
import { DTYPES, isFloat, promote, type DType } from '../tensor/dtype.js';
import { autocastDtype } from '../autograd/autocast-mode.js';
import { normAxis, shapeStr } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from './creation.js';
import { backendOf, empty, record } from './record.js';
import { contiguous, slice, unsqueeze } from './views.js';

export function cat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new Error('cat: expected a non-empty list of tensors');
  // under autocast, float tensors of mixed precision are concatenated in the widest (torch's "promote"
  // policy): a float32 parameter beside a bf16 matmul output, on a backend that computes in bf16
  if (autocastDtype() && tensors.every((t) => isFloat(t.dtype)) && tensors.some((t) => t.dtype !== tensors[0]!.dtype)) {
    const d = tensors.map((t) => t.dtype).reduce(promote);
    return cat(tensors.map((t) => (t.dtype === d ? t : cast(t, d))), axis);
  }
  const be = backendOf('cat', ...tensors);
  const first = tensors[0]!;
  const ax = normAxis('cat', axis, first.ndim);
  for (const t of tensors) {
    const ok = t.ndim === first.ndim && t.shape.every((d, i) => i === ax || d === first.shape[i]) && t.dtype === first.dtype;
    if (!ok) throw new Error(`cat: tensors must share dtype and all dims but ${ax}; got ${tensors.map((x) => x.describe()).join(', ')}`);
  }
  const sizes = tensors.map((t) => t.shape[ax]!);
  const total = sizes.reduce((a, b) => a + b, 0);
  const out = empty(be, first.shape.map((d, i) => (i === ax ? total : d)), first.dtype);
  let at = 0;
  tensors.forEach((t, k) => {
    const dst = out.alias(t.shape, out.strides, out.offset + at * out.strides[ax]!);
    be.copy(t.view('cat'), dst.view(), false);
    dst.dispose();
    at += sizes[k]!;
  });
  if (!isFloat(first.dtype)) return out;
  return record(out, 'cat', tensors, [], (g) => {
    let s = 0;
    return sizes.map((n) => slice(g, ax, s, (s += n)));
  });
}

export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new Error('stack: expected a non-empty list of tensors');
  const first = tensors[0]!;
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((d, i) => d !== first.shape[i])) {
      throw new Error(`stack: all tensors must have one shape, got ${tensors.map((x) => shapeStr(x.shape)).join(', ')}`);
    }
  }
  const ax = normAxis('stack', axis, first.ndim + 1);
  const parts = tensors.map((t) => unsqueeze(t, ax));
  const out = cat(parts, ax);
  for (const p of parts) p.dispose();
  return out;
}

/** Split into pieces of `size` (last may be smaller) or of the listed sizes, as torch.split. Views. */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const ax = normAxis('split', axis, x.ndim);
  const n = x.shape[ax]!;
  let list: number[];
  if (typeof sizes === 'number') {
    if (!Number.isInteger(sizes) || sizes <= 0) throw new Error(`split: size must be a positive integer, got ${sizes}`);
    list = [];
    for (let s = 0; s < n; s += sizes) list.push(Math.min(sizes, n - s));
  } else {
    list = [...sizes];
    if (list.reduce((a, b) => a + b, 0) !== n) throw new Error(`split: sizes [${list.join(', ')}] do not sum to ${n} (axis ${ax} of ${x.describe()})`);
  }
  let s = 0;
  return list.map((len) => slice(x, ax, s, (s += len)));
}

export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  if (!Number.isInteger(chunks) || chunks <= 0) throw new Error(`chunk: chunks must be a positive integer, got ${chunks}`);
  const n = x.shape[normAxis('chunk', axis, x.ndim)]!;
  return split(x, Math.max(1, Math.ceil(n / chunks)), axis);
}

/** Constant padding, torch.nn.functional.pad order: [lastBefore, lastAfter, prevBefore, prevAfter, ...]. */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  const be = backendOf('pad', x);
  if (pads.length % 2 !== 0 || pads.length / 2 > x.ndim || pads.some((p) => !Number.isInteger(p) || p < 0)) {
    throw new Error(`pad: pads [${pads.join(', ')}] must be non-negative integer pairs for at most ${x.ndim} dims of ${x.describe()}`);
  }
  const before = new Array<number>(x.ndim).fill(0), after = new Array<number>(x.ndim).fill(0);
  for (let i = 0; i < pads.length / 2; i++) {
    before[x.ndim - 1 - i] = pads[2 * i]!;
    after[x.ndim - 1 - i] = pads[2 * i + 1]!;
  }
  const out = empty(be, x.shape.map((d, i) => d + before[i]! + after[i]!), x.dtype);
  be.fill(out.view(), value);
  const inner = out.alias(x.shape, out.strides, before.reduce((o, b, i) => o + b * out.strides[i]!, 0));
  be.copy(x.view('pad'), inner.view(), false);
  inner.dispose();
  if (!isFloat(x.dtype)) return out;
  return record(out, 'pad', [x], [], (g) => {
    let v = g.alias();
    for (let i = 0; i < x.ndim; i++) {
      if (before[i] === 0 && after[i] === 0) continue;
      const next = slice(v, i, before[i]!, before[i]! + x.shape[i]!);
      v.dispose();
      v = next;
    }
    return [v];
  });
}

function checkIndexTensor(op: string, index: Tensor): void {
  if (index.dtype !== 'int32' && index.dtype !== 'int64') throw new Error(`${op}: index must be int32 or int64, got ${index.describe()}`);
}

/** torch.gather: out[i][j][k] = x[i][index[i][j][k]][k] (for axis 1). */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  const be = backendOf('gather', x, index);
  checkIndexTensor('gather', index);
  const ax = normAxis('gather', axis, x.ndim);
  if (index.ndim !== x.ndim || index.shape.some((d, i) => i !== ax && d > x.shape[i]!)) {
    throw new Error(`gather: index ${index.describe()} must have the rank of ${x.describe()} and no larger dims except axis ${ax}`);
  }
  const out = empty(be, index.shape, x.dtype);
  be.gather(x.view('gather'), ax, index.view('gather'), out.view());
  if (!isFloat(x.dtype)) return out;
  return record(out, 'gather', [x], [index], (g, [idx]) => {
    const gx = zeros(x.shape, { dtype: g.dtype, device: g.device });
    gx.backend.scatterAdd(gx.view(), ax, idx!.view('gather backward'), g.view());
    return [gx];
  });
}

/** Rows (or slices along `axis`) picked by a 1-D index, as torch.index_select. */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  const be = backendOf('indexSelect', x, index);
  checkIndexTensor('indexSelect', index);
  if (index.ndim !== 1) throw new Error(`indexSelect: index must be 1-D, got ${index.describe()}`);
  const ax = normAxis('indexSelect', axis, x.ndim);
  const shape = x.shape.map((d, i) => (i === ax ? index.shape[0]! : d));
  // the 1-D index broadcast over the other axes is a gather index
  const idx = index.alias(shape, shape.map((_, i) => (i === ax ? index.strides[0]! : 0)), index.offset);
  const out = empty(be, shape, x.dtype);
  be.gather(x.view('indexSelect'), ax, idx.view(), out.view());
  idx.dispose();
  if (!isFloat(x.dtype)) return out;
  return record(out, 'indexSelect', [x], [index], (g, [ix]) => {
    const gx = zeros(x.shape, { dtype: g.dtype, device: g.device });
    const bidx = ix!.alias(shape, shape.map((_, i) => (i === ax ? ix!.strides[0]! : 0)), ix!.offset);
    gx.backend.scatterAdd(gx.view(), ax, bidx.view(), g.view());
    bidx.dispose();
    return [gx];
  });
}

/** Cast to a dtype (float16/bfloat16 round to nearest even). Differentiable between float dtypes. */
export function cast(x: Tensor, dtype: DType): Tensor {
  const be = backendOf('cast', x);
  if (!DTYPES.includes(dtype)) throw new Error(`cast: unknown dtype '${dtype}'`);
  // same dtype: a view that stays in the graph (a bare alias would silently cut the gradient off)
  if (dtype === x.dtype) return record(x.alias(), 'cast', [x], [], (g) => [g.alias()]);
  const out = empty(be, x.shape, dtype);
  be.copy(x.view('cast'), out.view(), false);
  if (!isFloat(x.dtype) || !isFloat(dtype)) return out;
  return record(out, 'cast', [x], [], (g) => [cast(g, x.dtype)]);
}

/** Move to another device; the gradient moves back. */
export function toDevice(x: Tensor, device: string): Tensor {
  x.assertAlive('to');
  if (device === x.device) return record(x.alias(), 'to', [x], [], (g) => [g.alias()]);
  const target = getBackend(device);
  const src = contiguous(x);
  const out = empty(target, x.shape, x.dtype);
  const data = src.backend.read(src.storage.buf);
  target.write(out.storage.buf, src.offset === 0 && data.length === x.size ? data : data.subarray(src.offset, src.offset + x.size));
  src.dispose();
  if (!isFloat(x.dtype)) return out;
  return record(out, 'to', [x], [], (g) => [toDevice(g, x.device)]);
}

/** .to(dtype) or .to(device): a dtype name casts, anything else names a device. */
export function to(x: Tensor, target: DType | string): Tensor {
  return (DTYPES as readonly string[]).includes(target) ? cast(x, target as DType) : toDevice(x, target);
}


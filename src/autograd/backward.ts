// Reverse-mode traversal: topologically order the graph below the root(s), run each node's gradient rule
// once with the summed gradient of its output, accumulate into leaves' .grad (then run the leaf's
// gradient-ready hooks, autograd/hooks.ts). A node's saved tensors are freed as soon as its rule has run
// (each node runs once per backward), so activations are released layer by layer as the backward walks
// down. Several roots with their gradients are one pass over the union of their graphs (a segment of a
// network whose outputs feed the next one).
import { emptyTensor, Tensor } from '../tensor/tensor.js';
import { keep, scope } from '../tensor/scope.js';
import { sameShape, shapeStr } from '../tensor/shape.js';
import { noGrad } from './grad-mode.js';
import { gradReady } from './hooks.js';
import { withAutocast } from './autocast-mode.js';
import type { GradNode } from './node.js';
import type { DType } from '../tensor/dtype.js';

export interface BackwardOptions {
  /** Keep saved tensors so backward can run through the same graph again. */
  retainGraph?: boolean;
}

function topoOrder(roots: readonly Tensor[]): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = roots.map((r) => [r, false]);
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const inp of t.gradFn?.inputs ?? []) if (inp.requiresGrad && !seen.has(inp)) stack.push([inp, false]);
  }
  return order; // inputs before outputs
}

function addInto(acc: Tensor, g: Tensor): Tensor {
  const out = emptyTensor(acc.backend, acc.shape, acc.dtype);
  out.backend.binary('add', acc.view('backward'), g.view('backward'), out.view());
  acc.dispose();
  g.dispose();
  return out;
}

/** A gradient in its input's dtype, as torch's engine casts: under autocast on a backend that computes in
 *  bf16, a float32 gradient flows back into a bf16 matmul output (and a rule must see matching dtypes). */
function inDtype(g: Tensor, dtype: DType): Tensor {
  if (g.dtype === dtype) return g;
  const out = emptyTensor(g.backend, g.shape, dtype);
  out.backend.copy(g.view('backward'), out.view(), false);
  g.dispose();
  return out;
}

/** Whether t is a buffer of its own: contiguous from its start and not sharing storage with anything else. */
const ownBuffer = (t: Tensor): boolean => t.storage.refCount === 1 && t.isContiguous() && t.offset === 0;

/** A gradient a leaf may own outright. */
function owned(g: Tensor): Tensor {
  if (ownBuffer(g)) return g;
  const out = emptyTensor(g.backend, g.shape, g.dtype);
  out.backend.copy(g.view('backward'), out.view(), false);
  g.dispose();
  return out;
}

/**
 * A region node's gradient added in place into its input's accumulator (made zero-filled if there is none
 * yet); false (nothing done) when the accumulator is not this backward's own contiguous buffer of the
 * input's dtype, or g is of another dtype: the node's rule then runs as usual.
 */
function scatterInto(node: GradNode, g: Tensor, grads: Map<Tensor, Tensor>): boolean {
  const inp = node.inputs[0]!;
  if (!inp.requiresGrad || g.dtype !== inp.dtype) return false;
  let acc = grads.get(inp);
  if (acc && !(ownBuffer(acc) && acc.dtype === inp.dtype)) return false;
  if (!acc) {
    acc = emptyTensor(inp.backend, inp.shape, inp.dtype);
    acc.backend.fill(acc.view('backward'), 0);
    grads.set(inp, acc);
  }
  const into = acc;
  scope(() => node.scatter!(g, into));
  return true;
}

/** The gradient a root starts with: ones for a scalar, else the given one (checked). */
function rootGrad(root: Tensor, grad: Tensor | null | undefined): Tensor {
  root.assertAlive('backward');
  if (!root.requiresGrad) throw new Error(`backward: ${root.describe()} does not require grad (no input of its graph has requiresGrad set)`);
  if (!grad) {
    if (root.size !== 1) throw new Error(`backward: called on a non-scalar ${root.describe()} without a gradient; pass one of shape ${shapeStr(root.shape)} or reduce to a scalar first`);
    const ones = emptyTensor(root.backend, root.shape, root.dtype);
    ones.backend.fill(ones.view(), 1);
    return ones;
  }
  grad.assertAlive('backward');
  if (!sameShape(grad.shape, root.shape)) throw new Error(`backward: gradient ${grad.describe()} does not match ${root.describe()}`);
  if (grad.device !== root.device) throw new Error(`backward: gradient on ${grad.device} but tensor on ${root.device}`);
  return grad.alias();
}

/**
 * Backpropagate from `root` (a scalar, or with `grad`), or from several roots at once, each with its
 * gradient (the same root twice sums its gradients).
 */
export function backward(root: Tensor | readonly Tensor[], grad?: Tensor | readonly (Tensor | null)[] | null, opts: BackwardOptions = {}): void {
  const roots = Array.isArray(root) ? (root as readonly Tensor[]) : [root as Tensor];
  const given = Array.isArray(grad) ? (grad as readonly (Tensor | null)[]) : [grad as Tensor | null | undefined];
  if (roots.length === 0) throw new Error('backward: no roots given');
  if (Array.isArray(root) && given.length !== roots.length) throw new Error(`backward: ${roots.length} roots but ${given.length} gradients`);
  const grads = new Map<Tensor, Tensor>();
  roots.forEach((r, i) => {
    const g = rootGrad(r, given[i]);
    const prev = grads.get(r);
    grads.set(r, prev ? addInto(prev, g) : g);
  });
  const order = topoOrder(roots);
  // gradient rules run with autocast off: they keep the dtypes their forward produced
  withAutocast(null, () => noGrad(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t.gradFn) {
        const prev = t.grad;
        if (prev && !prev.isDisposed) {
          t.backend.copy(g.view('backward'), prev.view('backward'), true);
          g.dispose();
        } else {
          t.grad = keep(owned(g));
        }
        gradReady(t);
        continue;
      }
      const node = t.gradFn;
      if (node.scatter && scatterInto(node, g, grads)) {
        g.dispose();
        if (!opts.retainGraph) node.release();
        continue;
      }
      // intermediates of the rule die with this scope; only the returned gradients survive
      const inGrads = scope(() => node.apply(g));
      g.dispose();
      if (!opts.retainGraph) node.release();
      node.inputs.forEach((inp, k) => {
        const ig = inGrads[k];
        if (!ig) return;
        if (!inp.requiresGrad) {
          ig.dispose();
          return;
        }
        if (!sameShape(ig.shape, inp.shape)) {
          throw new Error(`backward: gradient rule of '${node.op}' returned shape ${shapeStr(ig.shape)} for input ${k} of shape ${shapeStr(inp.shape)} (internal error)`);
        }
        const acc = grads.get(inp), cast = inDtype(ig, inp.dtype);
        grads.set(inp, acc ? addInto(acc, cast) : cast);
      });
    }
  }));
}

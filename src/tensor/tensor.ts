// Tensor: a strided view (shape, strides, offset, dtype) onto reference-counted backend storage.
// Methods for ops are attached by ops/methods.ts so this file depends on nothing above it.
import type { Backend, BackendBuffer, View } from '../backends/backend.js';
import type { GradNode } from '../autograd/node.js';
import { isFloat, type DType } from './dtype.js';
import { track } from './scope.js';
import { contiguousStrides, isContiguous, numel, shapeStr } from './shape.js';

/**
 * A buffer and the number of tensors viewing it; freed on the backend when the last one is disposed.
 * A storage can also be *evicted*: its buffer is freed while the storage (and every tensor viewing it,
 * including the aliases autograd saved) lives on, until refill() gives it a fresh buffer of the same size.
 * ZeRO-3 does this to parameters between the uses of their block; using an evicted tensor throws.
 */
export class Storage {
  private refs = 0;
  freed = false;
  /** Why the data is gone while the storage lives (evict()), for the error a use of it throws. */
  evicted: string | null = null;
  constructor(readonly backend: Backend, private buffer: BackendBuffer) {}
  get buf(): BackendBuffer {
    return this.buffer;
  }
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0) {
      this.freed = true;
      if (!this.evicted) this.backend.free(this.buffer);
    }
  }
  get refCount(): number {
    return this.refs;
  }
  /** Free the data but keep the storage; `why` completes the error of any use until refill(). Idempotent. */
  evict(why: string): void {
    if (this.freed) throw new Error('Storage.evict: the storage was freed');
    if (this.evicted) return;
    this.backend.free(this.buffer);
    this.evicted = why;
  }
  /** Give an evicted storage a fresh buffer of its size (contents undefined: write them next). */
  refill(): void {
    if (this.freed) throw new Error('Storage.refill: the storage was freed');
    if (!this.evicted) return;
    this.buffer = this.backend.alloc(this.buffer.dtype, this.buffer.size);
    this.evicted = null;
  }
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  requiresGrad = false;
  /** Accumulated gradient of a leaf after backward(); owned by this tensor. */
  grad: Tensor | null = null;
  /** The node that produced this tensor, when it was computed from tensors that require grad. */
  gradFn: GradNode | null = null;
  /** Optional label used in error messages and parameter listings. */
  name?: string;
  private disposed = false;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
    readonly offset: number,
    readonly dtype: DType,
    tracked = true,
  ) {
    storage.retain();
    if (tracked) track(this);
  }

  get device(): string {
    return this.storage.backend.name;
  }
  get backend(): Backend {
    return this.storage.backend;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  get isDisposed(): boolean {
    return this.disposed || this.storage.freed;
  }
  get isLeaf(): boolean {
    return this.gradFn === null;
  }
  isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }

  /** Throws naming the op if this tensor's memory was released. */
  assertAlive(op: string): this {
    if (this.isDisposed) throw new Error(`${op}: use of a disposed tensor (${this.describe()}); it was freed by dispose() or by the end of its scope`);
    if (this.storage.evicted) throw new Error(`${op}: ${this.describe()} holds no data here: ${this.storage.evicted}`);
    return this;
  }

  /** The backend-level view of this tensor. */
  view(op = 'kernel'): View {
    this.assertAlive(op);
    return { buf: this.storage.buf, shape: this.shape, strides: this.strides, offset: this.offset };
  }

  /** A new tensor object over the same storage (a view); `tracked` false for graph-owned aliases. */
  alias(shape = this.shape, strides = this.strides, offset = this.offset, tracked = true): Tensor {
    this.assertAlive('view');
    return new Tensor(this.storage, shape, strides, offset, this.dtype, tracked);
  }

  requiresGrad_(flag = true): this {
    if (flag && !isFloat(this.dtype)) throw new Error(`requiresGrad_: only floating-point tensors can require grad, got ${this.describe()}`);
    this.requiresGrad = flag;
    return this;
  }

  /** Release this tensor's reference to its storage (and its gradient). Idempotent. Its graph node is
   *  owned by the scope that created it (or freed by backward), since later nodes may still need it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
    this.grad?.dispose();
    this.grad = null;
  }

  /**
   * The graph nodes a backward() from this tensor would run (kept alive when a scope returns it). With
   * `within`, only nodes it accepts are yielded and walked through (a scope passes its own members: a
   * node created before the scope began has no ancestors inside it).
   */
  *dependencies(within?: (n: GradNode) => boolean): Iterable<GradNode> {
    const seen = new Set<GradNode>();
    const todo = this.gradFn ? [this.gradFn] : [];
    while (todo.length) {
      const n = todo.pop()!;
      if (seen.has(n) || (within && !within(n))) continue;
      seen.add(n);
      yield n;
      for (const i of n.inputs) if (i.gradFn) todo.push(i.gradFn);
    }
  }

  /** Set (or clear) the gradient, disposing the previous one. */
  setGrad(g: Tensor | null): void {
    if (this.grad && this.grad !== g) this.grad.dispose();
    this.grad = g;
  }

  /** Copy the elements to the host as a contiguous typed array (float16/bfloat16 decode to float32). */
  toArray(): Float32Array | Float64Array | Int32Array | Uint8Array {
    return readContiguous(this);
  }

  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor must have exactly one element, got ${this.describe()}`);
    return this.toArray()[0]!;
  }

  /** Nested JavaScript arrays, like torch's tolist(). */
  tolist(): unknown {
    const data = Array.from(this.toArray());
    const build = (dim: number, start: number): unknown => {
      if (dim === this.ndim) return data[start];
      const step = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, start + i * step));
    };
    return build(0, 0);
  }

  describe(): string {
    return `${this.name ? `'${this.name}' ` : ''}${this.dtype}${shapeStr(this.shape)} on ${this.device}`;
  }

  toString(): string {
    return `Tensor(${this.describe()})`;
  }
}

/** Hooks set by ops/ so toArray can run a contiguous copy without tensor/ importing ops/. */
export const tensorHooks: { readContiguous?: (t: Tensor) => Float32Array | Float64Array | Int32Array | Uint8Array } = {};

function readContiguous(t: Tensor): Float32Array | Float64Array | Int32Array | Uint8Array {
  t.assertAlive('toArray');
  if (!tensorHooks.readContiguous) throw new Error('toArray: ops are not loaded (import lavender from its index)');
  return tensorHooks.readContiguous(t);
}

/** Allocate an uninitialised contiguous tensor. */
export function emptyTensor(backend: Backend, shape: readonly number[], dtype: DType): Tensor {
  const buf = backend.alloc(dtype, numel(shape));
  return new Tensor(new Storage(backend, buf), [...shape], contiguousStrides(shape), 0, dtype);
}

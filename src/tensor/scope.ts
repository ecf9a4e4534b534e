// Deterministic lifetimes. Every tensor (and autograd graph node) created inside scope(fn) is disposed when
// fn returns, except the tensors fn returns (found in arrays and plain objects), the graph they need for a
// later backward(), and tensors passed to keep(). Disposing a graph node frees the tensors it saved. GPU backends cannot
// wait for the garbage collector, so a training step runs inside a scope and memory stays flat.

export interface Disposable {
  dispose(): void;
  /** Scope-owned objects this one still depends on (a tensor's autograd graph): kept alive with it.
   *  `within` limits the walk to objects it accepts (the scope's own). */
  dependencies?(within?: (d: Disposable) => boolean): Iterable<Disposable>;
}

const stack: Set<Disposable>[] = [];

export function track(t: Disposable): void {
  stack[stack.length - 1]?.add(t);
}

/** Take t out of every enclosing scope: it lives until disposed by hand. Returns t. */
export function keep<T extends Disposable>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

export function scopeDepth(): number {
  return stack.length;
}

function collect(value: unknown, into: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if (into.has(value)) return;
  if (typeof (value as Disposable).dispose === 'function' && !Array.isArray(value) && Object.getPrototypeOf(value) !== Object.prototype) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, into, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collect(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, into, depth + 1);
}

/** Run fn; dispose every tensor it created that is neither returned nor kept. Synchronous fns only. */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Disposable>();
  stack.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  stack.pop();
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    for (const t of mine) t.dispose();
    throw new Error('scope: the function returned a Promise; scope() only manages synchronous code (await outside, then scope the synchronous step)');
  }
  const returned = new Set<unknown>();
  collect(result, returned);
  // what the returned values depend on (graph nodes needed by a later backward) survives too; nodes
  // created outside this scope are not ours to keep, and nothing made inside it is behind them
  const inMine = (d: Disposable) => mine.has(d);
  for (const r of [...returned]) for (const d of (r as Disposable).dependencies?.(inMine) ?? []) returned.add(d);
  const parent = stack[stack.length - 1];
  for (const t of mine) {
    if (returned.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

// The byte-pair merge loop shared by the SentencePiece and HF tokenizer.json readers: adjacent symbols are
// merged, best pair first, until no adjacent pair has a merge. "Best" is the lowest priority value; among
// equals, the leftmost pair. SentencePiece ranks a pair by the score of the merged piece (priority =
// -score); HF by the merge's position in its list. A merge is looked up on the current strings, so a
// pair queued before one of its sides changed is skipped when it comes up.

interface Pair {
  priority: number;
  left: number;
  right: number;
  /** The two strings when queued: a stale entry no longer matches. */
  l: string;
  r: string;
}

/** A binary min-heap on (priority, left). */
class Heap {
  private a: Pair[] = [];
  get size(): number {
    return this.a.length;
  }
  private less(x: Pair, y: Pair): boolean {
    return x.priority < y.priority || (x.priority === y.priority && x.left < y.left);
  }
  push(p: Pair): void {
    const a = this.a;
    a.push(p);
    for (let i = a.length - 1; i > 0;) {
      const up = (i - 1) >> 1;
      if (!this.less(a[i]!, a[up]!)) break;
      [a[i], a[up]] = [a[up]!, a[i]!];
      i = up;
    }
  }
  pop(): Pair {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Merge `symbols` in place of a linked list. `priority(l, r)` is the merge's priority or undefined when the
 * pair does not merge; `frozen[i]` symbols never merge (user-defined pieces, byte-fallback bytes).
 * `onMerge` sees each merge (SentencePiece uses it to undo merges into unused pieces).
 */
export function bpeMerge(symbols: string[], priority: (l: string, r: string) => number | undefined, frozen?: readonly boolean[], onMerge?: (merged: string, l: string, r: string) => void): string[] {
  const n = symbols.length;
  if (n < 2) return symbols.slice();
  const sym = symbols.slice();
  const prev = Array.from({ length: n }, (_, i) => i - 1);
  const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
  const heap = new Heap();
  const consider = (left: number, right: number): void => {
    if (left < 0 || right < 0 || frozen?.[left] || frozen?.[right]) return;
    const p = priority(sym[left]!, sym[right]!);
    if (p !== undefined) heap.push({ priority: p, left, right, l: sym[left]!, r: sym[right]! });
  };
  for (let i = 1; i < n; i++) consider(i - 1, i);
  while (heap.size) {
    const top = heap.pop();
    const { left, right } = top;
    if (sym[left] !== top.l || sym[right] !== top.r || next[left] !== right) continue; // stale
    const merged = top.l + top.r;
    onMerge?.(merged, top.l, top.r);
    sym[left] = merged;
    sym[right] = '';
    next[left] = next[right]!;
    if (next[right]! >= 0) prev[next[right]!] = left;
    consider(prev[left]!, left);
    consider(left, next[left]!);
  }
  const out: string[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
  return out;
}

/** A string split into Unicode characters (code points). */
export function chars(s: string): string[] {
  return Array.from(s);
}

/** The piece name of a byte under byte fallback, as both formats spell it: <0x41>. */
export function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

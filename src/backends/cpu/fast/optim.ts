// Fused optimizer steps on the cpu (kernels/wasm/optim.ts): a parameter group in one job. The scalars are
// rounded to float32 exactly as the composed ops would round them, so the step equals the decomposition.
import type { AdamWHyper, AdamWParam, SgdHyper, SgdParam, View } from '../../backend.js';
import { ADAM, hit, kernels, runJob, SGD, type Kernels } from './kernels.js';
import { allF32, Operands } from './operands.js';
import { tuning } from './elementwise.js';

/** Elements per task. */
const CHUNK = 32768;

const size = (v: View): number => v.shape.reduce((a, b) => a * b, 1);

function dense(v: View): boolean {
  let s = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    if (v.shape[d] !== 1 && v.strides[d] !== s) return false;
    s *= v.shape[d]!;
  }
  return true;
}

/** Splits each entry into chunks; writes `fields(entry, start, len)` rows into a heap table; runs `kind`. */
function runChunked<T>(k: Kernels, items: readonly T[], n: (t: T) => number, fields: (t: T, start: number, len: number) => number[],
  width: number, setParams: (table: number, chunks: number) => void): boolean {
  const rows: number[][] = [];
  let total = 0;
  for (const it of items) {
    const m = n(it);
    total += m;
    for (let s = 0; s < m; s += CHUNK) rows.push(fields(it, s, Math.min(CHUNK, m - s)));
  }
  if (rows.length === 0) return true;
  const bytes = rows.length * width * 8;
  const table = k.heap.alloc(bytes);
  if (table < 0) return false;
  try {
    const t = new Float64Array(k.heap.buffer(), table, rows.length * width);
    rows.forEach((r, i) => t.set(r, i * width));
    setParams(table, rows.length);
    runJob(k, rows.length, total >= tuning.parallelElems);
  } finally {
    k.heap.free(table, bytes);
  }
  return true;
}

export function fastAdam(params: readonly AdamWParam[], hp: AdamWHyper): boolean {
  const k = kernels();
  if (!k) return false;
  for (const e of params) {
    if (e.pLow || !allF32(e.p, e.g, e.m, e.v) || ![e.p, e.g, e.m, e.v].every(dense)) return false;
    const n = size(e.p);
    if (size(e.g) !== n || size(e.m) !== n || size(e.v) !== n) return false;
  }
  const ops = new Operands(k);
  let ok = false;
  try {
    const addrs = params.map((e) => [ops.view(e.p, true), ops.view(e.g), ops.view(e.m, true), ops.view(e.v, true)]);
    if (addrs.some((a) => a.some((x) => x < 0))) return false;
    const f = Math.fround;
    ok = runChunked(k, params.map((e, i) => ({ e, a: addrs[i]! })), ({ e }) => size(e.p), ({ e, a }, start, len) => [
      a[0]!, a[1]!, a[2]!, a[3]!, start, len,
      f(-(hp.lr / (1 - hp.beta1 ** e.step))), f(Math.sqrt(1 - hp.beta2 ** e.step)), f(1 - hp.lr * hp.weightDecay),
    ], 9, (table, chunks) => {
      const p = k.params;
      p[0] = ADAM; p[1] = table; p[2] = chunks; p[3] = hp.decoupled ? 1 : 0; p[4] = f(hp.weightDecay);
      p[5] = f(hp.beta1); p[6] = f(1 - hp.beta1); p[7] = f(hp.beta2); p[8] = f(1 - hp.beta2); p[9] = f(hp.eps); p[10] = f(hp.gradScale ?? 1);
    });
    if (ok) hit('adamw');
  } finally {
    if (ok) ops.finish(); else ops.abort();
  }
  return ok;
}

export function fastSgd(params: readonly SgdParam[], hp: SgdHyper): boolean {
  const k = kernels();
  if (!k) return false;
  for (const e of params) {
    if (!allF32(e.p, e.g, e.buf) || ![e.p, e.g, ...(e.buf ? [e.buf] : [])].every(dense)) return false;
    if (size(e.g) !== size(e.p) || (e.buf && size(e.buf) !== size(e.p))) return false;
  }
  const ops = new Operands(k);
  let ok = false;
  try {
    const addrs = params.map((e) => [ops.view(e.p, true), ops.view(e.g), e.buf ? ops.view(e.buf, true) : 0]);
    if (addrs.some((a) => a.some((x) => x < 0))) return false;
    const f = Math.fround;
    ok = runChunked(k, params.map((e, i) => ({ e, a: addrs[i]! })), ({ e }) => size(e.p), ({ a }, start, len) => [a[0]!, a[1]!, a[2]!, start, len], 5,
      (table, chunks) => {
        const p = k.params;
        p[0] = SGD; p[1] = table; p[2] = chunks; p[3] = f(hp.lr); p[4] = f(hp.momentum); p[5] = f(hp.weightDecay);
      });
    if (ok) hit('sgd');
  } finally {
    if (ok) ops.finish(); else ops.abort();
  }
  return ok;
}

// Host side of the fused composite kernels (kernels/wasm/fused.ts): SwiGLU forward/backward and the
// rotary embedding, over contiguous float32 operands (in the heap, or staged).
import type { View } from '../../backend.js';
import { hit, kernels, ROTARY, runJob, SWIGLU, SWIGLU_BWD, type Kernels } from './kernels.js';
import { allF32, Operands } from './operands.js';
import { tuning } from './elementwise.js';

const size = (v: View): number => v.shape.reduce((a, b) => a * b, 1);

function dense(v: View | null): boolean {
  if (!v) return true;
  let s = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    if (v.shape[d] !== 1 && v.strides[d] !== s) return false;
    s *= v.shape[d]!;
  }
  return true;
}

function run(views: (View | null)[], n: number, fn: (k: Kernels, addrs: number[]) => void, written: boolean[]): boolean {
  const k = kernels();
  if (!k || !allF32(...views) || !views.every(dense) || n === 0) return false;
  const ops = new Operands(k);
  let ok = false;
  try {
    const addrs = views.map((v, i) => (v ? ops.view(v, written[i]) : 0));
    if (addrs.some((a) => a < 0)) return false;
    fn(k, addrs);
    ok = true;
  } finally {
    if (ok) ops.finish(); else ops.abort();
  }
  return ok;
}

const tasksFor = (n: number): number => (n >= tuning.parallelElems ? tuning.tasks : 1);

export function fastSwiglu(a: View, b: View, out: View): boolean {
  const n = size(a);
  return run([a, b, out], n, (k, [pa, pb, po]) => {
    hit('swiglu');
    const T = tasksFor(n), p = k.params;
    p[0] = SWIGLU; p[1] = pa!; p[2] = pb!; p[3] = po!; p[4] = n; p[5] = T;
    runJob(k, T, T > 1);
  }, [false, false, true]);
}

export function fastSwigluBackward(a: View, b: View, g: View, da: View | null, db: View | null): boolean {
  const n = size(a);
  return run([a, b, g, da, db], n, (k, [pa, pb, pg, pda, pdb]) => {
    hit('swigluBackward');
    const T = tasksFor(n), p = k.params;
    p[0] = SWIGLU_BWD; p[1] = pa!; p[2] = pb!; p[3] = pg!; p[4] = pda!; p[5] = pdb!; p[6] = n; p[7] = T;
    runJob(k, T, T > 1);
  }, [false, false, false, true, true]);
}

export function fastRotary(x: View, cos: View, sin: View, out: View, inverse: boolean): boolean {
  const [B, T, H, hd] = x.shape as [number, number, number, number];
  const rows = B * T * H;
  return run([x, cos, sin, out], rows * hd, (k, [px, pc, ps, po]) => {
    hit('rotary');
    const tasks = Math.min(rows, tasksFor(rows * hd)), p = k.params;
    p[0] = ROTARY; p[1] = px!; p[2] = pc!; p[3] = ps!; p[4] = po!; p[5] = rows; p[6] = H; p[7] = T; p[8] = hd; p[9] = inverse ? 1 : 0; p[10] = tasks;
    runJob(k, tasks, tasks > 1);
  }, [false, false, false, true]);
}

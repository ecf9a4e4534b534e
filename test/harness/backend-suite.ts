// The cross-backend suite: every op case, run on `device` and on `cpu` with the same random inputs
// (fast-check), must agree forward and backward. One side gets its inputs as offset, transposed or
// strided views (the other contiguous), so a kernel that mishandles a layout shows too. Cases with a
// `large` tier run again at shapes that reach the cpu backend's wasm kernels, and the suite checks
// (the kernels' hit counters, fastHits) that those kernels really ran. A new backend gets the whole suite by
// calling runBackendSuite(name) from a test file (test/backends.test.ts does so for every registered backend).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'node:test';
import * as L from '../../src/index.js';
import { rowopsAvailable } from '../../src/backends/cpu/fast/rowops.js';
import { sgemmInfo } from '../../src/backends/cpu/fast/sgemm.js';
import { layoutsArb, layoutsFor } from './arbitraries.js';
import { describeLayout, makeInputs, type InputSpec, type Layout } from './gradcheck.js';
import { OP_CASES, type CaseInput, type OpCase } from './op-cases.js';
import { fastHits } from '../../src/backends/cpu/fast/kernels.js';

export interface SuiteOptions {
  rtol?: number;
  atol?: number;
  numRuns?: number;
  /** Case names to leave out, each with the reason (reported as a skipped test). */
  skip?: Record<string, string>;
}

interface Evaluated {
  shape: number[];
  out: number[];
  grads: (number[] | null)[];
}

function evaluate(c: OpCase, inputs: InputSpec[], params: Record<string, unknown>, device: string, layouts?: Layout[]): Evaluated {
  return L.scope(() => {
    const diff = c.differentiable !== false;
    const xs = makeInputs(inputs, { dtype: 'float32', device, requiresGrad: diff, layouts });
    const out = c.run(xs, params);
    const result: Evaluated = { shape: [...out.shape], out: Array.from(out.toArray()), grads: [] };
    if (diff) {
      const W = L.randn(out.shape, { generator: new L.Generator(99) }).to(device);
      L.sum(L.mul(out, W)).backward();
      result.grads = xs.map((x) => (x.grad ? Array.from(x.grad.toArray()) : null));
    }
    return result;
  });
}

function close(a: number[], b: number[], rtol: number, atol: number): string | null {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (!(Math.abs(x - y) <= atol + rtol * Math.abs(y))) return `element ${i}: ${x} vs cpu ${y}`;
  }
  return null;
}

/** `layouts` apply to the inputs of the `device` side (viewsOn 'device') or of the cpu side ('cpu'). */
export function compareWithCpu(c: OpCase, inputs: InputSpec[], params: Record<string, unknown>, device: string, rtol: number, atol: number,
  layouts?: Layout[], viewsOn: 'device' | 'cpu' = 'device'): void {
  const got = evaluate(c, inputs, params, device, viewsOn === 'device' ? layouts : undefined);
  const want = evaluate(c, inputs, params, 'cpu', viewsOn === 'cpu' ? layouts : undefined);
  const views = layouts ? `, ${viewsOn} inputs ${layouts.map(describeLayout).join(' / ')}` : '';
  const where = `${c.name} on ${device}, inputs ${JSON.stringify(inputs.map((i) => i.shape))}${views}, params ${JSON.stringify(params)}`;
  if (got.shape.join() !== want.shape.join()) throw new Error(`${where}: output shape [${got.shape}] vs cpu [${want.shape}]`);
  const fwd = close(got.out, want.out, rtol, atol);
  if (fwd) throw new Error(`${where}: forward differs at ${fwd}`);
  want.grads.forEach((g, k) => {
    const h = got.grads[k];
    if ((g === null) !== (h === null || h === undefined)) throw new Error(`${where}: gradient of input ${k} present on one backend only`);
    const d = g && h ? close(h, g, rtol, atol) : null;
    if (d) throw new Error(`${where}: gradient of input ${k} differs at ${d}`);
  });
}

/** Whether the cpu backend's wasm kernels are loaded; LAVENDER_REQUIRE_SIMD=1 (set by .ci/run) makes their absence a failure. */
export function simdKernels(): { available: boolean; reason: string } {
  const rows = rowopsAvailable(), gemm = sgemmInfo().simd;
  const available = rows && gemm;
  const reason = available ? '' : `wasm SIMD kernels unavailable here (row kernels ${rows}, sgemm ${gemm})`;
  if (!available && process.env.LAVENDER_REQUIRE_SIMD === '1') assert.fail(`${reason}, but LAVENDER_REQUIRE_SIMD=1 requires them`);
  return { available, reason };
}

/** The op cases' kernel names as the cpu backend's hit counters (fastHits) spell them. */
const WASM_KERNEL_NAMES: Record<string, string> = { tile: 'matmul' };

export function runBackendSuite(device: string, opts: SuiteOptions = {}): void {
  const { rtol = 1e-4, atol = 1e-5, numRuns = 30, skip = {} } = opts;
  // the large tier keeps cpu's inputs contiguous: the wasm kernels take dense rows
  const property = (c: OpCase, arb: fc.Arbitrary<CaseInput>, sides: ('device' | 'cpu')[] = ['device', 'cpu']) =>
    fc.property(arb, layoutsArb, fc.constantFrom(...sides), ({ inputs, params }, picks, viewsOn) =>
      compareWithCpu(c, inputs, params, device, rtol, atol, layoutsFor(picks, inputs), viewsOn));
  for (const c of OP_CASES) {
    const kind = c.differentiable === false ? 'forward' : 'forward and backward';
    const name = `[${device}] ${c.name} matches cpu (${kind}, random shapes and layouts)`;
    if (skip[c.name]) {
      test(name, { skip: skip[c.name] }, () => {});
      continue;
    }
    test(name, () => {
      fc.assert(property(c, c.arb), { numRuns, includeErrorInReport: true });
    });
    if (!c.large) continue;
    const large = c.large;
    test(`[${device}] ${c.name} matches cpu at shapes that reach the wasm kernels (${large.kernels.join(', ')})`, () => {
      const before = { ...fastHits };
      fc.assert(property(c, large.arb, ['device']), { numRuns: 3, includeErrorInReport: true });
      const simd = simdKernels();
      if (!simd.available) return; // reported by the 'wasm kernels load' test
      const ran = Object.fromEntries(Object.entries(fastHits).map(([k, n]) => [k, n - (before[k] ?? 0)]).filter(([, n]) => (n as number) > 0));
      for (const k of large.kernels) {
        const name = WASM_KERNEL_NAMES[k] ?? k;
        assert.ok((ran[name] ?? 0) > 0, `${c.name}: the wasm kernel '${name}' never ran (ran: ${JSON.stringify(ran)}); the large shapes no longer reach the fast path`);
      }
    });
  }
  test(`[${device}] random streams match cpu`, () => {
    fc.assert(fc.property(fc.nat(), fc.integer({ min: 1, max: 300 }), (seed, n) => {
      L.scope(() => {
        const a = L.randn([n], { generator: new L.Generator(seed), device }).to('cpu').toArray();
        const b = L.randn([n], { generator: new L.Generator(seed) }).toArray();
        const d = close(Array.from(a), Array.from(b), 1e-6, 1e-6);
        if (d) throw new Error(`randn(seed ${seed}) on ${device} differs from cpu at ${d}`);
      });
    }), { numRuns: 20 });
  });
}

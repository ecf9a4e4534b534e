// The cross-backend suite: every op case, run on `device` and on `cpu` with the same random inputs
// (fast-check), must agree forward and backward. A new backend gets the whole suite by calling
// runBackendSuite(name) from a test file (test/backends.test.ts does so for every registered backend).
import fc from 'fast-check';
import { test } from 'node:test';
import * as L from '../../src/index.js';
import { makeInputs, type InputSpec } from './gradcheck.js';
import { OP_CASES, type OpCase } from './op-cases.js';

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

function evaluate(c: OpCase, inputs: InputSpec[], params: Record<string, unknown>, device: string): Evaluated {
  return L.scope(() => {
    const diff = c.differentiable !== false;
    const xs = makeInputs(inputs, { dtype: 'float32', device, requiresGrad: diff });
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

export function compareWithCpu(c: OpCase, inputs: InputSpec[], params: Record<string, unknown>, device: string, rtol: number, atol: number): void {
  const got = evaluate(c, inputs, params, device);
  const want = evaluate(c, inputs, params, 'cpu');
  const where = `${c.name} on ${device}, inputs ${JSON.stringify(inputs.map((i) => i.shape))}, params ${JSON.stringify(params)}`;
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

export function runBackendSuite(device: string, opts: SuiteOptions = {}): void {
  const { rtol = 1e-4, atol = 1e-5, numRuns = 30, skip = {} } = opts;
  for (const c of OP_CASES) {
    const kind = c.differentiable === false ? 'forward' : 'forward and backward';
    const name = `[${device}] ${c.name} matches cpu (${kind}, random shapes)`;
    if (skip[c.name]) {
      test(name, { skip: skip[c.name] }, () => {});
      continue;
    }
    test(name, () => {
      fc.assert(fc.property(c.arb, ({ inputs, params }) => compareWithCpu(c, inputs, params, device, rtol, atol)), { numRuns });
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

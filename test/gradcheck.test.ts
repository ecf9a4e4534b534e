// Every differentiable op's gradient against float64 central differences, on random shapes (some with
// zero-size dims), values and memory layouts of the inputs (offset, transposed and strided views).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'node:test';
import { layoutsArb, layoutsFor } from './harness/arbitraries.js';
import { describeLayout, gradcheck } from './harness/gradcheck.js';
import { OP_CASES } from './harness/op-cases.js';

for (const c of OP_CASES) {
  if (c.differentiable === false) continue;
  test(`gradient of ${c.name} matches finite differences (float64, random shapes and layouts)`, () => {
    fc.assert(
      fc.property(c.arb, layoutsArb, ({ inputs, params }, picks) => {
        const layouts = layoutsFor(picks, inputs);
        const r = gradcheck((...xs) => c.run(xs, params), inputs, { layouts });
        assert.ok(r.ok, `${c.name} ${JSON.stringify(inputs.map((i) => i.shape))} layouts ${layouts.map(describeLayout).join(', ')} ${JSON.stringify(params)}: worst ${JSON.stringify(r.worst)}`);
      }),
      { numRuns: 40, includeErrorInReport: true },
    );
  });
}

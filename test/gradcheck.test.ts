// Every differentiable op's gradient against float64 central differences, on random shapes and values.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { test } from 'node:test';
import { gradcheck } from './harness/gradcheck.js';
import { OP_CASES } from './harness/op-cases.js';

for (const c of OP_CASES) {
  if (c.differentiable === false) continue;
  test(`gradient of ${c.name} matches finite differences (float64, random shapes)`, () => {
    fc.assert(
      fc.property(c.arb, ({ inputs, params }) => {
        const r = gradcheck((...xs) => c.run(xs, params), inputs);
        assert.ok(r.ok, `${c.name} ${JSON.stringify(inputs.map((i) => i.shape))} ${JSON.stringify(params)}: worst ${JSON.stringify(r.worst)}`);
      }),
      { numRuns: 40 },
    );
  });
}

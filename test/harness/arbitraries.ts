// fast-check generators for op inputs: shapes, broadcast-compatible shape pairs, well-conditioned values.
import fc from 'fast-check';
import type { InputSpec } from './gradcheck.js';

export const dim = (max = 4) => fc.integer({ min: 1, max });
export const shapeArb = (minRank = 0, maxRank = 3, maxDim = 4) => fc.array(dim(maxDim), { minLength: minRank, maxLength: maxRank });

export type Domain = 'any' | 'positive' | 'unit' | 'awayFromZero';

/** Values on a 1/1000 grid, so numbers are moderate and exactly reproducible. */
export function valueArb(domain: Domain): fc.Arbitrary<number> {
  switch (domain) {
    case 'any': return fc.integer({ min: -2000, max: 2000 }).map((i) => i / 1000);
    case 'positive': return fc.integer({ min: 100, max: 3000 }).map((i) => i / 1000);
    case 'unit': return fc.integer({ min: -850, max: 850 }).map((i) => i / 1000);
    case 'awayFromZero': return fc.integer({ min: -2000, max: 2000 }).map((i) => (i >= 0 ? i + 50 : i - 50) / 1000);
  }
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export function tensorArb(shape: fc.Arbitrary<number[]>, domain: Domain = 'any'): fc.Arbitrary<InputSpec> {
  return shape.chain((s) => fc.array(valueArb(domain), { minLength: size(s), maxLength: size(s) }).map((data) => ({ shape: s, data })));
}

export function specOf(shape: number[], domain: Domain = 'any'): fc.Arbitrary<InputSpec> {
  return tensorArb(fc.constant(shape), domain);
}

/** Integer index tensor of `shape` with values in [0, bound). */
export function indexArb(shape: number[], bound: number): fc.Arbitrary<InputSpec> {
  return fc.array(fc.integer({ min: 0, max: bound - 1 }), { minLength: size(shape), maxLength: size(shape) }).map((data) => ({ shape, data, int: true }));
}

/** Two shapes that broadcast together: drop leading dims and set some dims to 1 in each. */
export const broadcastPairArb = shapeArb(0, 4).chain((out) =>
  fc.tuple(
    ...[0, 1].map(() =>
      fc.tuple(fc.integer({ min: 0, max: out.length }), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length })).map(([drop, ones]) =>
        out.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d)),
      ),
    ),
  ),
);

/** Non-empty sorted subset of the axes of a rank-r tensor, or undefined (all axes). */
export function axesArb(rank: number): fc.Arbitrary<number[] | undefined> {
  if (rank === 0) return fc.constant(undefined);
  return fc.oneof(fc.constant(undefined), fc.subarray([...Array(rank).keys()], { minLength: 1 }));
}

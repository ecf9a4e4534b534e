// fast-check generators for op inputs: shapes, broadcast-compatible shape pairs, well-conditioned values.
import fc from 'fast-check';
import { permutationOf, type InputSpec, type Layout } from './gradcheck.js';

export const dim = (max = 4) => fc.integer({ min: 1, max });
/** A dim that is 0 about one time in eight (empty tensors). */
export const dimZ = (max = 4) => fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: 1, max }), weight: 7 });
/** Shapes; with `zero`, dims may be 0. */
export const shapeArb = (minRank = 0, maxRank = 3, maxDim = 4, zero = false) =>
  fc.array(zero ? dimZ(maxDim) : dim(maxDim), { minLength: minRank, maxLength: maxRank });

/** A memory layout, resolved against an input's rank by layoutFor. */
export interface LayoutPick { kind: Layout['kind']; k: number; offset: number; step: number }
export const layoutPickArb: fc.Arbitrary<LayoutPick> = fc.record({
  kind: fc.oneof({ arbitrary: fc.constant('contiguous' as const), weight: 2 }, { arbitrary: fc.constant('offset' as const), weight: 1 },
    { arbitrary: fc.constant('permuted' as const), weight: 2 }, { arbitrary: fc.constant('strided' as const), weight: 2 }),
  k: fc.nat({ max: 719 }),
  offset: fc.integer({ min: 1, max: 5 }),
  step: fc.integer({ min: 2, max: 3 }),
});
/** One layout pick per input (cases have at most 4 inputs). */
export const layoutsArb = fc.array(layoutPickArb, { minLength: 4, maxLength: 4 });

export function layoutFor(p: LayoutPick, rank: number): Layout {
  switch (p.kind) {
    case 'contiguous': return { kind: 'contiguous' };
    case 'offset': return { kind: 'offset', offset: p.offset };
    case 'permuted': return rank < 2 ? { kind: 'offset', offset: p.offset } : { kind: 'permuted', order: permutationOf(rank, p.k), offset: p.offset - 1 };
    case 'strided': return { kind: 'strided', step: p.step, offset: p.offset - 1 };
  }
}

export const layoutsFor = (picks: readonly LayoutPick[], inputs: readonly InputSpec[]): Layout[] => inputs.map((x, i) => layoutFor(picks[i]!, x.shape.length));

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

/** Values all different (max/min: a tie has no derivative, so finite differences cannot check it). */
export function distinctSpecOf(shape: number[]): fc.Arbitrary<InputSpec> {
  return fc.uniqueArray(valueArb('any'), { minLength: size(shape), maxLength: size(shape) }).map((data) => ({ shape, data }));
}

/** Integer index tensor of `shape` with values in [0, bound). */
export function indexArb(shape: number[], bound: number): fc.Arbitrary<InputSpec> {
  return fc.array(fc.integer({ min: 0, max: bound - 1 }), { minLength: size(shape), maxLength: size(shape) }).map((data) => ({ shape, data, int: true }));
}

/** Two shapes that broadcast together: drop leading dims and set some dims to 1 in each (dims may be 0). */
export const broadcastPairArb = shapeArb(0, 4, 4, true).chain((out) =>
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

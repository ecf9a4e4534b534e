// The op suite: one case per op (or op variant), each a generator of inputs and parameters plus the call.
// Used by the float64 gradient checks and by the cross-backend suite, so a new op lands in both.
import fc from 'fast-check';
import * as L from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { axesArb, broadcastPairArb, dim, dimZ, distinctSpecOf, indexArb, shapeArb, specOf, tensorArb, type Domain } from './arbitraries.js';
import type { InputSpec } from './gradcheck.js';

export interface CaseInput {
  inputs: InputSpec[];
  params: Record<string, unknown>;
}

export interface OpCase {
  name: string;
  arb: fc.Arbitrary<CaseInput>;
  run: (xs: Tensor[], params: Record<string, unknown>) => Tensor;
  /** false for ops with no gradient (comparisons, argmax, ...): only forward values are compared. */
  differentiable?: boolean;
  /**
   * Shapes large enough for the cpu backend's fast paths (wasm sgemm: M*N*K >= 4096; wasm row kernels:
   * >= 256 elements; wasm binary: rows >= 1024), and the wasm exports the case must reach on cpu
   * (the cpu kernels count their runs in fastHits; `tile` = the gemm), so the cross-backend suite compares
   * them with the reference.
   */
  large?: { arb: fc.Arbitrary<CaseInput>; kernels: string[] };
}

const noParams = (inputs: fc.Arbitrary<InputSpec[]>): fc.Arbitrary<CaseInput> => inputs.map((i) => ({ inputs: i, params: {} }));
const one = (domain: Domain = 'any', shape = shapeArb(0, 3, 4, true)) => noParams(tensorArb(shape, domain).map((x) => [x]));
const range = (min: number, max: number) => fc.integer({ min, max });
/** [rows, cols] with rows * cols >= 256 (the wasm row kernels' threshold). */
const rowsArb = () => fc.tuple(range(4, 10), range(64, 160));

const unary: [string, Domain, (x: Tensor) => Tensor][] = [
  ['neg', 'any', L.neg], ['abs', 'awayFromZero', L.abs], ['exp', 'any', L.exp], ['log', 'positive', L.log],
  ['sqrt', 'positive', L.sqrt], ['rsqrt', 'positive', L.rsqrt], ['sin', 'any', L.sin], ['cos', 'any', L.cos],
  ['tanh', 'any', L.tanh], ['sigmoid', 'any', L.sigmoid], ['silu', 'any', L.silu], ['gelu', 'any', (x) => L.gelu(x)],
  ['gelu_tanh', 'any', (x) => L.gelu(x, 'tanh')], ['relu', 'awayFromZero', L.relu], ['erf', 'any', L.erf],
  ['erfinv', 'unit', L.erfinv], ['square', 'any', L.square], ['reciprocal', 'awayFromZero', L.reciprocal],
  ['pow_scalar', 'positive', (x) => L.pow(x, 1.7)], ['clamp', 'awayFromZero', (x) => L.clamp(x, -0.5123, 0.7123)],
];

const binary: [string, Domain, Domain, (a: Tensor, b: Tensor) => Tensor][] = [
  ['add', 'any', 'any', L.add], ['sub', 'any', 'any', L.sub], ['mul', 'any', 'any', L.mul],
  ['div', 'any', 'awayFromZero', L.div], ['pow', 'positive', 'any', L.pow],
  ['maximum', 'any', 'any', L.maximum], ['minimum', 'any', 'any', L.minimum],
];

const compare: [string, (a: Tensor, b: Tensor) => Tensor][] = [
  ['eq', L.eq], ['ne', L.ne], ['lt', L.lt], ['le', L.le], ['gt', L.gt], ['ge', L.ge],
];

const pair = (da: Domain, db: Domain) =>
  noParams(broadcastPairArb.chain(([sa, sb]) => fc.tuple(specOf(sa, da), specOf(sb, db))));

/** Comparisons on a coarse grid so that ties actually happen. */
const coarsePair = noParams(broadcastPairArb.chain(([sa, sb]) =>
  fc.tuple(...[sa, sb].map((s) => fc.array(fc.integer({ min: -2, max: 2 }), { minLength: s.reduce((a, b) => a * b, 1), maxLength: s.reduce((a, b) => a * b, 1) }).map((data) => ({ shape: s, data }))))));

const reduceArb = (domain: Domain | 'distinct' = 'any', shapes = shapeArb(1, 3)) =>
  shapes.chain((s) => fc.record({ inputs: (domain === 'distinct' ? distinctSpecOf(s) : specOf(s, domain)).map((x) => [x]), params: fc.record({ axes: axesArb(s.length), keepdim: fc.boolean() }) }));

type P = Record<string, any>;

/** Large-tier inputs: a unary op over rows * cols >= 256 elements. */
const largeOne = (domain: Domain) => noParams(rowsArb().chain(([r, c]) => specOf([r, c], domain).map((x) => [x])));
/** Large-tier pairs: rows of >= 1024 (the wasm binary kernel), the second operand full, a row, a column or a scalar. */
const largePair = (da: Domain, db: Domain) => noParams(fc.tuple(range(1, 2), range(1024, 1100), fc.constantFrom('full', 'row', 'col', 'scalar')).chain(([r, c, kind]) =>
  fc.tuple(specOf([r, c], da), specOf(kind === 'full' ? [r, c] : kind === 'row' ? [c] : kind === 'col' ? [r, 1] : [], db))));
const mm = (min: number, max: number) => fc.tuple(range(min, max), range(min, max), range(min, max));
const FAST_UNARY = new Set(['exp', 'sigmoid', 'silu']);
const FAST_BINARY = new Set(['add', 'sub', 'mul', 'div']);
const softmaxCase = (name: string, f: (x: Tensor, axis: number) => Tensor, kernels: string[]): OpCase => ({
  name,
  arb: shapeArb(1, 3, 4, true).chain((s) => fc.record({ inputs: specOf(s).map((x) => [x]), params: fc.record({ axis: fc.integer({ min: -s.length, max: s.length - 1 }) }) })),
  run: ([x], p: P) => f(x!, p.axis),
  large: { arb: rowsArb().chain(([r, c]) => fc.record({ inputs: specOf([r, c]).map((x) => [x]), params: fc.record({ axis: fc.constantFrom(-1, 0) }) })), kernels },
});

export const OP_CASES: OpCase[] = [
  ...unary.map(([name, d, f]): OpCase => ({ name, arb: one(d), run: ([x]) => f(x!),
    ...(FAST_UNARY.has(name) ? { large: { arb: largeOne(d), kernels: name === 'silu' ? ['unary', 'siluBackward'] : ['unary'] } } : {}) })),
  ...binary.map(([name, da, db, f]): OpCase => ({ name, arb: pair(da, db), run: ([a, b]) => f(a!, b!),
    ...(FAST_BINARY.has(name) ? { large: { arb: largePair(da, db), kernels: ['binary'] } } : {}) })),
  ...compare.map(([name, f]): OpCase => ({ name, arb: coarsePair, run: ([a, b]) => f(a!, b!), differentiable: false })),
  { name: 'where', arb: noParams(broadcastPairArb.chain(([sa, sb]) => fc.tuple(specOf(sa, 'awayFromZero'), specOf(sb), specOf(sb.length >= sa.length ? sb : sa)))),
    run: ([c, a, b]) => L.where(L.gt(c!, 0), a!, b!) },
  { name: 'sum', arb: reduceArb('any', shapeArb(1, 3, 4, true)), run: ([x], p: P) => L.sum(x!, p.axes, p.keepdim) },
  { name: 'mean', arb: reduceArb('any', shapeArb(1, 3, 4, true)), run: ([x], p: P) => L.mean(x!, p.axes, p.keepdim) },
  { name: 'max', arb: reduceArb('distinct'), run: ([x], p: P) => L.max(x!, p.axes, p.keepdim) },
  { name: 'min', arb: reduceArb('distinct'), run: ([x], p: P) => L.min(x!, p.axes, p.keepdim) },
  { name: 'var', arb: reduceArb('any', fc.array(fc.integer({ min: 2, max: 4 }), { minLength: 1, maxLength: 3 })).chain((c) => fc.constantFrom(0, 1).map((correction) => ({ ...c, params: { ...c.params, correction } }))),
    run: ([x], p: P) => L.variance(x!, p.axes, { correction: p.correction, keepdim: p.keepdim }) },
  { name: 'argmax', arb: shapeArb(1, 3).chain((s) => fc.record({ inputs: specOf(s).map((x) => [x]), params: fc.record({ axis: fc.integer({ min: 0, max: s.length - 1 }) }) })),
    run: ([x], p: P) => L.argmax(x!, p.axis), differentiable: false },
  { name: 'matmul', arb: noParams(fc.tuple(shapeArb(0, 2, 3, true), dimZ(), dimZ(), dimZ(), fc.boolean()).chain(([batch, m, k, n, bcast]) =>
      fc.tuple(specOf([...batch, m, k]), specOf([...(bcast ? [] : batch), k, n])))),
    run: ([a, b]) => L.matmul(a!, b!),
    large: { arb: noParams(fc.tuple(range(2, 3), mm(16, 28), fc.boolean()).chain(([batch, [m, k, n], bcast]) =>
      fc.tuple(specOf([batch, m, k]), specOf([...(bcast ? [] : [batch]), k, n])))), kernels: ['tile'] } },
  { name: 'matmul_shared_left', arb: noParams(fc.tuple(shapeArb(1, 2, 3), dim(), dim(), dim()).chain(([batch, m, k, n]) =>
      fc.tuple(specOf([m, k]), specOf([...batch, k, n])))),
    run: ([a, b]) => L.matmul(a!, b!),
    large: { arb: noParams(fc.tuple(range(2, 3), mm(16, 28)).chain(([batch, [m, k, n]]) => fc.tuple(specOf([m, k]), specOf([batch, k, n])))), kernels: ['tile'] } },
  { name: 'matmul_vector', arb: noParams(fc.tuple(dimZ(), dim()).chain(([k, n]) => fc.tuple(specOf([k]), specOf([k, n])))),
    run: ([a, b]) => L.matmul(a!, b!),
    large: { arb: noParams(fc.tuple(range(64, 100), range(64, 100)).chain(([k, n]) => fc.tuple(specOf([k]), specOf([k, n])))), kernels: ['tile'] } },
  { name: 'matmul_transposed', arb: noParams(fc.tuple(dim(), dim(), dim()).chain(([m, k, n]) => fc.tuple(specOf([k, m]), specOf([n, k])))),
    run: ([a, b]) => L.matmul(L.transpose(a!, 0, 1), L.transpose(b!, 0, 1)),
    large: { arb: noParams(mm(16, 40).chain(([m, k, n]) => fc.tuple(specOf([k, m]), specOf([n, k])))), kernels: ['tile'] } },
  { name: 'linear', arb: noParams(fc.tuple(dimZ(), dim(), dim()).chain(([n, i, o]) => fc.tuple(specOf([n, i]), specOf([o, i]), specOf([o])))),
    run: ([x, w, b]) => L.linear(x!, w!, b!),
    large: { arb: noParams(mm(16, 40).chain(([n, i, o]) => fc.tuple(specOf([n, i]), specOf([o, i]), specOf([o])))), kernels: ['tile'] } },
  softmaxCase('softmax', L.softmax, ['softmax', 'softmaxBackward']),
  softmaxCase('logSoftmax', L.logSoftmax, ['softmax']),
  // scale != 1 reaches the fused softmax forward and backward with a scale (1/sqrt(d) when not given)
  { name: 'attention', arb: fc.tuple(shapeArb(0, 2, 3), fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }), dim(), dim(), dim(), dim(), fc.constantFrom(undefined, 0.37, 2.3))
      .chain(([batch, ones, tq, tk, d, dv, scale]) => {
        const kvBatch = batch.map((b, i) => (ones[i] ? 1 : b)); // k, v broadcast over some batch dims
        return fc.tuple(specOf([...batch, tq, d]), specOf([...kvBatch, tk, d]), specOf([...kvBatch, tk, dv])).map((inputs) => ({ inputs, params: { scale } }));
      }),
    run: ([q, k, v], p: P) => L.scaledDotProductAttention(q!, k!, v!, p.scale),
    // at d = 16..20 the scales keep the scores O(1): a saturated softmax is ill-conditioned in float32
    large: { arb: fc.tuple(range(1, 2), range(16, 24), range(16, 20), fc.constantFrom(undefined, 0.15)).chain(([b, T, d, scale]) =>
      fc.tuple(specOf([b, T, d]), specOf([b, T, d]), specOf([b, T, d])).map((inputs) => ({ inputs, params: { scale } }))), kernels: ['softmax', 'softmaxBackward', 'tile'] } },
  // [batch, heads, T, d] with equal batch and head counts: the shape the fused attention kernels take
  { name: 'attention_4d', arb: fc.tuple(dim(2), dim(2), dim(4), dim(4), dim(3), dim(3), fc.constantFrom(undefined, 0.37)).chain(([b, h, tq, tk, d, dv, scale]) =>
      fc.tuple(specOf([b, h, tq, d]), specOf([b, h, tk, d]), specOf([b, h, tk, dv])).map((inputs) => ({ inputs, params: { scale } }))),
    run: ([q, k, v], p: P) => L.scaledDotProductAttention(q!, k!, v!, p.scale) },
  { name: 'swiglu', arb: noParams(shapeArb(1, 3).chain((s) => fc.tuple(specOf(s), specOf(s)))), run: ([a, b]) => L.swiglu(a!, b!) },
  { name: 'modulate', arb: noParams(fc.tuple(dim(2), dim(3), dim(4)).chain(([b, t, d]) => fc.tuple(specOf([b, t, d]), specOf([b, d]), specOf([b, d])))),
    run: ([x, shift, scale]) => L.modulate(x!, shift!, scale!) },
  { name: 'gatedAdd', arb: noParams(fc.tuple(dim(2), dim(3), dim(4)).chain(([b, t, d]) => fc.tuple(specOf([b, t, d]), specOf([b, d]), specOf([b, t, d])))),
    run: ([x, gate, y]) => L.gatedAdd(x!, gate!, y!) },
  { name: 'rotary', arb: fc.tuple(dim(2), dim(3), dim(2), fc.integer({ min: 1, max: 3 })).chain(([b, t, h, half]) =>
      fc.tuple(specOf([b, t, h, 2 * half]), specOf([t, half]), specOf([t, half])).map(([x, c, s]) => ({ inputs: [x], params: { c: c.data, s: s.data, t, half } }))),
    run: ([x], p: P) => L.rotary(x!, L.tensor(p.c, { shape: [p.t, p.half], dtype: x!.dtype, device: x!.device }), L.tensor(p.s, { shape: [p.t, p.half], dtype: x!.dtype, device: x!.device })) },
  // Normalised rows of 3+ elements: a row of 2 normalises to +-1 whatever its values, so its input gradient is
  // zero up to eps, i.e. rounding noise (1e-1 of the largest gradient against float64 on every implementation,
  // measured), and two float32 implementations cannot be compared there.
  { name: 'layerNorm', arb: fc.tuple(shapeArb(0, 2, 4, true), fc.array(fc.integer({ min: 3, max: 4 }), { minLength: 1, maxLength: 2 }), fc.boolean(), fc.constantFrom(1e-5, 0.5)).chain(([lead, norm, affine, eps]) =>
      fc.tuple(specOf([...lead, ...norm]), specOf(norm), specOf(norm)).map(([x, w, b]) => ({ inputs: affine ? [x, w, b] : [x], params: { norm, eps } }))),
    run: ([x, w, b], p: P) => L.layerNorm(x!, p.norm, w, b, p.eps),
    large: { arb: fc.tuple(rowsArb(), fc.boolean(), fc.constantFrom(1e-3, 0.5)).chain(([[r, c], affine, eps]) =>
      fc.tuple(specOf([r, c]), specOf([c]), specOf([c])).map(([x, w, b]) => ({ inputs: affine ? [x, w, b] : [x], params: { norm: [c], eps } }))), kernels: ['layerNorm'] } },
  { name: 'groupNorm', arb: fc.tuple(dim(2), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), dim(3), fc.constantFrom(1e-5, 0.5)).chain(([n, g, cpg, hw, eps]) =>
      fc.tuple(specOf([n, g * cpg, hw, 3]), specOf([g * cpg]), specOf([g * cpg])).map((inputs) => ({ inputs, params: { g, eps } }))), // groups of 3+ (see layerNorm)
    run: ([x, w, b], p: P) => L.groupNorm(x!, p.g, w, b, p.eps) },
  { name: 'conv2d', arb: fc.tuple(dim(2), dim(2), dim(3), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 3, max: 5 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 1 }), fc.boolean())
      .chain(([n, c, o, k, hw, stride, padding, bias]) =>
        fc.tuple(specOf([n, c, hw, hw + 1]), specOf([o, c, k, k]), specOf([o])).map(([x, w, b]) => ({ inputs: bias ? [x, w, b] : [x, w], params: { stride, padding } }))),
    run: ([x, w, b], p: P) => L.conv2d(x!, w!, b, { stride: p.stride, padding: p.padding }),
    large: { arb: fc.tuple(range(3, 4), range(8, 10), fc.boolean()).chain(([c, hw, bias]) =>
      fc.tuple(specOf([2, c, hw, hw]), specOf([8, c, 3, 3]), specOf([8])).map(([x, w, b]) => ({ inputs: bias ? [x, w, b] : [x, w], params: { stride: 1, padding: 1 } }))), kernels: ['tile'] } },
  { name: 'embedding', arb: fc.tuple(dim(5), dim(3), dimZ(4)).chain(([v, d, n]) => fc.tuple(indexArb([n], v), specOf([v, d]))).map((inputs) => ({ inputs, params: {} })),
    run: ([ids, w]) => L.embedding(ids!, w!) },
  { name: 'indexSelect', arb: fc.tuple(shapeArb(1, 3), fc.nat(), dimZ(5)).chain(([s, a, n]) => {
      const axis = a % s.length;
      return fc.tuple(specOf(s), indexArb([n], s[axis]!)).map((inputs) => ({ inputs, params: { axis } }));
    }),
    run: ([x, idx], p: P) => L.indexSelect(x!, p.axis, idx!) },
  { name: 'gather', arb: fc.tuple(shapeArb(1, 3), fc.nat()).chain(([s, a]) => {
      const axis = a % s.length;
      return fc.tuple(specOf(s), indexArb(s.map((d, i) => (i === axis ? d + 1 : d)), s[axis]!)).map((inputs) => ({ inputs, params: { axis } }));
    }),
    run: ([x, idx], p: P) => L.gather(x!, p.axis, idx!) },
  { name: 'mseLoss', arb: noParams(shapeArb(1, 3).chain((s) => fc.tuple(specOf(s), specOf(s)))), run: ([a, b]) => L.mseLoss(a!, b!) },
  { name: 'crossEntropy', arb: fc.tuple(dim(), fc.integer({ min: 2, max: 5 })).chain(([n, c]) => fc.tuple(specOf([n, c]), indexArb([n], c))).map((inputs) => ({ inputs, params: {} })),
    run: ([x, t]) => L.crossEntropy(x!, t!) },
  { name: 'cat', arb: fc.tuple(shapeArb(1, 3, 4, true), fc.nat(), dimZ(3)).chain(([s, a, extra]) => {
      const axis = a % s.length;
      return fc.tuple(specOf(s), specOf(s.map((d, i) => (i === axis ? extra : d)))).map((inputs) => ({ inputs, params: { axis } }));
    }),
    run: ([a, b], p: P) => L.cat([a!, b!], p.axis) },
  { name: 'stack', arb: fc.tuple(shapeArb(0, 2, 4, true), fc.nat()).chain(([s, a]) => fc.tuple(specOf(s), specOf(s)).map((inputs) => ({ inputs, params: { axis: a % (s.length + 1) } }))),
    run: ([a, b], p: P) => L.stack([a!, b!], p.axis) },
  { name: 'split', arb: fc.tuple(shapeArb(1, 3), fc.nat(), dim(3)).chain(([s, a, size]) => specOf(s).map((x) => ({ inputs: [x], params: { axis: a % s.length, size } }))),
    run: ([x], p: P) => L.cat(L.split(x!, p.size as number, p.axis).map((t, i) => L.mul(t, i + 1)), p.axis) },
  { name: 'pad', arb: shapeArb(1, 3, 4, true).chain((s) => fc.tuple(specOf(s), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 2, maxLength: 2 * s.length }).filter((p) => p.length % 2 === 0), fc.integer({ min: -2, max: 2 })).map(([x, pads, value]) => ({ inputs: [x], params: { pads, value } }))),
    run: ([x], p: P) => L.pad(x!, p.pads, p.value) },
  { name: 'permute_contiguous', arb: shapeArb(1, 4, 4, true).chain((s) => fc.tuple(specOf(s), fc.shuffledSubarray([...s.keys()], { minLength: s.length, maxLength: s.length })).map(([x, dims]) => ({ inputs: [x], params: { dims } }))),
    run: ([x], p: P) => L.contiguous(L.permute(x!, p.dims)) },
  { name: 'reshape_of_transpose', arb: noParams(fc.tuple(dimZ(), dim(), dim()).chain(([a, b, c]) => specOf([a, b, c]).map((x) => [x]))),
    run: ([x]) => L.reshape(L.transpose(x!, 0, 2), [-1]) },
  { name: 'expand', arb: shapeArb(1, 3, 4, true).chain((s) => fc.tuple(specOf(s.map((d, i) => (i % 2 ? 1 : d))), dim(3)).map(([x, lead]) => ({ inputs: [x], params: { shape: [lead, ...s] } }))),
    run: ([x], p: P) => L.mul(L.expand(x!, p.shape), 1.5) },
  { name: 'slice_step', arb: shapeArb(1, 3, 6).chain((s) => fc.tuple(specOf(s), fc.nat(), fc.integer({ min: -6, max: 6 }), fc.integer({ min: -6, max: 6 }), fc.integer({ min: 1, max: 3 }))
      .map(([x, a, start, end, step]) => ({ inputs: [x], params: { axis: a % s.length, start, end, step } }))),
    run: ([x], p: P) => L.slice(x!, p.axis, p.start, p.end, p.step) },
  { name: 'squeeze_unsqueeze', arb: shapeArb(0, 3, 4, true).chain((s) => fc.tuple(specOf(s), fc.nat()).map(([x, a]) => ({ inputs: [x], params: { axis: a % (s.length + 1) } }))),
    run: ([x], p: P) => L.squeeze(L.mul(L.unsqueeze(x!, p.axis), 2)) },
];

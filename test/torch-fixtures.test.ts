// The cpu reference anchored to PyTorch: every case in test/fixtures/torch-ops.json (made by
// scripts/make-torch-fixtures.py with torch in float64) is rebuilt with lavender in float64, and the forward
// output and the gradients of (output * weight).sum() with respect to each float input must match torch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as L from '../src/index.js';
import type { Tensor, DType } from '../src/index.js';

type Params = Record<string, unknown>;

interface FixtureInput {
  name: string;
  dtype: 'float64' | 'int64' | 'bool';
  shape: number[];
  data: number[];
}

interface FixtureCase {
  name: string;
  op: string;
  params: Params;
  inputs: FixtureInput[];
  output: { shape: number[]; data: number[] };
  weight: number[];
  grads: Record<string, number[]>;
}

interface Fixtures {
  torch_version: string;
  dtype: string;
  cases: FixtureCase[];
}

// dist/test/torch-fixtures.test.js -> <repo>/test/fixtures/torch-ops.json
const fixtures = JSON.parse(readFileSync(new URL('../../test/fixtures/torch-ops.json', import.meta.url), 'utf8')) as Fixtures;

/** JSON null -> undefined (lavender's optional arguments). */
const opt = <T>(v: unknown): T | undefined => (v === null || v === undefined ? undefined : (v as T));
const axesOf = (v: unknown): number | number[] | undefined => opt<number | number[]>(v);

type Builder = (xs: Tensor[], p: Params) => Tensor;

const UNARY: Record<string, (x: Tensor) => Tensor> = {
  neg: L.neg, abs: L.abs, exp: L.exp, log: L.log, sqrt: L.sqrt, rsqrt: L.rsqrt, sin: L.sin, cos: L.cos,
  tanh: L.tanh, sigmoid: L.sigmoid, silu: L.silu, gelu: (x) => L.gelu(x), gelu_tanh: (x) => L.gelu(x, 'tanh'),
  relu: L.relu, erf: L.erf, erfinv: L.erfinv, square: L.square, reciprocal: L.reciprocal,
};

const BINARY: Record<string, (a: L.TensorLike, b: L.TensorLike) => Tensor> = {
  add: L.add, sub: L.sub, mul: L.mul, div: L.div, pow: L.pow, maximum: L.maximum, minimum: L.minimum,
};

/** Case op (see scripts/make-torch-fixtures.py) -> the same computation in lavender. */
const OPS: Record<string, Builder> = {
  unary: ([x], p) => UNARY[p.fn as string]!(x!),
  binary: ([a, b], p) => BINARY[p.fn as string]!(a!, b!),
  binary_scalar: ([x], p) => {
    const s = p.scalar as number;
    return p.scalar_first ? BINARY[p.fn as string]!(s, x!) : BINARY[p.fn as string]!(x!, s);
  },
  clamp: ([x], p) => L.clamp(x!, opt<number>(p.min), opt<number>(p.max)),
  sum: ([x], p) => L.sum(x!, axesOf(p.axis), p.keepdim as boolean),
  mean: ([x], p) => L.mean(x!, axesOf(p.axis), p.keepdim as boolean),
  max: ([x], p) => L.max(x!, axesOf(p.axis), p.keepdim as boolean),
  min: ([x], p) => L.min(x!, axesOf(p.axis), p.keepdim as boolean),
  var: ([x], p) => L.variance(x!, axesOf(p.axis), { correction: p.correction as number, keepdim: p.keepdim as boolean }),
  matmul: ([a, b]) => L.matmul(a!, b!),
  matmul_t: ([a, b]) => L.matmul(L.transpose(a!, -2, -1), L.transpose(b!, -2, -1)),
  linear: ([x, w, b]) => L.linear(x!, w!, b ?? null),
  softmax: ([x], p) => L.softmax(x!, p.axis as number),
  log_softmax: ([x], p) => L.logSoftmax(x!, p.axis as number),
  layer_norm: ([x, w, b], p) => L.layerNorm(x!, p.shape as number[], w ?? null, b ?? null, p.eps as number),
  group_norm: ([x, w, b], p) => L.groupNorm(x!, p.groups as number, w ?? null, b ?? null, p.eps as number),
  conv2d: ([x, w, b], p) => L.conv2d(x!, w!, b ?? null, { stride: p.stride as number, padding: p.padding as number }),
  embedding: ([ids, w]) => L.embedding(ids!, w!),
  mse_loss: ([a, b], p) => L.mseLoss(a!, b!, p.reduction as L.Reduction),
  cross_entropy: ([logits, target], p) => L.crossEntropy(logits!, target!, p.reduction as L.Reduction),
  gather: ([x, idx], p) => L.gather(x!, p.axis as number, idx!),
  index_select: ([x, idx], p) => L.indexSelect(x!, p.axis as number, idx!),
  cat: (xs, p) => L.cat(xs, p.axis as number),
  stack: (xs, p) => L.stack(xs, p.axis as number),
  pad: ([x], p) => L.pad(x!, p.pads as number[], p.value as number),
  where: ([c, a, b]) => L.where(c!, a!, b!),
  where_scalar: ([c, a], p) => L.where(c!, a!, p.y as number),
  transpose_contiguous: ([x], p) => L.contiguous(L.transpose(x!, p.a as number, p.b as number)),
  permute: ([x], p) => L.permute(x!, p.dims as number[]),
  reshape: ([x], p) => L.reshape(x!, p.shape as number[]),
  reshape_t: ([x], p) => L.reshape(L.transpose(x!, 0, 1), p.shape as number[]),
  expand: ([x], p) => L.expand(x!, p.shape as number[]),
  slice: ([x], p) => {
    let y = x!;
    for (const [axis, start, end, step] of p.slices as [number, number, number | null, number][]) y = L.slice(y, axis, start, opt<number>(end), step);
    return y;
  },
  select: ([x], p) => L.select(x!, p.axis as number, p.index as number),
  squeeze_unsqueeze: ([x], p) => L.unsqueeze(L.squeeze(x!, p.squeeze as number), p.unsqueeze as number),
  attention: ([q, k, v], p) => L.matmul(L.softmax(L.mul(L.matmul(q!, L.transpose(k!, -2, -1)), p.scale as number), -1), v!),
  mlp: ([x, w1, b1, w2, b2]) => L.linear(L.gelu(L.linear(x!, w1!, b1!)), w2!, b2!),
};

/** |actual - expected| <= atol + rtol * |expected|, elementwise. */
interface Tolerance {
  atol: number;
  rtol: number;
}

const DEFAULT_TOL: Tolerance = { atol: 1e-12, rtol: 1e-10 };

/** Ops whose float64 kernels are series/rational approximations get a little more slack. */
function toleranceFor(c: FixtureCase): Tolerance {
  const fn = c.params.fn;
  if (c.op === 'unary' && (fn === 'erf' || fn === 'erfinv' || fn === 'gelu')) return { atol: 1e-10, rtol: 1e-9 };
  if (c.op === 'mlp') return { atol: 1e-10, rtol: 1e-9 };
  return DEFAULT_TOL;
}

function assertClose(what: string, actual: ArrayLike<number>, expected: readonly number[], tol: Tolerance): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, torch has ${expected.length}`);
  let worst = -1, worstExcess = 0;
  let bad = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    const err = Math.abs(a - e);
    const allowed = tol.atol + tol.rtol * Math.abs(e);
    if (!(err <= allowed)) {
      bad++;
      const excess = Number.isNaN(err) ? Infinity : err / allowed;
      if (worst < 0 || excess > worstExcess) [worst, worstExcess] = [i, excess];
    }
  }
  if (bad) {
    const a = actual[worst]!, e = expected[worst]!;
    assert.fail(
      `${what}: ${bad} of ${expected.length} values differ from torch beyond atol ${tol.atol} + rtol ${tol.rtol}; ` +
        `worst at flat index ${worst}: lavender ${a}, torch ${e} (|diff| ${Math.abs(a - e)})\n` +
        `  lavender: [${Array.from(actual).join(', ')}]\n  torch:    [${expected.join(', ')}]`,
    );
  }
}

function makeInput(inp: FixtureInput): Tensor {
  const dtype: DType = inp.dtype;
  return L.tensor(inp.data, { dtype, shape: inp.shape, requiresGrad: dtype === 'float64' });
}

test('torch fixtures: file is well-formed', () => {
  assert.equal(fixtures.dtype, 'float64');
  assert.ok(fixtures.cases.length > 100, `expected many cases, got ${fixtures.cases.length}`);
  const names = new Set(fixtures.cases.map((c) => c.name));
  assert.equal(names.size, fixtures.cases.length, 'case names are unique');
  const unknown = [...new Set(fixtures.cases.map((c) => c.op))].filter((op) => !(op in OPS));
  assert.deepEqual(unknown, [], 'every fixture op has a lavender builder');
});

for (const c of fixtures.cases) {
  test(`torch ${fixtures.torch_version} float64: ${c.name}`, () => {
    const build = OPS[c.op];
    assert.ok(build, `no lavender builder for op '${c.op}'`);
    const tol = toleranceFor(c);
    L.scope(() => {
      const inputs = c.inputs.map(makeInput);
      const out = build(inputs, c.params);
      assert.equal(out.dtype, 'float64', 'output dtype');
      assert.deepEqual([...out.shape], c.output.shape, 'output shape');
      assertClose('forward output', out.toArray(), c.output.data, tol);

      const weight = L.tensor(c.weight, { dtype: 'float64', shape: c.output.shape });
      L.sum(L.mul(out, weight)).backward();
      c.inputs.forEach((inp, i) => {
        const expected = c.grads[inp.name];
        if (!expected) return;
        const g = inputs[i]!.grad;
        assert.ok(g, `no gradient reached input '${inp.name}'`);
        assert.deepEqual([...g.shape], inp.shape, `gradient shape of '${inp.name}'`);
        assertClose(`gradient of '${inp.name}'`, g.toArray(), expected, tol);
      });
    });
  });
}

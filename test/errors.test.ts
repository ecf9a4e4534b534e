// Bad input: every error names the op and the shapes/dtypes/devices involved.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as L from '../src/index.js';
import { cpuReferenceBackend } from '../src/backends/cpu/index.js';

const throwsWith = (fn: () => unknown, ...parts: (string | RegExp)[]) =>
  assert.throws(fn, (e: Error) => {
    for (const p of parts) {
      const ok = typeof p === 'string' ? e.message.includes(p) : p.test(e.message);
      assert.ok(ok, `message "${e.message}" lacks ${p}`);
    }
    return true;
  });

test('shape mismatch in matmul names both operands', () => {
  throwsWith(() => L.matmul(L.zeros([2, 3]), L.zeros([4, 5])), 'matmul:', 'float32[2, 3]', 'float32[4, 5]');
});

test('bad axis names the op and the rank', () => {
  throwsWith(() => L.sum(L.zeros([2, 3]), 2), 'sum:', 'axis 2', 'rank 2');
  throwsWith(() => L.softmax(L.zeros([2]), -3), 'softmax:', 'axis -3');
  throwsWith(() => L.permute(L.zeros([2, 3]), [0, 0]), 'permute:', 'not a permutation');
});

test('reshape to a wrong size names both shapes', () => {
  throwsWith(() => L.reshape(L.zeros([2, 3]), [4, 2]), 'reshape:', 'float32[2, 3]', '[4, 2]');
});

test('dtype mismatch is reported with dtypes', () => {
  throwsWith(() => L.matmul(L.zeros([2, 2]), L.zeros([2, 2], { dtype: 'float64' })), 'matmul: dtypes differ', 'float64');
  throwsWith(() => L.cat([L.zeros([2]), L.zeros([2], { dtype: 'int32' })]), 'cat:', 'int32[2]');
  throwsWith(() => L.crossEntropy(L.zeros([2, 3]), L.zeros([2])), 'crossEntropy:', 'int32 or int64');
  throwsWith(() => L.exp(L.zeros([2], { dtype: 'bfloat16' })), 'bfloat16', "to('float32')");
});

test('mixing devices is an error naming both devices', () => {
  L.registerBackendInstance(cpuReferenceBackend);
  const a = L.zeros([2]);
  const b = L.zeros([2], { device: 'cpu-reference' });
  throwsWith(() => L.add(a, b), 'add:', 'on cpu', 'on cpu-reference', '.to(device)');
  assert.deepEqual(Array.from(L.add(a, b.to('cpu')).toArray()), [0, 0]);
});

test('unknown devices and dtypes are named', () => {
  throwsWith(() => L.zeros([2], { device: 'tpu' }), "unknown device 'tpu'");
  throwsWith(() => L.zeros([2], { dtype: 'float8' as L.DType }), "unknown dtype 'float8'");
});

test('use of a disposed tensor names the op', () => {
  const t = L.ones([3]);
  t.dispose();
  throwsWith(() => L.exp(t), 'exp: use of a disposed tensor', 'float32[3]');
  const u = L.scope(() => {
    const inner = L.ones([2]);
    return { inner, other: L.ones([1]) }.other;
  });
  assert.equal(u.isDisposed, false);
});

test('tensors created in a scope are unusable after it ends unless returned or kept', () => {
  let leaked: L.Tensor | null = null;
  let kept: L.Tensor | null = null;
  L.scope(() => {
    leaked = L.ones([2]);
    kept = L.keep(L.ones([2]));
  });
  throwsWith(() => leaked!.toArray(), 'toArray: use of a disposed tensor');
  assert.deepEqual(Array.from(kept!.toArray()), [1, 1]);
});

test('non-contiguous misuse: assign requires matching shapes', () => {
  const t = L.zeros([2, 3]);
  throwsWith(() => t.assign(L.zeros([3, 2])), 'assign: shape mismatch', '[3, 2]', '[2, 3]');
  t.T.assign(L.ones([3, 2]));
  assert.deepEqual(Array.from(t.toArray()), [1, 1, 1, 1, 1, 1]);
});

test('index out of range is caught by gather and embedding', () => {
  throwsWith(() => L.embedding(L.tensor([0, 5], { dtype: 'int64' }), L.zeros([3, 2])), 'index 5 is out of range', 'size 3');
  throwsWith(() => L.gather(L.zeros([2, 2]), 1, L.tensor([[2, 0], [0, 0]], { dtype: 'int64' })), 'gather', 'index 2');
});

test('invalid creation arguments are rejected', () => {
  throwsWith(() => L.zeros([2, -1]), 'full: invalid shape [2, -1]');
  throwsWith(() => L.tensor([[1, 2], [3]]), 'tensor: ragged nested array');
  throwsWith(() => L.tensor([1, 2, 3], { shape: [2, 2] }), 'tensor: 3 values cannot fill shape [2, 2]');
  throwsWith(() => L.arange(0, 5, 0), 'arange: invalid range');
  throwsWith(() => new L.Generator(-1), 'seed must be a non-negative safe integer');
});

test('conv2d and norms validate their shapes', () => {
  throwsWith(() => L.conv2d(L.zeros([1, 3, 5, 5]), L.zeros([2, 4, 3, 3])), 'conv2d:', 'float32[1, 3, 5, 5]', 'float32[2, 4, 3, 3]');
  throwsWith(() => L.conv2d(L.zeros([1, 1, 2, 2]), L.zeros([1, 1, 3, 3])), 'conv2d: kernel 3x3 is larger');
  throwsWith(() => L.layerNorm(L.zeros([2, 3]), [4]), 'layerNorm:', '[4]', 'float32[2, 3]');
  throwsWith(() => L.groupNorm(L.zeros([2, 6, 2]), 4), 'groupNorm:', 'groups=4');
});

test('reductions over empty axes and item on many elements fail clearly', () => {
  throwsWith(() => L.max(L.zeros([0, 2]), 0), 'max: cannot reduce over axis 0 of size 0');
  throwsWith(() => L.zeros([2]).item(), 'item: tensor must have exactly one element');
});

test('scope refuses async functions', () => {
  throwsWith(() => L.scope(() => Promise.resolve(1)), 'scope: the function returned a Promise');
});

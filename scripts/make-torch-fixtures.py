#!/usr/bin/python3
"""PyTorch reference fixtures for lavender's cpu backend: writes test/fixtures/torch-ops.json.

Run from anywhere with Debian's python (torch is installed there):

    /usr/bin/python3 scripts/make-torch-fixtures.py

Every case is computed in float64 on torch's cpu with one thread. Each case is seeded on its own
(torch.manual_seed of the crc32 of its name), so adding, removing or reordering cases leaves the others
unchanged, and running the script again gives a byte-identical file.

A case stores its inputs (dtype, shape, flat values), the forward output, a fixed weight tensor W of
the output's shape, and the gradient of (output * W).sum() with respect to every float input. Inputs and
W are rounded to 6 significant digits before use, so they are exact short decimals in the JSON; outputs
and gradients are written with Python's shortest round-trip repr (at most 17 significant digits).

`op` and `params` name what test/torch-fixtures.test.ts rebuilds with lavender; the torch function that
made the case is given next to each definition here, with the same params.
"""
import json
import operator
import os
import sys
import zlib

import torch
import torch.nn.functional as F

DT = torch.float64
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, 'test', 'fixtures', 'torch-ops.json')

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ---- input makers (the global generator is seeded per case before they run) -------------------------

def short(t):
    """Round every value to 6 significant digits so the JSON holds exact short decimals."""
    vals = [float(f'{v:.6g}') for v in t.flatten().tolist()]
    return torch.tensor(vals, dtype=DT).reshape(t.shape)


def randn(*shape, scale=1.0):
    return short(torch.randn(shape, dtype=DT) * scale)


def uniform(lo, hi, *shape):
    return short(torch.rand(shape, dtype=DT) * (hi - lo) + lo)


def away_from_zero(*shape, lo=0.5, hi=2.0):
    """|v| in [lo, hi) with a random sign (for divisors and reciprocals)."""
    mag = torch.rand(shape, dtype=DT) * (hi - lo) + lo
    sign = torch.where(torch.rand(shape, dtype=DT) < 0.5, -1.0, 1.0).to(DT)
    return short(mag * sign)


def small_ints(lo, hi, *shape):
    """Whole numbers in [lo, hi) as float64: makes ties and exact zeros."""
    return torch.randint(lo, hi, shape).to(DT)


def index(hi, *shape):
    return torch.randint(0, hi, shape, dtype=torch.int64)


def mask(*shape):
    return torch.rand(shape) < 0.5


# ---- the cases ---------------------------------------------------------------------------------------

CASES = []


def case(name, op, inputs, fn, /, **params):
    """inputs: () -> list of (name, tensor); fn(*tensors, **params) -> torch output."""
    CASES.append((name, op, inputs, fn, params))


UNARY = {
    'neg': torch.neg, 'abs': torch.abs, 'exp': torch.exp, 'log': torch.log, 'sqrt': torch.sqrt,
    'rsqrt': torch.rsqrt, 'sin': torch.sin, 'cos': torch.cos, 'tanh': torch.tanh, 'sigmoid': torch.sigmoid,
    'silu': F.silu, 'gelu': F.gelu, 'gelu_tanh': lambda x: F.gelu(x, approximate='tanh'), 'relu': F.relu,
    'erf': torch.erf, 'erfinv': torch.erfinv, 'square': torch.square, 'reciprocal': torch.reciprocal,
}


def unary(x, fn):
    return UNARY[fn](x)


positive = lambda: uniform(0.1, 3.0, 3, 4)
for fn, make in [
    ('neg', lambda: randn(3, 4)), ('abs', lambda: randn(3, 4)), ('exp', lambda: randn(3, 4)),
    ('log', positive), ('sqrt', positive), ('rsqrt', positive), ('sin', lambda: randn(3, 4, scale=2)),
    ('cos', lambda: randn(3, 4, scale=2)), ('tanh', lambda: randn(3, 4)), ('sigmoid', lambda: randn(3, 4)),
    ('silu', lambda: randn(3, 4)), ('gelu', lambda: randn(3, 4)), ('gelu_tanh', lambda: randn(3, 4)),
    ('relu', lambda: randn(3, 4)), ('erf', lambda: randn(3, 4)), ('erfinv', lambda: uniform(-0.9, 0.9, 3, 4)),
    ('square', lambda: randn(3, 4)), ('reciprocal', lambda: away_from_zero(3, 4)),
]:
    case(f'unary {fn}', 'unary', lambda make=make: [('x', make())], unary, fn=fn)

# wider ranges: saturation and tails
for fn in ['exp', 'tanh', 'sigmoid', 'silu', 'gelu', 'gelu_tanh', 'erf', 'sin']:
    case(f'unary {fn} wide range', 'unary', lambda: [('x', randn(2, 6, scale=4))], unary, fn=fn)
case('unary erfinv near +-1', 'unary', lambda: [('x', uniform(-0.999, 0.999, 2, 6))], unary, fn='erfinv')
case('unary log small and large', 'unary', lambda: [('x', short(torch.exp(torch.randn(2, 6, dtype=DT) * 5)))], unary, fn='log')
# exact zeros: torch takes the subgradient 0 for abs and relu at 0
case('unary abs with zeros', 'unary', lambda: [('x', small_ints(-2, 3, 3, 4))], unary, fn='abs')
case('unary relu with zeros', 'unary', lambda: [('x', small_ints(-2, 3, 3, 4))], unary, fn='relu')
case('unary exp 0-d', 'unary', lambda: [('x', randn())], unary, fn='exp')

BINARY = {
    'add': torch.add, 'sub': torch.sub, 'mul': torch.mul, 'div': torch.div, 'pow': torch.pow,
    'maximum': torch.maximum, 'minimum': torch.minimum,
}


def binary(a, b, fn):
    return BINARY[fn](a, b)


for (sa, sb) in [((2, 3, 4), (3, 1)), ((4,), (2, 1, 4)), ((3, 4), (3, 4))]:
    tag = f'{list(sa)} with {list(sb)}'
    for fn in ['add', 'sub', 'mul', 'maximum', 'minimum']:
        case(f'binary {fn} {tag}', 'binary', lambda sa=sa, sb=sb: [('a', randn(*sa)), ('b', randn(*sb))], binary, fn=fn)
    case(f'binary div {tag}', 'binary', lambda sa=sa, sb=sb: [('a', randn(*sa)), ('b', away_from_zero(*sb))], binary, fn='div')
    case(f'binary pow {tag}', 'binary', lambda sa=sa, sb=sb: [('a', uniform(0.2, 2.5, *sa)), ('b', randn(*sb))], binary, fn='pow')
case('binary 0-d with [3, 4] mul', 'binary', lambda: [('a', randn()), ('b', randn(3, 4))], binary, fn='mul')
# ties: torch splits the gradient of maximum/minimum equally between equal operands
for fn in ['maximum', 'minimum']:
    case(f'binary {fn} with ties', 'binary', lambda: [('a', small_ints(-1, 2, 3, 4)), ('b', small_ints(-1, 2, 3, 4))], binary, fn=fn)


def binary_scalar(x, fn, scalar, scalar_first):
    s = torch.tensor(scalar, dtype=DT)
    return BINARY[fn](s, x) if scalar_first else BINARY[fn](x, s)


case('scalar x + 2.5', 'binary_scalar', lambda: [('x', randn(3, 4))], binary_scalar, fn='add', scalar=2.5, scalar_first=False)
case('scalar 1 - x', 'binary_scalar', lambda: [('x', randn(3, 4))], binary_scalar, fn='sub', scalar=1.0, scalar_first=True)
case('scalar x * -3', 'binary_scalar', lambda: [('x', randn(3, 4))], binary_scalar, fn='mul', scalar=-3.0, scalar_first=False)
case('scalar 2 / x', 'binary_scalar', lambda: [('x', away_from_zero(3, 4))], binary_scalar, fn='div', scalar=2.0, scalar_first=True)
case('scalar x ** 3 (negative base)', 'binary_scalar', lambda: [('x', randn(3, 4))], binary_scalar, fn='pow', scalar=3.0, scalar_first=False)
case('scalar x ** 0.5', 'binary_scalar', lambda: [('x', uniform(0.1, 3.0, 3, 4))], binary_scalar, fn='pow', scalar=0.5, scalar_first=False)
case('scalar x ** -1.5', 'binary_scalar', lambda: [('x', uniform(0.1, 3.0, 3, 4))], binary_scalar, fn='pow', scalar=-1.5, scalar_first=False)
case('scalar 2 ** x', 'binary_scalar', lambda: [('x', randn(3, 4))], binary_scalar, fn='pow', scalar=2.0, scalar_first=True)
case('scalar maximum(x, 0.1)', 'binary_scalar', lambda: [('x', randn(3, 4))], binary_scalar, fn='maximum', scalar=0.1, scalar_first=False)


def clamp(x, min, max):
    return torch.clamp(x, min=min, max=max)


case('clamp [-0.5, 0.5]', 'clamp', lambda: [('x', randn(3, 4))], clamp, min=-0.5, max=0.5)
case('clamp min only', 'clamp', lambda: [('x', randn(3, 4))], clamp, min=0.0, max=None)
# values exactly on the bounds: torch passes the whole gradient through at x == min or x == max
case('clamp with values on the bounds', 'clamp', lambda: [('x', small_ints(-2, 3, 3, 4))], clamp, min=-1.0, max=1.0)


def dims(x, axis):
    if axis is None:
        return tuple(range(x.dim()))
    return tuple(axis) if isinstance(axis, list) else (axis,)


def reduce_sum(x, axis, keepdim):
    return torch.sum(x, dim=dims(x, axis), keepdim=keepdim)


def reduce_mean(x, axis, keepdim):
    return torch.mean(x, dim=dims(x, axis), keepdim=keepdim)


def reduce_max(x, axis, keepdim):  # amax: ties share the gradient equally
    return torch.amax(x, dim=dims(x, axis), keepdim=keepdim)


def reduce_min(x, axis, keepdim):
    return torch.amin(x, dim=dims(x, axis), keepdim=keepdim)


def reduce_var(x, axis, keepdim, correction):
    return torch.var(x, dim=dims(x, axis), unbiased=correction == 1, keepdim=keepdim)


REDUCERS = {'sum': reduce_sum, 'mean': reduce_mean, 'max': reduce_max, 'min': reduce_min}
for red, fn in REDUCERS.items():
    for axis, keepdim in [(None, False), (1, False), (-1, True), ([0, 2], False), ([0, 2], True)]:
        case(f'reduce {red} axis={axis} keepdim={keepdim}', red, lambda: [('x', randn(2, 3, 4))], fn, axis=axis, keepdim=keepdim)
for red in ['max', 'min']:
    case(f'reduce {red} with ties axis=1', red, lambda: [('x', small_ints(0, 2, 2, 3, 4))], REDUCERS[red], axis=1, keepdim=False)
    case(f'reduce {red} with ties all', red, lambda: [('x', small_ints(0, 3, 2, 3))], REDUCERS[red], axis=None, keepdim=False)
for correction in [0, 1]:
    for axis, keepdim in [(None, False), (1, False), (-1, True), ([0, 2], True)]:
        case(f'reduce var correction={correction} axis={axis} keepdim={keepdim}', 'var', lambda: [('x', randn(2, 3, 4))],
             reduce_var, axis=axis, keepdim=keepdim, correction=correction)


def matmul(a, b):
    return torch.matmul(a, b)


for sa, sb in [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)),
               ((4,), (4,)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((1, 3), (3, 1))]:
    case(f'matmul {list(sa)} @ {list(sb)}', 'matmul', lambda sa=sa, sb=sb: [('a', randn(*sa)), ('b', randn(*sb))], matmul)


def matmul_t(a, b):  # a^T @ b^T: both operands non-contiguous views
    return torch.matmul(a.transpose(-2, -1), b.transpose(-2, -1))


case('matmul transposed views [2, 4, 3]^T @ [2, 5, 4]^T', 'matmul_t', lambda: [('a', randn(2, 4, 3)), ('b', randn(2, 5, 4))], matmul_t)


def linear(x, w, *b):
    return F.linear(x, w, *b)


case('linear with bias', 'linear', lambda: [('x', randn(2, 3, 4)), ('w', randn(5, 4)), ('b', randn(5))], linear)
case('linear without bias', 'linear', lambda: [('x', randn(3, 4)), ('w', randn(2, 4))], linear)


def softmax(x, axis):
    return F.softmax(x, dim=axis)


def log_softmax(x, axis):
    return F.log_softmax(x, dim=axis)


for name, fn in [('softmax', softmax), ('log_softmax', log_softmax)]:
    case(f'{name} [3, 5] axis=-1', name, lambda: [('x', randn(3, 5))], fn, axis=-1)
    case(f'{name} [3, 5] axis=0', name, lambda: [('x', randn(3, 5))], fn, axis=0)
    case(f'{name} [2, 3, 4] axis=1', name, lambda: [('x', randn(2, 3, 4))], fn, axis=1)
    case(f'{name} [2, 3, 4] axis=-1 large logits', name, lambda: [('x', randn(2, 3, 4, scale=40))], fn, axis=-1)
    case(f'{name} [4] 1-D', name, lambda: [('x', randn(4))], fn, axis=0)


def layer_norm(x, *wb, shape, eps):
    return F.layer_norm(x, shape, *wb, eps=eps)


case('layer_norm [2, 3, 4] over [4] affine', 'layer_norm', lambda: [('x', randn(2, 3, 4)), ('w', randn(4)), ('b', randn(4))], layer_norm, shape=[4], eps=1e-5)
case('layer_norm [2, 3, 4] over [4] no affine', 'layer_norm', lambda: [('x', randn(2, 3, 4))], layer_norm, shape=[4], eps=1e-5)
case('layer_norm [2, 3, 4] over [3, 4] affine', 'layer_norm', lambda: [('x', randn(2, 3, 4)), ('w', randn(3, 4)), ('b', randn(3, 4))], layer_norm, shape=[3, 4], eps=1e-5)
case('layer_norm [3, 5] eps=0.1 affine, offset input', 'layer_norm', lambda: [('x', short(randn(3, 5) * 3 + 7)), ('w', randn(5)), ('b', randn(5))], layer_norm, shape=[5], eps=0.1)


def group_norm(x, *wb, groups, eps):
    return F.group_norm(x, groups, *wb, eps=eps)


case('group_norm [2, 4, 3, 3] groups=2 affine', 'group_norm', lambda: [('x', randn(2, 4, 3, 3)), ('w', randn(4)), ('b', randn(4))], group_norm, groups=2, eps=1e-5)
case('group_norm [2, 6, 5] groups=3 affine', 'group_norm', lambda: [('x', randn(2, 6, 5)), ('w', randn(6)), ('b', randn(6))], group_norm, groups=3, eps=1e-5)
case('group_norm [2, 4, 2, 2] groups=4 no affine', 'group_norm', lambda: [('x', randn(2, 4, 2, 2))], group_norm, groups=4, eps=1e-5)
case('group_norm [1, 4, 3, 3] groups=1 eps=0.01', 'group_norm', lambda: [('x', randn(1, 4, 3, 3)), ('w', randn(4)), ('b', randn(4))], group_norm, groups=1, eps=0.01)


def conv2d(x, w, *b, stride, padding):
    return F.conv2d(x, w, *b, stride=stride, padding=padding)


for stride in [1, 2]:
    for padding in [0, 1]:
        case(f'conv2d 3x3 stride={stride} padding={padding} with bias', 'conv2d',
             lambda: [('x', randn(2, 2, 5, 5)), ('w', randn(3, 2, 3, 3)), ('b', randn(3))], conv2d, stride=stride, padding=padding)
case('conv2d 3x3 stride=1 padding=1 no bias', 'conv2d', lambda: [('x', randn(1, 2, 4, 4)), ('w', randn(2, 2, 3, 3))], conv2d, stride=1, padding=1)
case('conv2d 2x3 kernel on 4x6 stride=2 padding=1', 'conv2d', lambda: [('x', randn(1, 2, 4, 6)), ('w', randn(3, 2, 2, 3)), ('b', randn(3))], conv2d, stride=2, padding=1)
case('conv2d 1x1 kernel', 'conv2d', lambda: [('x', randn(2, 3, 3, 3)), ('w', randn(4, 3, 1, 1)), ('b', randn(4))], conv2d, stride=1, padding=0)
case('conv2d stride=2 drops trailing rows (6x6, 3x3)', 'conv2d', lambda: [('x', randn(1, 1, 6, 6)), ('w', randn(2, 1, 3, 3)), ('b', randn(2))], conv2d, stride=2, padding=0)


def embedding(ids, w):
    return F.embedding(ids, w)


case('embedding [2, 3] ids into [5, 4] (repeats)', 'embedding', lambda: [('ids', torch.tensor([[1, 3, 1], [4, 0, 3]])), ('w', randn(5, 4))], embedding)
case('embedding [6] ids into [3, 2]', 'embedding', lambda: [('ids', index(3, 6)), ('w', randn(3, 2))], embedding)


def mse_loss(a, b, reduction):
    return F.mse_loss(a, b, reduction=reduction)


for reduction in ['mean', 'sum', 'none']:
    case(f'mse_loss reduction={reduction}', 'mse_loss', lambda: [('input', randn(3, 4)), ('target', randn(3, 4))], mse_loss, reduction=reduction)


def cross_entropy(logits, target, reduction):
    return F.cross_entropy(logits, target, reduction=reduction)


for reduction in ['mean', 'sum', 'none']:
    case(f'cross_entropy [4, 5] reduction={reduction}', 'cross_entropy', lambda: [('logits', randn(4, 5, scale=2)), ('target', index(5, 4))],
         cross_entropy, reduction=reduction)


def gather(x, idx, axis):
    return torch.gather(x, axis, idx)


case('gather [3, 4] axis=1 index [3, 2]', 'gather', lambda: [('x', randn(3, 4)), ('index', index(4, 3, 2))], gather, axis=1)
case('gather [3, 4] axis=0 index [5, 4] (repeats)', 'gather', lambda: [('x', randn(3, 4)), ('index', index(3, 5, 4))], gather, axis=0)
case('gather [2, 3, 4] axis=-1 index [2, 2, 6]', 'gather', lambda: [('x', randn(2, 3, 4)), ('index', index(4, 2, 2, 6))], gather, axis=-1)


def index_select(x, idx, axis):
    return torch.index_select(x, axis, idx)


case('index_select [4, 3] axis=0 [2, 0, 2]', 'index_select', lambda: [('x', randn(4, 3)), ('index', torch.tensor([2, 0, 2]))], index_select, axis=0)
case('index_select [2, 5, 3] axis=1', 'index_select', lambda: [('x', randn(2, 5, 3)), ('index', index(5, 4))], index_select, axis=1)


def cat(*ts, axis):
    return torch.cat(ts, dim=axis)


def stack(*ts, axis):
    return torch.stack(ts, dim=axis)


case('cat three along axis 0', 'cat', lambda: [('a', randn(2, 3)), ('b', randn(1, 3)), ('c', randn(3, 3))], cat, axis=0)
case('cat two along axis -1 (3-D)', 'cat', lambda: [('a', randn(2, 3, 2)), ('b', randn(2, 3, 4))], cat, axis=-1)
case('cat two along axis 1 (3-D)', 'cat', lambda: [('a', randn(2, 1, 4)), ('b', randn(2, 3, 4))], cat, axis=1)
for axis in [0, 1, -1]:
    case(f'stack three [2, 3] axis={axis}', 'stack', lambda: [('a', randn(2, 3)), ('b', randn(2, 3)), ('c', randn(2, 3))], stack, axis=axis)


def pad(x, pads, value):
    return F.pad(x, pads, mode='constant', value=value)


case('pad last dim [1, 2]', 'pad', lambda: [('x', randn(2, 3, 4))], pad, pads=[1, 2], value=0.0)
case('pad last two dims [1, 0, 2, 1] value=0.5', 'pad', lambda: [('x', randn(2, 3, 4))], pad, pads=[1, 0, 2, 1], value=0.5)
case('pad all three dims', 'pad', lambda: [('x', randn(2, 2, 3))], pad, pads=[0, 1, 1, 1, 2, 0], value=-1.0)


def where(cond, a, b):
    return torch.where(cond, a, b)


def where_scalar(cond, a, y):
    return torch.where(cond, a, torch.tensor(y, dtype=DT))


case('where same shapes', 'where', lambda: [('cond', mask(3, 4)), ('a', randn(3, 4)), ('b', randn(3, 4))], where)
case('where broadcast cond [3, 1], a [3, 4], b [4]', 'where', lambda: [('cond', mask(3, 1)), ('a', randn(3, 4)), ('b', randn(4))], where)
case('where broadcast cond [2, 3, 4], a [3, 1], b [1, 4]', 'where', lambda: [('cond', mask(2, 3, 4)), ('a', randn(3, 1)), ('b', randn(1, 4))], where)
case('where with scalar other', 'where_scalar', lambda: [('cond', mask(3, 4)), ('a', randn(3, 4))], where_scalar, y=0.25)


def transpose_contiguous(x, a, b):
    return x.transpose(a, b).contiguous()


def permute(x, dims):
    return x.permute(*dims)


def reshape(x, shape):
    return x.reshape(*shape)


def expand(x, shape):
    return x.expand(*shape)


def slices(x, slices):
    for ax, start, end, step in slices:
        idx = [slice(None)] * x.dim()
        idx[ax] = slice(start, end, step)
        x = x[tuple(idx)]
    return x


def select(x, axis, index):
    return x.select(axis, index)


def squeeze_unsqueeze(x, squeeze, unsqueeze):
    return x.squeeze(squeeze).unsqueeze(unsqueeze)


case('transpose(0, 2).contiguous() [2, 3, 4]', 'transpose_contiguous', lambda: [('x', randn(2, 3, 4))], transpose_contiguous, a=0, b=2)
case('transpose(-2, -1).contiguous() [3, 4]', 'transpose_contiguous', lambda: [('x', randn(3, 4))], transpose_contiguous, a=-2, b=-1)
case('permute [2, 0, 1]', 'permute', lambda: [('x', randn(2, 3, 4))], permute, dims=[2, 0, 1])
case('reshape of a transposed view', 'reshape_t', lambda: [('x', randn(3, 4))], lambda x, shape: x.t().reshape(*shape), shape=[2, 6])
case('reshape [2, 3, 4] -> [4, -1]', 'reshape', lambda: [('x', randn(2, 3, 4))], reshape, shape=[4, -1])
case('expand [3, 1] -> [2, 3, 4]', 'expand', lambda: [('x', randn(3, 1))], expand, shape=[2, 3, 4])
case('expand [4] -> [3, -1]', 'expand', lambda: [('x', randn(4))], expand, shape=[3, -1])
case('slice x[:, 1:5:2]', 'slice', lambda: [('x', randn(3, 6))], slices, slices=[[1, 1, 5, 2]])
case('slice x[1:, ::3] then [..., -2:]', 'slice', lambda: [('x', randn(4, 7))], slices, slices=[[0, 1, None, 1], [1, 0, None, 3], [1, -2, None, 1]])
case('slice 3-D x[::2, :, 1::2]', 'slice', lambda: [('x', randn(5, 2, 5))], slices, slices=[[0, 0, None, 2], [2, 1, None, 2]])
case('slice x[-3:-1] step 1', 'slice', lambda: [('x', randn(6, 2))], slices, slices=[[0, -3, -1, 1]])
case('select axis=1 index=-1', 'select', lambda: [('x', randn(2, 3, 4))], select, axis=1, index=-1)
case('squeeze(1).unsqueeze(0)', 'squeeze_unsqueeze', lambda: [('x', randn(3, 1, 4))], squeeze_unsqueeze, squeeze=1, unsqueeze=0)


def attention(q, k, v, scale):
    return torch.matmul(F.softmax(torch.matmul(q, k.transpose(-2, -1)) * scale, dim=-1), v)


def mlp(x, w1, b1, w2, b2):
    return F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)


case('composite attention softmax(q k^T / sqrt(d)) v', 'attention', lambda: [('q', randn(2, 3, 4)), ('k', randn(2, 5, 4)), ('v', randn(2, 5, 3))], attention, scale=0.5)
case('composite mlp linear-gelu-linear', 'mlp', lambda: [('x', randn(3, 4)), ('w1', randn(6, 4)), ('b1', randn(6)), ('w2', randn(2, 6)), ('b2', randn(2))], mlp)


# ---- run and write -----------------------------------------------------------------------------------

def flat(t):
    if t.dtype == torch.bool:
        return [int(v) for v in t.flatten().tolist()]
    return t.detach().flatten().tolist()


DTYPE_NAMES = {torch.float64: 'float64', torch.int64: 'int64', torch.bool: 'bool'}


def run_case(name, op, make_inputs, fn, params):
    torch.manual_seed(zlib.crc32(name.encode()))
    raw = make_inputs()
    inputs = []
    tensors = []
    for inp_name, t in raw:
        if t.dtype not in DTYPE_NAMES:
            raise SystemExit(f'{name}: unsupported input dtype {t.dtype}')
        if t.is_floating_point():
            t = t.detach().clone().requires_grad_(True)
        tensors.append(t)
        inputs.append({'name': inp_name, 'dtype': DTYPE_NAMES[t.dtype], 'shape': list(t.shape), 'data': flat(t)})
    out = fn(*tensors, **params)
    if out.dtype != DT:
        raise SystemExit(f'{name}: output dtype {out.dtype}')
    weight = randn(*out.shape)
    (out * weight).sum().backward()
    grads = {}
    for spec, t in zip(inputs, tensors):
        if t.is_floating_point():
            g = t.grad if t.grad is not None else torch.zeros_like(t)
            grads[spec['name']] = flat(g)
    for v in flat(out) + [x for g in grads.values() for x in g]:
        if v != v or v in (float('inf'), float('-inf')):
            raise SystemExit(f'{name}: non-finite value in the output or a gradient')
    return {
        'name': name, 'op': op, 'params': params, 'inputs': inputs,
        'output': {'shape': list(out.shape), 'data': flat(out)},
        'weight': flat(weight), 'grads': grads,
    }


def main():
    names = [c[0] for c in CASES]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SystemExit(f'duplicate case names: {dupes}')
    cases = [run_case(*c) for c in CASES]
    header = {
        'generator': 'scripts/make-torch-fixtures.py',
        'torch_version': torch.__version__,
        'dtype': 'float64',
        'loss': 'gradients are of (output * weight).sum() with respect to every float input',
    }
    dump = lambda v: json.dumps(v, separators=(',', ':'), allow_nan=False)
    lines = ['{']
    for k, v in header.items():
        lines.append(f'  {dump(k)}: {dump(v)},')
    lines.append('  "cases": [')
    lines.append(',\n'.join('    ' + dump(c) for c in cases))
    lines.append('  ]')
    lines.append('}')
    text = '\n'.join(lines) + '\n'
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, 'w', encoding='utf-8', newline='\n') as f:
        f.write(text)
    print(f'wrote {len(cases)} cases, {len(text.encode())} bytes to {os.path.relpath(OUT_PATH, os.getcwd())} (torch {torch.__version__})')


if __name__ == '__main__':
    main()

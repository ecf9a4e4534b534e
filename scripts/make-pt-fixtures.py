#!/usr/bin/python3
"""PyTorch checkpoint fixtures for lavender's torch.save reader: writes test/fixtures/pt/.

Run from anywhere with Debian's python (torch is installed there):

    /usr/bin/python3 scripts/make-pt-fixtures.py

Files (all written by torch.save's zip format unless noted):

  state_dict.pt   an OrderedDict state dict (with torch's `_metadata` attribute) of float32, float16,
                  bfloat16, float64, int64, int32 and bool tensors, keys prefixed `model.`
  shared.pt       a plain dict of views of one float32 storage (different storage offsets, a step slice,
                  a transposed non-contiguous view, a 0-d element view), an expanded stride-0 tensor,
                  a standalone 0-d tensor, an empty [0, 3] tensor and a float16 tensor sharing a storage
                  with a transposed view of itself
  params.pt       a dict of nn.Parameter values (`torch._utils._rebuild_parameter`, requires_grad True
                  and False) and the state_dict() of an nn.Linear (torch 1.13 has no
                  `_rebuild_parameter_with_state` and pickles plain tensors with Python attributes
                  without `_rebuild_from_type_v2`; the test builds those torch 2.x pickles itself)
  nested.pt       {'model': nn.Sequential(...).state_dict(), 'step': 3, 'optimizer': {'lr': .., 'betas':
                  (..)}, 'ema': {'w': tensor}, 'name': 'run-7'}
  malicious.pt    a valid torch zip layout whose data.pkl (built by hand, opcode by opcode) calls
                  os.system('touch "${TMPDIR:-/tmp}/lavender-torch-pt-pwned"'). It is only written,
                  NEVER loaded here: the reader must refuse it.
  truncated.pt    the first half of state_dict.pt (no central directory)
  deflated.pt     state_dict.pt's entries repacked by Python's zipfile with ZIP_DEFLATED

(The pre-1.6 format, _use_new_zipfile_serialization=False, names its storages by memory address, so it
cannot be reproduced byte for byte; the test builds its leading magic number itself.)

expected.json holds, for each loadable file, every tensor lavender should return in order: name, shape,
dtype, values (float64 lists, flattened in row-major order) and, for float16/bfloat16/float32, the raw
bits. Values are seeded and chosen to exercise rounding, -0, subnormals and int64 beyond 2^31.
Running the script again gives byte-identical files (torch.save writes zero zip timestamps; zipfile is
given a fixed one).
"""
import collections
import io
import json
import os
import struct
import zipfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'pt')
MARKER_CMD = 'touch "${TMPDIR:-/tmp}/lavender-torch-pt-pwned"'

torch.manual_seed(1234)
os.makedirs(OUT, exist_ok=True)


def path(name):
    return os.path.join(OUT, name)


# ------------------------------------------------------------------------------------------------
# expected values


def bits(t):
    t = t.detach().contiguous().reshape(-1)
    if t.dtype in (torch.float16, torch.bfloat16):
        return [v & 0xffff for v in t.view(torch.int16).tolist()]
    if t.dtype == torch.float32:
        return [v & 0xffffffff for v in t.view(torch.int32).tolist()]
    return None


DTYPE_NAME = {
    torch.float32: 'float32', torch.float16: 'float16', torch.bfloat16: 'bfloat16', torch.float64: 'float64',
    torch.int64: 'int64', torch.int32: 'int32', torch.bool: 'bool',
}


def describe(name, t):
    t = t.detach()
    flat = t.contiguous().reshape(-1)
    if t.dtype == torch.bool:
        values = [1.0 if v else 0.0 for v in flat.tolist()]
    else:
        values = [float(v) for v in flat.to(torch.float64).tolist()]
    d = {'name': name, 'shape': list(t.shape), 'dtype': DTYPE_NAME[t.dtype], 'values': values}
    b = bits(t)
    if b is not None:
        d['bits'] = b
    return d


def flatten(obj, prefix=''):
    """name -> tensor the way lavender flattens: nested dicts with dotted names, other leaves skipped."""
    out = []
    for k, v in obj.items():
        name = f'{prefix}{k}'
        if isinstance(v, torch.Tensor):
            out.append(describe(name, v))
        elif isinstance(v, dict):
            out.extend(flatten(v, name + '.'))
    return out


expected = {}

# ------------------------------------------------------------------------------------------------
# (a) state_dict.pt


def state_dict():
    sd = collections.OrderedDict()
    sd['model.linear.weight'] = torch.randn(3, 4)
    sd['model.linear.weight'][0, 0] = -0.0
    sd['model.linear.weight'][0, 1] = 1e-40  # float32 subnormal
    sd['model.linear.bias'] = torch.randn(4)
    sd['model.embed.weight'] = (torch.randn(2, 5) * 3).to(torch.float16)
    sd['model.embed.weight'][1, 4] = 6e-8  # float16 subnormal
    sd['model.norm.weight'] = (torch.randn(6) * 100).to(torch.bfloat16)
    sd['model.norm.weight'][0] = -0.0
    sd['model.position_ids'] = torch.tensor([[0, 1, 2, -7, 2**40 + 3, -(2**53)]], dtype=torch.int64)
    sd['model.scale'] = torch.tensor([1.0 / 3.0, -2.5e-300, 1e300], dtype=torch.float64)
    sd['model.counts'] = torch.tensor([-(2**31), 2**31 - 1, 0, 17], dtype=torch.int32).reshape(2, 2)
    sd['model.mask'] = torch.tensor([True, False, False, True, True])
    sd._metadata = collections.OrderedDict([('', {'version': 1}), ('model.linear', {'version': 2})])
    return sd


sd_a = state_dict()
torch.save(sd_a, path('state_dict.pt'))
expected['state_dict.pt'] = flatten(sd_a)

# ------------------------------------------------------------------------------------------------
# (b) shared.pt

base = torch.arange(24, dtype=torch.float32) * 0.5 - 3.0
half = torch.randn(2, 3).to(torch.float16)
shared = {
    'first': base[2:8].view(2, 3),                   # offset 2
    'second': base[10:22].view(3, 4),                # offset 10
    'second_t': base[10:22].view(3, 4).t(),          # [4, 3], strides (1, 4), offset 10
    'every_third': base[1::3],                       # stride 3, offset 1
    'element': base[5],                              # 0-d view, offset 5
    'whole': base,
    'expanded': torch.tensor([1.25, -4.0]).expand(3, 2),  # stride 0
    'scalar': torch.tensor(3.5),
    'empty': torch.zeros(0, 3),
    'half': half,
    'half_t': half.t(),
}
assert shared['first'].storage().data_ptr() == shared['second_t'].storage().data_ptr()
assert not shared['second_t'].is_contiguous()
torch.save(shared, path('shared.pt'))
expected['shared.pt'] = flatten(shared)

# ------------------------------------------------------------------------------------------------
# (c) params.pt

weight = torch.nn.Parameter(torch.randn(2, 3))
bias = torch.nn.Parameter(torch.randn(3).to(torch.bfloat16), requires_grad=False)
linear = torch.nn.Linear(3, 2)
params = {'weight': weight, 'bias': bias, 'linear': linear.state_dict()}
torch.save(params, path('params.pt'))
expected['params.pt'] = flatten(params)

# ------------------------------------------------------------------------------------------------
# (d) nested.pt

net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2, bias=False))
nested = {
    'model': net.state_dict(),
    'step': 3,
    'optimizer': {'lr': 0.1, 'betas': (0.9, 0.99)},
    'ema': {'w': torch.randn(2, 2, dtype=torch.float64)},
    'name': 'run-7',
}
torch.save(nested, path('nested.pt'))
expected['nested.pt'] = flatten(nested)

# ------------------------------------------------------------------------------------------------
# (e) malicious.pt: written byte by byte, never unpickled here


def unicode(s):
    b = s.encode('utf-8')
    return b'X' + struct.pack('<I', len(b)) + b


# {'weight': <a real float32 tensor of storage '0'>, 'payload': os.system(MARKER_CMD)}
evil = b''.join([
    b'\x80\x02',                                    # PROTO 2
    b'}',                                           # EMPTY_DICT
    b'(',                                           # MARK
    unicode('weight'),
    b'ctorch._utils\n_rebuild_tensor_v2\n',         # GLOBAL
    b'(',                                           # MARK (args)
    b'(', unicode('storage'), b'ctorch\nFloatStorage\n', unicode('0'), unicode('cpu'), b'K\x02', b't',
    b'Q',                                           # BINPERSID
    b'K\x00', b'K\x02\x85', b'K\x01\x85', b'\x89',  # offset 0, size (2,), stride (1,), requires_grad False
    b'ccollections\nOrderedDict\n)R',               # backward hooks
    b't', b'R',                                     # TUPLE, REDUCE
    unicode('payload'),
    b'cos\nsystem\n',                               # GLOBAL os.system
    unicode(MARKER_CMD), b'\x85',                   # TUPLE1
    b'R',                                           # REDUCE: this is the call a real unpickler would make
    b'u',                                           # SETITEMS
    b'.',                                           # STOP
])
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def write_zip(name, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path(name), 'w') as z:
        for entry_name, data in entries:
            info = zipfile.ZipInfo(entry_name, date_time=FIXED_TIME)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            info.create_system = 3
            z.writestr(info, data)


write_zip('malicious.pt', [
    ('malicious/data.pkl', evil),
    ('malicious/data/0', struct.pack('<2f', 1.0, 2.0)),
    ('malicious/version', b'3\n'),
])

# ------------------------------------------------------------------------------------------------
# (f) truncated.pt, (g) deflated.pt

with open(path('state_dict.pt'), 'rb') as f:
    full = f.read()
with open(path('truncated.pt'), 'wb') as f:
    f.write(full[: len(full) // 2])

with zipfile.ZipFile(io.BytesIO(full)) as z:
    entries = [(i.filename.replace('state_dict/', 'deflated/', 1), z.read(i.filename)) for i in z.infolist()]
write_zip('deflated.pt', entries, zipfile.ZIP_DEFLATED)
expected['deflated.pt'] = expected['state_dict.pt']

with open(path('expected.json'), 'w') as f:
    json.dump(expected, f, indent=1)
    f.write('\n')

total = sum(os.path.getsize(path(n)) for n in os.listdir(OUT))
print(f'wrote {len(os.listdir(OUT))} files to {OUT} ({total} bytes)')

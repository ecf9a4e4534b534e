#!/usr/bin/python3
"""PyTorch reference for lavender's rectified flow: writes test/fixtures/flow.json.

Run from anywhere with Debian's python (torch is installed there):

    /usr/bin/python3 scripts/make-flow-fixtures.py

The random draws are lavender's own: Philox4x32-10 (Random123) is re-implemented here in plain Python
from the definition in src/tensor/random.ts (uniform = (x0 >> 8) 2^-24; normal = Box-Muller of the first
two outputs), so the file holds the exact t and z1 that flowLoss draws for a given seed, computed
independently of lavender's code. Everything after the draws is torch in float64:

- `loss`: for each time sampling (logit-normal, uniform, stratified) and a model that is NOT constant,
  v = a[c] * x_t + beta * t + cond[b] (a per channel, beta a scalar, cond per sample), the rectified-flow
  loss mean((z1 - x - v)^2) with x_t = (1 - t) x + t z1, the per-sample losses, and d loss / d a, d beta.
- `samplers`: the first draws of each time sampling for another seed.
- `euler`: the Euler sampler from z0 over 4 steps with classifier-free guidance (cfg 3, null condition 0)
  for the same model: every intermediate z, and the unguided trajectory.

Inputs are short decimals rounded to float32 (what lavender's float32 tensors hold), so both sides start
from the same numbers. Running the script again gives a byte-identical file.
"""
import json
import math
import os

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, 'test', 'fixtures', 'flow.json')
DT = torch.float64
torch.set_num_threads(1)

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox(counter, seed):
    """Philox4x32-10 of counter (c0 c1 = the 64-bit element number, c2 = c3 = 0) under key = seed."""
    c0, c1, c2, c3 = counter & MASK, counter >> 32, 0, 0
    k0, k1 = seed & MASK, (seed >> 32) & MASK
    for _ in range(10):
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ c3 ^ k1) & MASK, p0 & MASK
        k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
    return c0, c1, c2, c3


def draw(seed, offset, n, dist):
    """Elements offset..offset+n-1 of lavender's stream, rounded to float32 as a float32 tensor holds them."""
    out = []
    for i in range(offset, offset + n):
        x0, x1, _, _ = philox(i, seed)
        if dist == 'uniform':
            v = (x0 >> 8) * 2.0 ** -24
        else:
            u1 = ((x0 >> 8) + 1) * 2.0 ** -24
            u2 = (x1 >> 8) * 2.0 ** -24
            v = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
        out.append(float(np.float32(v)))
    return out


def f32(values):
    return [float(np.float32(v)) for v in values]


def times(kind, seed, B):
    """t for a batch of B, as src/flow/rectified-flow.ts defines each sampling (spec 'Rectified flow')."""
    if kind == 'logit-normal':
        return torch.sigmoid(torch.tensor(draw(seed, 0, B, 'normal'), dtype=DT))
    if kind == 'uniform':
        return torch.tensor(draw(seed, 0, B, 'uniform'), dtype=DT)
    u = (torch.tensor(draw(seed, 0, B, 'uniform'), dtype=DT) + torch.arange(B, dtype=DT)) / B
    return torch.sigmoid(math.sqrt(2) * torch.erfinv(2 * u - 1))


SHAPE = [3, 2, 2, 2]
B, C = SHAPE[0], SHAPE[1]
N = B * C * 4
X = f32([round(math.sin(1.7 * i + 0.3) * 1.5, 3) for i in range(N)])
A = f32([0.7, -0.4])
BETA = f32([1.3])[0]
COND = f32([0.25, -0.5, 0.125])


def model(x, t, cond, a, beta):
    """v = a[c] x + beta t + cond[b]."""
    return a.view(1, C, 1, 1) * x + beta * t.view(-1, 1, 1, 1) + cond.view(-1, 1, 1, 1)


def loss_case(kind, seed):
    x = torch.tensor(X, dtype=DT).view(SHAPE)
    t = times(kind, seed, B)
    # flowLoss draws t first (B numbers), then z1 from the same generator
    t_draws = B
    z1 = torch.tensor(draw(seed, t_draws, N, 'normal'), dtype=DT).view(SHAPE)
    a = torch.tensor(A, dtype=DT, requires_grad=True)
    beta = torch.tensor(BETA, dtype=DT, requires_grad=True)
    xt = (1 - t.view(-1, 1, 1, 1)) * x + t.view(-1, 1, 1, 1) * z1
    v = model(xt, t, torch.tensor(COND, dtype=DT), a, beta)
    err = (z1 - x - v) ** 2
    per_sample = err.mean(dim=(1, 2, 3))
    loss = err.mean()
    loss.backward()
    return {
        'seed': seed,
        't': t.tolist(),
        'perSample': per_sample.tolist(),
        'loss': loss.item(),
        'gradA': a.grad.tolist(),
        'gradBeta': beta.grad.item(),
    }


def euler(z0, steps, cfg=None):
    a, beta = torch.tensor(A, dtype=DT), torch.tensor(BETA, dtype=DT)
    cond, null = torch.tensor(COND, dtype=DT), torch.zeros(B, dtype=DT)
    z = z0.clone()
    traj = []
    for i in range(steps, 0, -1):
        t = torch.full((B,), i / steps, dtype=DT)
        vc = model(z, t, cond, a, beta)
        v = vc if cfg is None else model(z, t, null, a, beta) + cfg * (vc - model(z, t, null, a, beta))
        z = z - v / steps
        traj.append(z.flatten().tolist())
    return traj


def main():
    z0 = torch.tensor(draw(21, 0, N, 'normal'), dtype=DT).view(SHAPE)
    out = {
        'about': 'written by scripts/make-flow-fixtures.py (PyTorch %s); model v = a[c] x_t + beta t + cond[b]' % torch.__version__,
        'shape': SHAPE,
        'x': X,
        'a': A,
        'beta': BETA,
        'cond': COND,
        'loss': {kind: loss_case(kind, seed) for kind, seed in [('logit-normal', 11), ('uniform', 12), ('stratified', 13)]},
        'samplers': {kind: {'seed': 5, 'B': 16, 't': times(kind, 5, 16).tolist()} for kind in ['logit-normal', 'uniform', 'stratified']},
        'euler': {'z0': z0.flatten().tolist(), 'steps': 4, 'cfg': 3, 'guided': euler(z0, 4, 3.0), 'unguided': euler(z0, 4)},
    }
    with open(OUT_PATH, 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print('wrote', OUT_PATH)


if __name__ == '__main__':
    main()

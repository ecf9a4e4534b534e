#!/usr/bin/python3
"""PyTorch reference fixtures for lavender's optimizers: writes test/fixtures/optim.json.

Run from anywhere with Debian's python (torch is installed there):

    /usr/bin/python3 scripts/make-optim-fixtures.py

Two runs, `adamw` (torch.optim.AdamW) and `adam` (torch.optim.Adam), start from the same float64
parameters and see the same fixed sequence of gradients. Each run has two parameter groups with their
own lr and weight decay, betas (0.9, 0.95), eps 1e-8, a LambdaLR warm-up of 3 steps
(lambda s: min(1, (s + 1) / 3), stepped after each optimizer step) and clip_grad_norm_(params, 1.0)
before each optimizer step. One gradient is None at one step, so torch skips that parameter there and
its per-parameter step count falls behind the others.

Stored per run and step: the gradients as fed (before clipping; null for None), the total norm that
clip_grad_norm_ returned, the lr each group used, and every parameter after the step; after the last
step, torch's exp_avg / exp_avg_sq / step per parameter. Inputs are rounded to 6 significant digits
so they are exact short decimals; outputs are written with Python's shortest round-trip repr.
Running the script again gives a byte-identical file.
"""
import json
import os

import torch

DT = torch.float64
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, 'test', 'fixtures', 'optim.json')

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

STEPS = 6
WARMUP = 3
MAX_NORM = 1.0
BETAS = (0.9, 0.95)
EPS = 1e-8
# name, shape, group
PARAMS = [('w1', (3, 4), 0), ('b1', (4,), 0), ('w2', (4, 2), 1), ('b2', (2,), 1)]
GROUPS = [
    {'name': 'decay', 'lr': 0.05, 'weight_decay': 0.1},
    {'name': 'other', 'lr': 0.02, 'weight_decay': 0.01},
]
# global gradient scales per step: some steps are clipped (total norm > 1), some are not
GRAD_SCALES = [0.1, 2.0, 0.3, 5.0, 0.05, 1.5]
# (step, parameter) pairs whose grad is None
NONE_GRADS = {(2, 'b1'), (4, 'w2')}


def short(t):
    vals = [float(f'{v:.6g}') for v in t.flatten().tolist()]
    return torch.tensor(vals, dtype=DT).reshape(t.shape)


def flat(t):
    return [float(v) for v in t.flatten().tolist()]


def make_inputs():
    g = torch.Generator().manual_seed(20240607)
    init = {name: short(torch.randn(shape, generator=g, dtype=DT)) for name, shape, _ in PARAMS}
    grads = []
    for s in range(STEPS):
        step = {}
        for name, shape, _ in PARAMS:
            v = short(torch.randn(shape, generator=g, dtype=DT) * GRAD_SCALES[s])
            step[name] = None if (s, name) in NONE_GRADS else v
        grads.append(step)
    return init, grads


def run(kind, init, grads):
    params = {name: init[name].clone().requires_grad_(True) for name, _, _ in PARAMS}
    groups = [
        {'params': [params[n] for n, _, gi in PARAMS if gi == i], 'lr': g['lr'], 'weight_decay': g['weight_decay']}
        for i, g in enumerate(GROUPS)
    ]
    cls = torch.optim.AdamW if kind == 'adamw' else torch.optim.Adam
    opt = cls(groups, betas=BETAS, eps=EPS, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / WARMUP))
    ordered = [params[n] for n, _, _ in PARAMS]
    steps = []
    for s in range(STEPS):
        for name, _, _ in PARAMS:
            g = grads[s][name]
            params[name].grad = None if g is None else g.clone()
        lrs = [pg['lr'] for pg in opt.param_groups]
        norm = torch.nn.utils.clip_grad_norm_(ordered, MAX_NORM)
        opt.step()
        sched.step()
        steps.append({
            'norm': float(norm),
            'lr': lrs,
            'params': {name: flat(params[name].detach()) for name, _, _ in PARAMS},
        })
    state = []
    for name, _, _ in PARAMS:
        st = opt.state[params[name]]
        state.append({'name': name, 'step': int(st['step']), 'm': flat(st['exp_avg']), 'v': flat(st['exp_avg_sq'])})
    return {'kind': kind, 'steps': steps, 'state': state}


def main():
    init, grads = make_inputs()
    out = {
        'torch_version': torch.__version__,
        'dtype': 'float64',
        'betas': list(BETAS),
        'eps': EPS,
        'warmup': WARMUP,
        'max_norm': MAX_NORM,
        'groups': [{'name': g['name'], 'lr': g['lr'], 'weight_decay': g['weight_decay'],
                    'params': [n for n, _, gi in PARAMS if gi == i]} for i, g in enumerate(GROUPS)],
        'params': [{'name': n, 'shape': list(shape), 'init': flat(init[n])} for n, shape, _ in PARAMS],
        'grads': [{n: (None if grads[s][n] is None else flat(grads[s][n])) for n, _, _ in PARAMS} for s in range(STEPS)],
        'runs': [run('adamw', init, grads), run('adam', init, grads)],
    }
    with open(OUT_PATH, 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    print(f'wrote {OUT_PATH}')


if __name__ == '__main__':
    main()

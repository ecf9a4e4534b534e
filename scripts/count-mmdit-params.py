#!/usr/bin/env python3
"""Exact parameter counts of the MMDiT presets, counted by PyTorch on the spec-derived model of
scripts/make-mmdit-fixtures.py. A full 5.6B model does not fit this machine's memory in float32, so the
count is assembled from real modules: base + n_double * (one double block) + n_single * (one single block),
each measured by instantiating models with 1-2 blocks at the real width. Writes test/fixtures/mmdit/param-counts.json.

Run: /usr/bin/python3 scripts/count-mmdit-params.py"""
import importlib.util, json, os
import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('mx', os.path.join(here, 'make-mmdit-fixtures.py'))
mx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mx)

PRESETS = mx.PRESETS


def count(**cfg):
    with torch.no_grad():
        m = mx.MMDiT(**cfg)
        n = sum(p.numel() for p in m.parameters())
    del m
    return n


out = {}
for name, cfg in PRESETS.items():
    nd = cfg.get('n_double_layers', 4)
    ns = cfg['n_layers'] - nd
    one_double = count(**{**cfg, 'n_layers': 1, 'n_double_layers': 1})
    two_double = count(**{**cfg, 'n_layers': 2, 'n_double_layers': 2})
    one_single = count(**{**cfg, 'n_layers': 1, 'n_double_layers': 0})
    double = two_double - one_double
    base = one_double - double
    single = one_single - base
    out[name] = {'total': base + nd * double + ns * single, 'base': base, 'double_block': double, 'single_block': single}
    print(name, out[name])
with open(os.path.join(here, '..', 'test', 'fixtures', 'mmdit', 'param-counts.json'), 'w') as f:
    json.dump(out, f, indent=1)

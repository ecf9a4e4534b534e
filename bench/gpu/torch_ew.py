#!/usr/bin/env python3
"""PyTorch's elementwise bandwidth, the reference for `node dist/bench/gpu/bench.js elementwise` in
bench/gpu/run.sh: add / mul / add-scalar / copy of 2^26 float32 and bfloat16 elements into preallocated
outputs, effective GB/s (bytes read + written per second), timed with CUDA events over 50 calls.

  python3 bench/gpu/torch_ew.py [--log2n 26] [--device cuda] [--lavender FILE]
With --lavender (the JSON lines of lavender's run), also prints lavender's bandwidth as a fraction of
torch's for each op and dtype (the acceptance asks >= 0.8 for add and copy).
"""
import argparse, json, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument('--log2n', type=int, default=26)
ap.add_argument('--device', default='cuda')
ap.add_argument('--lavender')
a = ap.parse_args()
dev = torch.device(a.device)
n = 2 ** a.log2n
ours = {}
for dtype, name in ((torch.float32, 'float32'), (torch.bfloat16, 'bfloat16')):
    x = torch.full((n,), 1.25, dtype=dtype, device=dev)
    y = torch.full((n,), -0.5, dtype=dtype, device=dev)
    o = torch.empty(n, dtype=dtype, device=dev)
    size = x.element_size()
    cases = [('add', lambda: torch.add(x, y, out=o), 3), ('mul', lambda: torch.mul(x, y, out=o), 3),
             ('add-scalar', lambda: torch.add(x, 0.5, out=o), 2), ('copy', lambda: o.copy_(x), 2)]
    for op, fn, moved in cases:
        reps = 50 if dev.type == 'cuda' else 3
        fn()
        if dev.type == 'cuda':
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps): fn()
            end.record()
            torch.cuda.synchronize()
            s = start.elapsed_time(end) / 1000 / reps
        else:
            t0 = time.perf_counter()
            for _ in range(reps): fn()
            s = (time.perf_counter() - t0) / reps
        gbps = moved * n * size / s / 1e9
        ours[(op, name)] = gbps
        print(json.dumps({'bench': 'elementwise', 'framework': 'torch', 'device': str(dev), 'op': op, 'dtype': name, 'n': n, 'seconds': s, 'gbps': gbps,
                          'torch': torch.__version__}), flush=True)
if a.lavender:
    for line in open(a.lavender):
        if not line.startswith('{'): continue
        r = json.loads(line)
        if r.get('bench') != 'elementwise' or r.get('framework') != 'lavender': continue
        ref = ours.get((r['op'], r['dtype']))
        if ref and r.get('n') == n:
            print(json.dumps({'bench': 'elementwise-ratio', 'op': r['op'], 'dtype': r['dtype'], 'lavender_gbps': r['gbps'], 'torch_gbps': ref,
                              'lavender_over_torch': r['gbps'] / ref}))

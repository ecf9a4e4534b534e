#!/usr/bin/env python3
"""torch.mm on the GPU in the same run as lavender's matmul bench: one JSON line per (dtype, n).
Usage: python3 bench/gpu/torch_mm.py [n ...]"""
import json, sys, time
import torch

sizes = [int(a) for a in sys.argv[1:]] or [1024, 2048, 4096, 8192]
torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device('cuda')
for dtype in (torch.float32, torch.bfloat16):
    for n in sizes:
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        reps = 10 if n >= 4096 else 30
        torch.mm(a, b); torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        torch.cuda.synchronize()
        s = (time.perf_counter() - t0) / reps
        print(json.dumps({'bench': 'matmul', 'backend': 'torch', 'dtype': str(dtype).replace('torch.', ''), 'n': n, 'seconds': s,
                          'tflops': 2 * n ** 3 / s / 1e12, 'device': torch.cuda.get_device_name(), 'torch': torch.__version__}))

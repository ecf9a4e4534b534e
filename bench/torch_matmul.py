#!/usr/bin/env python3
"""PyTorch's float32 N x N matmul throughput on this machine, for comparison with `lavender bench matmul`.
Prints one JSON line like lavender's. Usage: /usr/bin/python3 bench/torch_matmul.py SIZE THREADS"""
import json, sys, time
import torch

size, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
a, b = torch.randn(size, size), torch.randn(size, size)
deadline = time.perf_counter() + 0.5
while time.perf_counter() < deadline:
    a @ b
runs = 10 if size >= 1024 else 30
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    a @ b
    times.append(time.perf_counter() - t0)
times.sort()
median = times[len(times) // 2]
# Debian's torch calls the system libblas.so.3; report which implementation is actually mapped in
libs = sorted({l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps') if 'blas' in l.lower() and '/' in l})
blas = ','.join(libs) or 'unknown'
print(json.dumps({"op": "matmul", "size": size, "backend": "torch", "gflops": 2 * size**3 / median / 1e9,
                  "median_ms": median * 1e3, "threads": torch.get_num_threads(), "torch": torch.__version__, "blas": blas}))

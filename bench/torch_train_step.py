#!/usr/bin/env python3
"""PyTorch's DiT training step (rectified-flow loss, forward + backward + Adam) on this machine, for
comparison with `lavender bench train-step`. The model is the spec-derived PyTorch DiT of
scripts/make-dit-fixtures.py. Usage: /usr/bin/python3 bench/torch_train_step.py [preset] [batch] [threads] [steps] [device]
(device: cpu, the default, or cuda; float32 either way, TF32 off)"""
import importlib.util, json, os, resource, sys, time
import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('dit_fixtures', os.path.join(here, '..', 'scripts', 'make-dit-fixtures.py'))
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)

preset = sys.argv[1] if len(sys.argv) > 1 else 'mnist'
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 5
device = torch.device(sys.argv[5] if len(sys.argv) > 5 else 'cpu')
torch.set_num_threads(threads)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
if device.type != 'cpu':
    torch.set_default_device(device)  # the fixture model makes its frequency tables with torch.arange in forward
cfg = {'mnist': dict(in_channels=1, input_size=32, dim=64, n_layers=6, n_heads=4),
       'cifar': dict(in_channels=3, input_size=32, dim=256, n_layers=10, n_heads=8)}[preset]
torch.manual_seed(0)
model = fx.DiT(**cfg).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
x = torch.randn(batch, cfg['in_channels'], 32, 32).clamp(-1, 1).to(device)
y = (torch.arange(batch) % 10).to(device)

def step():
    t = torch.sigmoid(torch.randn(batch, device=device))
    z1 = torch.randn_like(x)
    te = t.view(batch, 1, 1, 1)
    v = model((1 - te) * x + te * z1, t, y)
    loss = ((z1 - x - v) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()

for _ in range(2):
    step()
times, cpu = [], []
for _ in range(steps):
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
times.sort()
cpu.sort()
print(json.dumps({'model': f'dit-{preset}', 'batch': batch, 'backend': 'torch' if device.type == 'cpu' else f'torch-{device.type}', 'seconds_per_step': times[len(times) // 2],
                  'cpu_seconds_per_step': cpu[len(cpu) // 2], 'max_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  'steps': steps, 'threads': torch.get_num_threads(), 'torch': torch.__version__,
                  'parameters': sum(p.numel() for p in model.parameters())}))

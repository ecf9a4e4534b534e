#!/usr/bin/env python3
"""PyTorch's LavenderFlow training step, the reference for bench/gpu/t2i-step.ts in bench/gpu/run.sh.

The model is the project's own PyTorch MMDiT (scripts/make-mmdit-fixtures.py, written from docs/models.md),
with its attention computed by F.scaled_dot_product_attention (the same function; PyTorch's fused kernel).
One step: rectified-flow loss (logit-normal t) under torch.autocast(bfloat16), backward, gradient clipping
at 1.0, AdamW (0.9, 0.95, weight decay 0.1; fused=True on cuda). Inputs are random tensors of the shapes
lavender's loader gives (latents [B, 4, L, L], text conditions [B, tokens, cond_seq_dim]).

  python3 bench/gpu/torch_t2i_step.py [--preset lavenderflow-2560-highres] [--batch 16] [--tokens 120]
      [--latent 32] [--steps 4] [--warmup 2] [--device cuda] [--precision bf16|fp32] [--compile] [--block]
--compile runs the eager steps, then the same model under torch.compile. --block: one double block at
dim 2560, batch 8, 64 text + 256 image tokens (bench/gpu/bench.ts `mmdit`), instead of a preset.
Prints one JSON line per mode: median seconds per step, tokens/s, MFU (6 N tokens/s over the card's
dense bf16 peak), peak memory (max allocated / reserved).
"""
import argparse, importlib.util, json, math, os, time
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('mmdit_fixtures', os.path.join(here, '..', '..', 'scripts', 'make-mmdit-fixtures.py'))
mm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mm)

PRESETS = mm.PRESETS
BLOCK = dict(dim=2560, n_layers=1, n_double_layers=1, n_heads=8, global_conddim=2560, cond_seq_dim=2560, max_seq=256)


def peak_bf16_tflops(name):  # src/train/throughput.ts peakBf16Tflops
    import re
    if re.search(r'H200|H100.*(SXM|HBM3)|GH200', name, re.I): return 989
    if re.search(r'H100', name, re.I): return 756
    if re.search(r'A100', name, re.I): return 312
    if re.search(r'L40S', name, re.I): return 362
    return float('nan')


def sdpa_attend(q, k, v):
    q, k, v = (z.permute(0, 2, 1, 3) for z in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).permute(0, 2, 1, 3).flatten(-2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--preset', default='lavenderflow-2560-highres', choices=sorted(PRESETS))
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--tokens', type=int, default=120, help='text condition tokens (the model adds 8 register tokens)')
    ap.add_argument('--latent', type=int, default=32)
    ap.add_argument('--steps', type=int, default=4)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--precision', default='bf16', choices=['bf16', 'fp32'])
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--block', action='store_true')
    a = ap.parse_args()
    if a.block:
        cfg, a.batch, a.tokens, a.latent, name = BLOCK, 8, 56, 32, 'mmdit-block'
    else:
        cfg, name = dict(PRESETS[a.preset]), a.preset
    cfg.setdefault('cond_seq_dim', 2048)
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    if hasattr(F, 'scaled_dot_product_attention'):
        mm.attend = sdpa_attend
    if dev.type != 'cpu':
        torch.set_default_device(dev)  # the fixture model makes its frequency tables with torch.arange in forward
    torch.manual_seed(0)
    model = mm.MMDiT(**cfg).to(dev)
    n = sum(p.numel() for p in model.parameters())
    fused = {'fused': True} if dev.type == 'cuda' else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, **fused)
    B, L = a.batch, a.latent
    x = torch.randn(B, 4, L, L, device=dev)
    c_seq = torch.randn(B, a.tokens, cfg['cond_seq_dim'], device=dev)
    text, image = 8 + a.tokens, (L // 2) ** 2
    device_name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)

    def run(fwd, mode):
        def step():
            t = torch.sigmoid(torch.randn(B, device=dev))
            z1 = torch.randn_like(x)
            te = t.view(B, 1, 1, 1)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == 'bf16'):
                v = fwd((1 - te) * x + te * z1, t, c_seq)
                loss = F.mse_loss(v.float(), z1 - x)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        if dev.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        losses = [step() for _ in range(a.warmup)]
        warm = time.perf_counter() - t0
        times = []
        for _ in range(a.steps):
            sync()
            t0 = time.perf_counter()
            losses.append(step())
            sync()
            times.append(time.perf_counter() - t0)
        s = sorted(times)[len(times) // 2]
        tokens = B * (text + image)
        tflops = 6 * n * tokens / s / 1e12
        peak = peak_bf16_tflops(device_name)
        mem = {'peak_memory_bytes': torch.cuda.max_memory_allocated(dev), 'peak_reserved_bytes': torch.cuda.max_memory_reserved(dev)} if dev.type == 'cuda' else {}
        print(json.dumps({'bench': 'mmdit-block-step' if a.block else 't2i-step', 'framework': 'torch', 'mode': mode, 'device': device_name, 'preset': name,
                          'precision': a.precision, 'parameters': n, 'batch': B, 'text_tokens': text, 'image_tokens': image, 'seconds_per_step': s,
                          'step_seconds': times, 'warmup_seconds': warm, 'tokens_per_s': tokens / s, 'tflops': tflops,
                          'mfu': None if math.isnan(peak) else tflops / peak, **mem, 'losses': losses, 'torch': torch.__version__}), flush=True)

    run(model, 'eager')
    if a.compile:
        if not hasattr(torch, 'compile'):
            print(json.dumps({'bench': 't2i-step', 'framework': 'torch', 'mode': 'compile', 'skipped': f'torch {torch.__version__} has no torch.compile'}))
        else:
            run(torch.compile(model), 'compile')


if __name__ == '__main__':
    main()

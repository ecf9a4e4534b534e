#!/usr/bin/env python3
"""PyTorch side of bench/compare-t5-vae.mjs (linears through oneDNN, see below): seconds for one forward of a T5-XL-sized encoder on 128 tokens
(pile-t5-xl's shape: UMT5, d_model 2048, 24 layers, 32 heads of 64, d_ff 5120, vocab 32128) or of the
SDXL-VAE decoder producing a 256x256 image, random weights of the real sizes, float32, no grad. The models
are the PyTorch references of scripts/make-t5-fixtures.py and scripts/make-vae-fixtures.py.

  python3 bench/torch_t5_vae.py t5|vae THREADS RUNS   -> {"seconds": median, "runs": [...]}
"""
import importlib.util, json, os, sys, time
import torch
import torch.utils.mkldnn

here = os.path.dirname(os.path.abspath(__file__))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(here, '..', 'scripts', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


T5_XL = {'model_type': 'umt5', 'vocab_size': 32128, 'd_model': 2048, 'd_kv': 64, 'd_ff': 5120, 'num_layers': 24, 'num_heads': 32,
         'relative_attention_num_buckets': 32, 'relative_attention_max_distance': 128, 'layer_norm_epsilon': 1e-6}
SDXL_VAE = {'block_out_channels': [128, 256, 512, 512], 'in_channels': 3, 'out_channels': 3, 'latent_channels': 4, 'layers_per_block': 2, 'norm_num_groups': 32}


def main():
    which, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with torch.no_grad():
        if which == 't5':
            m = load('make-t5-fixtures').T5Encoder(T5_XL).eval()
            for q in m.parameters():  # the values do not change the time
                q.uniform_(-0.05, 0.05)
            # oneDNN linears: the OpenBLAS sgemm behind F.linear ran at ~2 GFLOP/s on the loaded machine
            # (numpy's too), oneDNN at the expected speed; the convolutions already use oneDNN
            m = torch.utils.mkldnn.to_mkldnn(m)
            ids = torch.randint(3, 32000, (1, 128))
            mask = torch.ones(1, 128, dtype=torch.long)
            mask[0, 40:] = 0
            f = lambda: m(ids, mask)
        else:
            m = load('make-vae-fixtures').AutoencoderKL(SDXL_VAE).eval()
            z = torch.randn(1, 4, 32, 32)
            f = lambda: m.decode(z)
        if os.environ.get('WARMUP') != '0':
            f()  # warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({'seconds': times[len(times) // 2], 'runs': times}))


if __name__ == '__main__':
    main()

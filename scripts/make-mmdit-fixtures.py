#!/usr/bin/env python3
"""Parity fixtures for lavender's MMDiT: a PyTorch implementation written from docs/models.md
("MMDiT"), random weights and inputs; stores weights, inputs, output, MSE loss against a target and every
parameter gradient (safetensors under test/fixtures/mmdit/), plus an extend_pe case.

Run with Debian's PyTorch: /usr/bin/python3 scripts/make-mmdit-fixtures.py
"""
import importlib.util, json, math, os
import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('dit_fixtures', os.path.join(here, 'make-dit-fixtures.py'))
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)
OUT = os.path.join(here, '..', 'test', 'fixtures', 'mmdit')


def ln(x):
    return F.layer_norm(x.float(), x.shape[-1:], eps=1e-5).type_as(x)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def hidden(dim):
    n = int(2 * 4 * dim / 3)
    return 256 * ((n + 255) // 256)


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        h = hidden(dim)
        self.c_fc1, self.c_fc2, self.c_proj = nn.Linear(dim, h, bias=False), nn.Linear(dim, h, bias=False), nn.Linear(h, dim, bias=False)

    def forward(self, x):
        return self.c_proj(F.silu(self.c_fc1(x)) * self.c_fc2(x))


def mod(G, n):
    return nn.Sequential(nn.SiLU(), nn.Linear(G, n, bias=False))


def heads(x, w, H):
    B, T, D = x.shape
    return w(x).view(B, T, H, D // H)


def attend(q, k, v):
    q, k, v = (z.permute(0, 2, 1, 3) for z in (q, k, v))
    a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v
    return a.permute(0, 2, 1, 3).flatten(-2)


class DoubleAttn(nn.Module):
    def __init__(self, dim, H):
        super().__init__()
        self.H = H
        for n in ('w1q', 'w1k', 'w1v', 'w1o', 'w2q', 'w2k', 'w2v', 'w2o'):
            setattr(self, n, nn.Linear(dim, dim, bias=False))

    def forward(self, c, x):
        cq, ck, cv = ln(heads(c, self.w1q, self.H)), ln(heads(c, self.w1k, self.H)), heads(c, self.w1v, self.H)
        xq, xk, xv = ln(heads(x, self.w2q, self.H)), ln(heads(x, self.w2k, self.H)), heads(x, self.w2v, self.H)
        out = attend(torch.cat([cq, xq], 1), torch.cat([ck, xk], 1), torch.cat([cv, xv], 1))
        return self.w1o(out[:, :c.shape[1]]), self.w2o(out[:, c.shape[1]:])


class SingleAttn(nn.Module):
    def __init__(self, dim, H):
        super().__init__()
        self.H = H
        for n in ('w1q', 'w1k', 'w1v', 'w1o'):
            setattr(self, n, nn.Linear(dim, dim, bias=False))

    def forward(self, cx):
        return self.w1o(attend(ln(heads(cx, self.w1q, self.H)), ln(heads(cx, self.w1k, self.H)), heads(cx, self.w1v, self.H)))


class Double(nn.Module):
    def __init__(self, dim, H, G):
        super().__init__()
        self.modC, self.modX = mod(G, 6 * dim), mod(G, 6 * dim)
        self.mlpC, self.mlpX = MLP(dim), MLP(dim)
        self.attn = DoubleAttn(dim, H)

    def forward(self, c, x, g):
        cs1, csc1, cg1, cs2, csc2, cg2 = self.modC(g).chunk(6, dim=1)
        xs1, xsc1, xg1, xs2, xsc2, xg2 = self.modX(g).chunk(6, dim=1)
        ac, ax = self.attn(modulate(ln(c), cs1, csc1), modulate(ln(x), xs1, xsc1))
        c2 = ln(c + cg1.unsqueeze(1) * ac)
        x2 = ln(x + xg1.unsqueeze(1) * ax)
        return (c + cg2.unsqueeze(1) * self.mlpC(modulate(c2, cs2, csc2)),
                x + xg2.unsqueeze(1) * self.mlpX(modulate(x2, xs2, xsc2)))


class Single(nn.Module):
    def __init__(self, dim, H, G):
        super().__init__()
        self.modCX, self.attn, self.mlp = mod(G, 6 * dim), SingleAttn(dim, H), MLP(dim)

    def forward(self, cx, g):
        s1, sc1, g1, s2, sc2, g2 = self.modCX(g).chunk(6, dim=1)
        u = ln(cx + g1.unsqueeze(1) * self.attn(modulate(ln(cx), s1, sc1)))
        return cx + g2.unsqueeze(1) * self.mlp(modulate(u, s2, sc2))


class MMDiT(nn.Module):
    def __init__(self, dim, n_layers, n_heads, global_conddim, max_seq, in_channels=4, out_channels=4, patch_size=2,
                 n_double_layers=4, cond_seq_dim=2048):
        super().__init__()
        G, p = global_conddim, patch_size
        self.p, self.out = p, out_channels
        self.t_embedder = fx.TimeEmbed(G, 1000.0)
        self.cond_seq_linear = nn.Linear(cond_seq_dim, dim, bias=False)
        self.init_x_linear = nn.Linear(p * p * in_channels, dim)
        self.positional_encoding = nn.Parameter(torch.randn(1, max_seq, dim) * 0.1)
        self.register_tokens = nn.Parameter(torch.randn(1, 8, dim) * 0.02)
        self.double_layers = nn.ModuleList([Double(dim, n_heads, G) for _ in range(n_double_layers)])
        self.single_layers = nn.ModuleList([Single(dim, n_heads, G) for _ in range(n_layers - n_double_layers)])
        self.final_linear = nn.Linear(dim, p * p * out_channels, bias=False)
        self.modF = mod(G, 2 * dim)

    def forward(self, x, t, c_seq):
        B, C, H, W = x.shape
        p = self.p
        h = x.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)
        img = self.init_x_linear(h) + self.positional_encoding[:, :h.shape[1]]
        txt = torch.cat([self.register_tokens.repeat(B, 1, 1), self.cond_seq_linear(c_seq)], dim=1)
        g = self.t_embedder(t)
        for layer in self.double_layers:
            txt, img = layer(txt, img, g)
        if len(self.single_layers):
            cx = torch.cat([txt, img], 1)
            for layer in self.single_layers:
                cx = layer(cx, g)
            img = cx[:, txt.shape[1]:]
        fs, fsc = self.modF(g).chunk(2, dim=1)
        out = self.final_linear(modulate(img, fs, fsc))
        hp, wp = H // p, W // p
        return out.reshape(B, hp, wp, p, p, self.out).permute(0, 5, 1, 3, 2, 4).reshape(B, self.out, H, W)


# src/models/mmdit.ts MMDIT_PRESETS (the defaults fill in as resolveMMDiTConfig does); the benches and the
# parameter count use them
PRESETS = {
    'lavenderflow-2560-highres': dict(dim=2560, n_layers=36, n_heads=8, global_conddim=2560, max_seq=4096),
    'lavenderflow-3072': dict(dim=3072, n_layers=36, n_heads=12, global_conddim=3072, max_seq=256),
    'mmdit-tiny': dict(dim=64, n_layers=3, n_double_layers=2, n_heads=4, global_conddim=64, cond_seq_dim=32, max_seq=64),
    'mmdit-small': dict(dim=256, n_layers=6, n_double_layers=2, n_heads=4, global_conddim=256, cond_seq_dim=256, max_seq=256),
}


CASES = {
    # name: (config, x shape, Tc)
    'tiny': ({'dim': 64, 'n_layers': 3, 'n_double_layers': 2, 'n_heads': 4, 'global_conddim': 48, 'cond_seq_dim': 32, 'max_seq': 64}, (2, 4, 8, 8), 5),
    'single_only_nonsquare': ({'dim': 64, 'n_layers': 2, 'n_double_layers': 0, 'n_heads': 2, 'global_conddim': 64, 'cond_seq_dim': 16,
                               'max_seq': 32, 'in_channels': 4, 'out_channels': 3}, (2, 4, 8, 12), 3),
}


def randomise(model):
    """Default init, plus small random values where the release initialises to zero, so nothing is trivial."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if '.mod' in n or n.startswith('mod') or n in ('final_linear.weight', 'cond_seq_linear.weight'):
                p.copy_(0.05 * torch.randn_like(p))


if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    for name, (config, xs, Tc) in CASES.items():
        torch.manual_seed(0)
        model = MMDiT(**config)
        randomise(model)
        x = torch.randn(*xs)
        t = torch.rand(xs[0])
        c_seq = torch.randn(xs[0], Tc, config['cond_seq_dim'])
        target = torch.randn(xs[0], config.get('out_channels', 4), xs[2], xs[3])
        out = model(x, t, c_seq)
        loss = F.mse_loss(out, target)
        loss.backward()
        with open(os.path.join(OUT, f'{name}.config.json'), 'w') as f:
            json.dump(config, f, indent=1)
        fx.save_safetensors(os.path.join(OUT, f'{name}.weights.safetensors'), dict(model.state_dict()))
        fx.save_safetensors(os.path.join(OUT, f'{name}.inputs.safetensors'), {'x': x, 't': t, 'c_seq': c_seq, 'target': target})
        expected = {'output': out, 'loss': loss.reshape(1)}
        expected.update({f'grad.{n}': p.grad for n, p in model.named_parameters()})
        fx.save_safetensors(os.path.join(OUT, f'{name}.expected.safetensors'), expected)
        if name == 'tiny':
            # the release's checkpoints: fp16 values, keys prefixed 'model.', written by torch.save
            half = {f'model.{k}': v.half() for k, v in model.state_dict().items()}
            torch.save(half, os.path.join(OUT, 'tiny.weights-fp16.pt'))
            fx.save_safetensors(os.path.join(OUT, 'tiny.weights-fp16.safetensors'), half)
        print(name, 'params', sum(p.numel() for p in model.parameters()), 'loss', loss.item())
    # extend_pe: the first 4x4 slots of a [1, 20, 6] table resized to 6x8, bilinear, align_corners=False
    torch.manual_seed(1)
    pe = torch.randn(1, 20, 6)
    grid = pe[0, :16].view(4, 4, 6).permute(2, 0, 1).unsqueeze(0)
    resized = F.interpolate(grid, size=(6, 8), mode='bilinear', align_corners=False).squeeze(0).permute(1, 2, 0).reshape(1, 48, 6)
    fx.save_safetensors(os.path.join(OUT, 'extend_pe.safetensors'), {'pe': pe, 'resized': resized})
    print('done')

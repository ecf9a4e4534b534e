#!/usr/bin/env python3
"""Parity fixtures for lavender's DiT: a PyTorch implementation written from docs/models.md
("DiT"), random weights, random inputs; stores weights, inputs, the output, the MSE loss against a target
and the gradient of every parameter, as safetensors files under test/fixtures/dit/.

Run with Debian's PyTorch: /usr/bin/python3 scripts/make-dit-fixtures.py
"""
import json, math, os, struct
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'dit')


def save_safetensors(path, tensors):
    dtypes = {torch.float32: 'F32', torch.int64: 'I64', torch.float64: 'F64', torch.float16: 'F16', torch.bfloat16: 'BF16'}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {'dtype': dtypes[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimeEmbed(nn.Module):
    def __init__(self, hidden, s):
        super().__init__()
        self.s = s
        self.mlp = nn.Sequential(nn.Linear(256, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t):
        freqs = self.s * torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
        args = t[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class Attn(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.q_norm, self.k_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def rotary(self, x):  # x [B, T, H, hd]; rotate pairs (2m, 2m+1) by n * 10000^(-2m/hd)
        B, T, H, hd = x.shape
        freqs = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(T).float(), freqs)  # [T, hd/2]
        c, s = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(3)

    def forward(self, x):
        B, T, D = x.shape
        hd = D // self.heads
        q = self.rotary(self.q_norm(self.wq(x)).view(B, T, self.heads, hd))
        k = self.rotary(self.k_norm(self.wk(x)).view(B, T, self.heads, hd))
        v = self.wv(x).view(B, T, self.heads, hd)
        q, k, v = (z.permute(0, 2, 1, 3) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1) @ v
        return self.wo(a.permute(0, 2, 1, 3).reshape(B, T, D))


class FF(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(dim, hidden, bias=False), nn.Linear(hidden, dim, bias=False), nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, dim, heads, multiple_of, eps):
        super().__init__()
        E = min(dim, 1024)
        hidden = int(2 * 4 * dim / 3)
        hidden = multiple_of * ((hidden + multiple_of - 1) // multiple_of)
        self.attention, self.feed_forward = Attn(dim, heads), FF(dim, hidden)
        self.attention_norm, self.ffn_norm = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(E, 6 * dim))

    def forward(self, x, c):
        s1, sc1, g1, s2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attention(modulate(self.attention_norm(x), s1, sc1))
        return x + g2.unsqueeze(1) * self.feed_forward(modulate(self.ffn_norm(x), s2, sc2))


class Final(nn.Module):
    def __init__(self, dim, out):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(min(dim, 1024), 2 * dim))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class LabelEmbed(nn.Module):
    def __init__(self, n, hidden, p):
        super().__init__()
        self.embedding_table = nn.Embedding(n + (1 if p > 0 else 0), hidden)


class DiT(nn.Module):
    def __init__(self, in_channels, input_size, dim, n_layers, n_heads, patch_size=2, multiple_of=256,
                 norm_eps=1e-5, class_dropout_prob=0.1, num_classes=10):
        super().__init__()
        half, E = dim // 2, min(dim, 1024)
        self.p, self.c, self.size = patch_size, in_channels, input_size
        self.init_conv_seq = nn.Sequential(
            nn.Conv2d(in_channels, half, 5, padding=2), nn.SiLU(), nn.GroupNorm(32, half),
            nn.Conv2d(half, half, 5, padding=2), nn.SiLU(), nn.GroupNorm(32, half))
        self.x_embedder = nn.Linear(patch_size * patch_size * half, dim)
        self.t_embedder = TimeEmbed(E, 1.0)
        self.y_embedder = LabelEmbed(num_classes, E, class_dropout_prob)
        self.layers = nn.ModuleList([Block(dim, n_heads, multiple_of, norm_eps) for _ in range(n_layers)])
        self.final_layer = Final(dim, patch_size * patch_size * in_channels)

    def forward(self, x, t, y):
        p, B = self.p, x.shape[0]
        h = self.init_conv_seq(x)
        _, C, H, W = h.shape
        h = h.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // p) * (W // p), C * p * p)
        h = self.x_embedder(h)
        c = self.t_embedder(t) + self.y_embedder.embedding_table(y)
        for layer in self.layers:
            h = layer(h, c)
        out = self.final_layer(h, c)
        g = self.size // p
        out = out.reshape(B, g, g, p, p, self.c).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(B, self.c, g * p, g * p)


CASES = {
    # name: (config, batch)
    'small': ({'in_channels': 1, 'input_size': 8, 'dim': 64, 'n_layers': 2, 'n_heads': 4}, 3),
    'rgb': ({'in_channels': 3, 'input_size': 8, 'dim': 64, 'n_layers': 1, 'n_heads': 2, 'patch_size': 4,
             'multiple_of': 32, 'norm_eps': 1e-6, 'num_classes': 5}, 2),
}

if __name__ == '__main__':
    os.makedirs(OUT, exist_ok=True)
    for name, (config, B) in CASES.items():
        torch.manual_seed(0)
        model = DiT(**config)
        with torch.no_grad():  # PyTorch's default init, with norms perturbed so no parameter is trivial
            for n, p in model.named_parameters():
                if 'norm' in n or 'init_conv_seq.2' in n or 'init_conv_seq.5' in n:
                    p.copy_((1.0 if n.endswith('weight') else 0.0) + 0.1 * torch.randn_like(p))
                elif n.startswith('final_layer.linear'):
                    p.copy_(0.05 * torch.randn_like(p))
        C, S = config['in_channels'], config['input_size']
        x = torch.randn(B, C, S, S)
        t = torch.rand(B)
        y = torch.randint(0, config.get('num_classes', 10) + 1, (B,))
        target = torch.randn(B, C, S, S)
        out = model(x, t, y)
        loss = F.mse_loss(out, target)
        loss.backward()
        with open(os.path.join(OUT, f'{name}.config.json'), 'w') as f:
            json.dump(config, f, indent=1)
        save_safetensors(os.path.join(OUT, f'{name}.weights.safetensors'), dict(model.state_dict()))
        save_safetensors(os.path.join(OUT, f'{name}.inputs.safetensors'), {'x': x, 't': t, 'y': y, 'target': target})
        expected = {'output': out, 'loss': loss.reshape(1)}
        expected.update({f'grad.{n}': p.grad for n, p in model.named_parameters()})
        save_safetensors(os.path.join(OUT, f'{name}.expected.safetensors'), expected)
        print(name, 'params', sum(p.numel() for p in model.parameters()), 'loss', loss.item())

#!/usr/bin/env python3
"""Parity fixtures for lavender's SDXL-VAE: a PyTorch AutoencoderKL written from the published architecture
(diffusers' AutoencoderKL with DownEncoderBlock2D / UpDecoderBlock2D, as stabilityai/sdxl-vae uses it:
resnet blocks with group norm (eps 1e-6) and SiLU, a 1x1 shortcut when the width changes, stride-2 convs
after padding right/bottom, nearest-2x upsampling then a conv, a middle of resnet / single-head attention
(to_q, to_k, to_v, to_out.0) / resnet, quant and post-quant 1x1 convs), a small random config saved as a
diffusers folder (config.json + diffusion_pytorch_model.safetensors, diffusers' key names), and:

  io.safetensors: images [2, 3, 24, 24], mean and logvar of encode(images), latents [2, 4, 6, 6],
                  decoded = decode(latents) [2, 3, 24, 24]

Run: /usr/bin/python3 scripts/make-vae-fixtures.py
"""
import importlib.util, json, os
import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('dit_fixtures', os.path.join(here, 'make-dit-fixtures.py'))
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)
OUT = os.path.join(here, '..', 'test', 'fixtures', 'vae')
EPS = 1e-6


class Resnet(nn.Module):
    def __init__(self, cin, cout, g):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(g, cin, eps=EPS), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(g, cout, eps=EPS), nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attn(nn.Module):
    def __init__(self, c, g):
        super().__init__()
        self.group_norm = nn.GroupNorm(g, c, eps=EPS)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x).view(B, C, H * W).transpose(1, 2)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        p = torch.softmax(q @ k.transpose(1, 2) / C ** 0.5, dim=-1)
        o = self.to_out[0](p @ v)
        return o.transpose(1, 2).reshape(B, C, H, W) + x


class Mid(nn.Module):
    def __init__(self, c, g):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(c, c, g), Resnet(c, c, g)])
        self.attentions = nn.ModuleList([Attn(c, g)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Down(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class Level(nn.Module):
    def __init__(self, cin, cout, n, g, sampler):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin if j == 0 else cout, cout, g) for j in range(n)])
        if sampler == 'down':
            self.downsamplers = nn.ModuleList([Down(cout)])
        if sampler == 'up':
            self.upsamplers = nn.ModuleList([Up(cout)])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        for s in getattr(self, 'downsamplers', []) or getattr(self, 'upsamplers', []):
            x = s(x)
        return x


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch, g = c['block_out_channels'], c['norm_num_groups']
        self.conv_in = nn.Conv2d(c['in_channels'], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([Level(ch[max(i - 1, 0)], o, c['layers_per_block'], g, 'down' if i < len(ch) - 1 else None) for i, o in enumerate(ch)])
        self.mid_block = Mid(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS)
        self.conv_out = nn.Conv2d(ch[-1], 2 * c['latent_channels'], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for b in self.down_blocks:
            h = b(h)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(h))))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        rev, g = list(reversed(c['block_out_channels'])), c['norm_num_groups']
        self.conv_in = nn.Conv2d(c['latent_channels'], rev[0], 3, padding=1)
        self.mid_block = Mid(rev[0], g)
        self.up_blocks = nn.ModuleList([Level(rev[max(i - 1, 0)], o, c['layers_per_block'] + 1, g, 'up' if i < len(rev) - 1 else None) for i, o in enumerate(rev)])
        self.conv_norm_out = nn.GroupNorm(g, rev[-1], eps=EPS)
        self.conv_out = nn.Conv2d(rev[-1], c['out_channels'], 3, padding=1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            h = b(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, c):
        super().__init__()
        l = c['latent_channels']
        self.encoder, self.decoder = Encoder(c), Decoder(c)
        self.quant_conv, self.post_quant_conv = nn.Conv2d(2 * l, 2 * l, 1), nn.Conv2d(l, l, 1)

    def encode(self, x):
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


def main():
    torch.manual_seed(0)
    c = {'_class_name': 'AutoencoderKL', 'act_fn': 'silu', 'block_out_channels': [8, 16, 16], 'down_block_types': ['DownEncoderBlock2D'] * 3,
         'up_block_types': ['UpDecoderBlock2D'] * 3, 'in_channels': 3, 'out_channels': 3, 'latent_channels': 4, 'layers_per_block': 2,
         'norm_num_groups': 4, 'sample_size': 24, 'scaling_factor': 0.13025, 'force_upcast': True}
    m = AutoencoderKL(c)
    with torch.no_grad():  # weights further from the defaults, so norms' affine terms and biases matter
        for name, p in m.named_parameters():
            if 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith('bias'):
                p.copy_(0.2 * torch.randn_like(p))
    images = torch.rand(2, 3, 24, 24) * 2 - 1
    latents = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        mean, logvar = m.encode(images)
        decoded = m.decode(latents)
    os.makedirs(OUT, exist_ok=True)
    fx.save_safetensors(os.path.join(OUT, 'diffusion_pytorch_model.safetensors'), dict(m.state_dict()))
    with open(os.path.join(OUT, 'config.json'), 'w') as f:
        json.dump(c, f, indent=1)
    fx.save_safetensors(os.path.join(OUT, 'io.safetensors'), {'images': images, 'mean': mean, 'logvar': logvar, 'latents': latents, 'decoded': decoded})
    print('params', sum(p.numel() for p in m.parameters()), 'decoded', decoded.shape, float(decoded.abs().mean()), 'mean', float(mean.abs().mean()))


if __name__ == '__main__':
    main()

#!/usr/bin/env python3
"""Parity fixtures for lavender's T5 encoder: a PyTorch T5 encoder written from the published architecture
(T5 v1.1 / UMT5 as in HF transformers' modeling_t5.py and modeling_umt5.py: RMS layer norm with float32
variance, no biases, unscaled attention with a bucketed relative-position bias, gated-GELU (tanh) feed
forward), small random configs saved as HF folders (config.json, model.safetensors with HF key names and
decoder/lm_head tensors the encoder must ignore, the tokenizer), and the encoder output for given ids and
mask.

  test/fixtures/t5/t5/    model_type t5   (bias table in block 0 only), float32 weights
  test/fixtures/t5/umt5/  model_type umt5 (a table in every block), bfloat16 weights
  each with io.safetensors: input_ids, attention_mask [B, T] (int64), last_hidden_state [B, T, d_model]

Run: /usr/bin/python3 scripts/make-t5-fixtures.py
"""
import importlib.util, json, math, os, shutil
import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('dit_fixtures', os.path.join(here, 'make-dit-fixtures.py'))
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)
OUT = os.path.join(here, '..', 'test', 'fixtures', 't5')
TOKENIZER = os.path.join(here, '..', 'test', 'fixtures', 'tokenizer', 'llama.model')


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        var = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(var + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)
        return self.weight * x


def bucket(rel, num_buckets, max_distance):
    """Bidirectional buckets: half for keys after the query; exact up to num_buckets/4, then log-spaced."""
    num_buckets //= 2
    out = (rel > 0).to(torch.long) * num_buckets
    rel = rel.abs()
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return out + torch.where(rel < max_exact, rel, large)


class Attention(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        inner = c['num_heads'] * c['d_kv']
        self.q, self.k, self.v = (nn.Linear(c['d_model'], inner, bias=False) for _ in range(3))
        self.o = nn.Linear(inner, c['d_model'], bias=False)
        self.c = c
        if has_bias:
            self.relative_attention_bias = nn.Embedding(c['relative_attention_num_buckets'], c['num_heads'])

    def bias(self, T):
        pos = torch.arange(T)
        b = bucket(pos[None, :] - pos[:, None], self.c['relative_attention_num_buckets'], self.c['relative_attention_max_distance'])
        return self.relative_attention_bias(b).permute(2, 0, 1).unsqueeze(0)  # [1, H, Tq, Tk]

    def forward(self, x, position_bias, mask_add):
        B, T, _ = x.shape
        H, dk = self.c['num_heads'], self.c['d_kv']
        heads = lambda t: t.view(B, T, H, dk).transpose(1, 2)
        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        scores = q @ k.transpose(-1, -2)  # no 1/sqrt(d): T5 folds it into the initialisation
        scores = scores + position_bias + mask_add
        p = F.softmax(scores.float(), dim=-1).type_as(scores)
        return self.o((p @ v).transpose(1, 2).reshape(B, T, H * dk))


class FF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wi_0 = nn.Linear(c['d_model'], c['d_ff'], bias=False)
        self.wi_1 = nn.Linear(c['d_model'], c['d_ff'], bias=False)
        self.wo = nn.Linear(c['d_ff'], c['d_model'], bias=False)

    def forward(self, x):
        return self.wo(F.gelu(self.wi_0(x), approximate='tanh') * self.wi_1(x))


class SelfAttnLayer(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.SelfAttention = Attention(c, has_bias)
        self.layer_norm = RMSNorm(c['d_model'], c['layer_norm_epsilon'])


class FFLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.DenseReluDense = FF(c)
        self.layer_norm = RMSNorm(c['d_model'], c['layer_norm_epsilon'])


class Block(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.layer = nn.ModuleList([SelfAttnLayer(c, has_bias), FFLayer(c)])


class Stack(nn.Module):
    def __init__(self, c):
        super().__init__()
        per_block = c['model_type'] == 'umt5'
        self.block = nn.ModuleList([Block(c, per_block or i == 0) for i in range(c['num_layers'])])
        self.final_layer_norm = RMSNorm(c['d_model'], c['layer_norm_epsilon'])


class T5Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.shared = nn.Embedding(c['vocab_size'], c['d_model'])
        self.encoder = Stack(c)

    def forward(self, ids, mask):
        x = self.shared(ids)
        T = ids.shape[1]
        mask_add = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        bias = None
        for blk in self.encoder.block:
            att, ff = blk.layer
            if self.c['model_type'] == 'umt5' or bias is None:
                bias = att.SelfAttention.bias(T)
            x = x + att.SelfAttention(att.layer_norm(x), bias, mask_add)
            x = x + ff.DenseReluDense(ff.layer_norm(x))
        return self.encoder.final_layer_norm(x)


def make(name, model_type, dtype, seed):
    torch.manual_seed(seed)
    c = {'model_type': model_type, 'architectures': ['UMT5ForConditionalGeneration' if model_type == 'umt5' else 'T5ForConditionalGeneration'],
         'vocab_size': 400, 'd_model': 32, 'd_kv': 8, 'd_ff': 48, 'num_layers': 3, 'num_decoder_layers': 1, 'num_heads': 4,
         'relative_attention_num_buckets': 8, 'relative_attention_max_distance': 16, 'layer_norm_epsilon': 1e-6,
         'feed_forward_proj': 'gated-gelu', 'dense_act_fn': 'gelu_new', 'is_gated_act': True, 'tie_word_embeddings': False,
         'pad_token_id': 0, 'eos_token_id': 2, 'decoder_start_token_id': 0, 'dropout_rate': 0.1, 'initializer_factor': 1.0}
    m = T5Encoder(c)
    with torch.no_grad():
        for p in m.parameters():  # larger than nn defaults so every part of the block matters
            p.copy_(torch.randn_like(p) * (0.5 if p.dim() == 1 else 0.3))
            if p.dim() == 1:
                p.add_(1.0)
        if dtype == torch.bfloat16:  # the fixture runs on the bf16-rounded weights, as lavender widens them
            for p in m.parameters():
                p.copy_(p.to(torch.bfloat16).float())
    B, T = 2, 13
    ids = torch.randint(3, c['vocab_size'], (B, T))
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 9:] = 0
    ids[1, 9:] = 0
    ids[0, T - 1] = ids[1, 8] = 2
    with torch.no_grad():
        out = m(ids, mask) * mask[..., None]
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    sd = {k: v.to(dtype) for k, v in m.state_dict().items()}
    sd['encoder.embed_tokens.weight'] = sd['shared.weight']  # tied, as HF files carry it
    # a decoder and lm_head the encoder must skip
    sd['decoder.block.0.layer.0.SelfAttention.q.weight'] = torch.zeros(32, 32, dtype=dtype)
    sd['decoder.final_layer_norm.weight'] = torch.ones(32, dtype=dtype)
    sd['lm_head.weight'] = torch.zeros(c['vocab_size'], 32, dtype=dtype)
    fx.save_safetensors(os.path.join(d, 'model.safetensors'), sd)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(c, f, indent=1)
    shutil.copyfile(TOKENIZER, os.path.join(d, 'spiece.model'))
    fx.save_safetensors(os.path.join(d, 'io.safetensors'), {'input_ids': ids, 'attention_mask': mask, 'last_hidden_state': out})
    print(name, out.shape, float(out.abs().mean()))


if __name__ == '__main__':
    make('t5', 't5', torch.float32, 0)
    make('umt5', 'umt5', torch.bfloat16, 1)

// The SDXL VAE: diffusers' AutoencoderKL with DownEncoderBlock2D / UpDecoderBlock2D blocks, parameter for
// parameter under diffusers' names (encoder.down_blocks.0.resnets.0.norm1.weight, ...). Encoder: conv_in;
// per level `layers_per_block` resnet blocks and (but the last) a stride-2 conv after padding right and
// bottom by one; a middle of resnet, single-head self-attention, resnet; group norm, SiLU, conv_out to
// 2*latent channels (mean, log-variance); quant_conv (1x1). Decoder: post_quant_conv (1x1), conv_in, the
// middle, per level (widest first) `layers_per_block + 1` resnet blocks and (but the last) nearest-2x
// upsampling then a conv; group norm, SiLU, conv_out. Group norms: `norm_num_groups` groups, eps 1e-6.
import { join } from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import { add, clamp, exp, mul, silu } from '../ops/elementwise.js';
import { chunk, pad } from '../ops/movement.js';
import { scaledDotProductAttention } from '../ops/nn.js';
import { contiguous, expand, reshape, transpose, unsqueeze } from '../ops/views.js';
import { randn } from '../ops/creation.js';
import { Conv2d, GroupNorm, Linear, type InitOptions } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import type { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import { loadHfWeights, readHfConfig } from '../io/hf-folder.js';

export interface VAEConfig {
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  layers_per_block: number;
  latent_channels: number;
  norm_num_groups: number;
  scaling_factor: number;
  /** diffusers' shift_factor (SD3/Flux VAEs); null/0 for SDXL. Latents are (z - shift) * scale. */
  shift_factor: number;
  use_quant_conv: boolean;
  use_post_quant_conv: boolean;
  mid_block_add_attention: boolean;
}

/** The SDXL VAE's configuration (stabilityai/sdxl-vae). */
export const SDXL_VAE_CONFIG: VAEConfig = {
  in_channels: 3, out_channels: 3, block_out_channels: [128, 256, 512, 512], layers_per_block: 2, latent_channels: 4,
  norm_num_groups: 32, scaling_factor: 0.13025, shift_factor: 0, use_quant_conv: true, use_post_quant_conv: true, mid_block_add_attention: true,
};

/** The VAE's config from a diffusers config.json object; every wrong field is named at once. */
export function resolveVAEConfig(raw: Record<string, unknown>, source = 'config.json'): VAEConfig {
  const problems: string[] = [];
  const num = (k: string, fallback?: number): number => {
    const v = raw[k] ?? fallback;
    if (!Number.isInteger(v) || (v as number) < 1) problems.push(`'${k}' must be a positive integer, got ${JSON.stringify(raw[k])}`);
    return v as number;
  };
  const flag = (k: string): boolean => {
    const v = raw[k] ?? true;
    if (typeof v !== 'boolean') problems.push(`'${k}' must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const c: VAEConfig = {
    in_channels: num('in_channels', 3), out_channels: num('out_channels', 3), block_out_channels: [],
    layers_per_block: num('layers_per_block', 1), latent_channels: num('latent_channels', 4), norm_num_groups: num('norm_num_groups', 32),
    scaling_factor: 1, shift_factor: 0, use_quant_conv: flag('use_quant_conv'), use_post_quant_conv: flag('use_post_quant_conv'),
    mid_block_add_attention: flag('mid_block_add_attention'),
  };
  const boc = raw.block_out_channels ?? [64];
  if (!Array.isArray(boc) || boc.length === 0 || !boc.every((v) => Number.isInteger(v) && v > 0)) problems.push(`'block_out_channels' must be a list of positive integers, got ${JSON.stringify(raw.block_out_channels)}`);
  else c.block_out_channels = boc as number[];
  for (const ch of c.block_out_channels) if (c.norm_num_groups > 0 && ch % c.norm_num_groups) problems.push(`block_out_channels entry ${ch} is not divisible by norm_num_groups ${c.norm_num_groups}`);
  const sf = raw.scaling_factor ?? 0.18215;
  if (typeof sf !== 'number' || !(sf > 0)) problems.push(`'scaling_factor' must be a positive number, got ${JSON.stringify(raw.scaling_factor)}`);
  else c.scaling_factor = sf;
  const shift = raw.shift_factor ?? 0;
  if (typeof shift !== 'number') problems.push(`'shift_factor' must be a number or null, got ${JSON.stringify(raw.shift_factor)}`);
  else c.shift_factor = shift;
  const n = c.block_out_channels.length;
  for (const [k, want] of [['down_block_types', 'DownEncoderBlock2D'], ['up_block_types', 'UpDecoderBlock2D']] as const) {
    const v = raw[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.length !== n || v.some((x) => x !== want)) problems.push(`'${k}' must be ${n} x "${want}" (one per block_out_channels entry), got ${JSON.stringify(v)}`);
  }
  if (raw.act_fn !== undefined && raw.act_fn !== 'silu') problems.push(`'act_fn' must be "silu", got ${JSON.stringify(raw.act_fn)}`);
  if (problems.length) throw new Error(`${source}: ${problems.join('; ')}`);
  return c;
}

const EPS = 1e-6;

class ResnetBlock extends Module {
  readonly norm1: GroupNorm; readonly conv1: Conv2d; readonly norm2: GroupNorm; readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | null;
  constructor(cin: number, cout: number, groups: number, o: InitOptions) {
    super();
    this.norm1 = this.module('norm1', new GroupNorm(groups, cin, EPS, o));
    this.conv1 = this.module('conv1', new Conv2d(cin, cout, 3, { ...o, padding: 1 }));
    this.norm2 = this.module('norm2', new GroupNorm(groups, cout, EPS, o));
    this.conv2 = this.module('conv2', new Conv2d(cout, cout, 3, { ...o, padding: 1 }));
    this.conv_shortcut = cin !== cout ? this.module('conv_shortcut', new Conv2d(cin, cout, 1, o)) : null;
  }
  forward(x: Tensor): Tensor {
    const h = this.conv2.forward(silu(this.norm2.forward(this.conv1.forward(silu(this.norm1.forward(x))))));
    return add(this.conv_shortcut ? this.conv_shortcut.forward(x) : x, h);
  }
}

/** Single-head self-attention over the pixels, with a group norm first and the input added back. */
class AttentionBlock extends Module {
  readonly group_norm: GroupNorm;
  readonly to_q: Linear; readonly to_k: Linear; readonly to_v: Linear;
  readonly to_out: ModuleList<Linear>;
  constructor(ch: number, groups: number, o: InitOptions) {
    super();
    this.group_norm = this.module('group_norm', new GroupNorm(groups, ch, EPS, o));
    this.to_q = this.module('to_q', new Linear(ch, ch, o));
    this.to_k = this.module('to_k', new Linear(ch, ch, o));
    this.to_v = this.module('to_v', new Linear(ch, ch, o));
    this.to_out = this.module('to_out', new ModuleList([new Linear(ch, ch, o)]));
  }
  forward(x: Tensor): Tensor {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const seq = transpose(reshape(this.group_norm.forward(x), [B, C, H * W]), 1, 2); // [B, HW, C]
    const head = (t: Tensor) => unsqueeze(t, 1); // one head of width C
    const a = scaledDotProductAttention(head(this.to_q.forward(seq)), head(this.to_k.forward(seq)), head(this.to_v.forward(seq)));
    const out = this.to_out.items[0]!.forward(reshape(a, [B, H * W, C]));
    return add(reshape(transpose(out, 1, 2), [B, C, H, W]), x);
  }
}

class MidBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock>;
  readonly attentions: ModuleList<AttentionBlock> | null;
  constructor(ch: number, groups: number, attention: boolean, o: InitOptions) {
    super();
    this.resnets = this.module('resnets', new ModuleList([new ResnetBlock(ch, ch, groups, o), new ResnetBlock(ch, ch, groups, o)]));
    this.attentions = attention ? this.module('attentions', new ModuleList([new AttentionBlock(ch, groups, o)])) : null;
  }
  forward(x: Tensor): Tensor {
    const [r0, r1] = this.resnets.items as [ResnetBlock, ResnetBlock];
    let h = scope(() => r0.forward(x));
    if (this.attentions) h = scope(() => this.attentions!.items[0]!.forward(h));
    return scope(() => r1.forward(h));
  }
}

/** A conv under a `conv` name, as diffusers' Downsample2D / Upsample2D hold it. */
class Resample extends Module {
  readonly conv: Conv2d;
  constructor(ch: number, readonly down: boolean, o: InitOptions) {
    super();
    this.conv = this.module('conv', new Conv2d(ch, ch, 3, { ...o, stride: down ? 2 : 1, padding: down ? 0 : 1 }));
  }
  forward(x: Tensor): Tensor {
    if (this.down) return this.conv.forward(pad(x, [0, 1, 0, 1])); // pad right and bottom, then stride 2
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const up = reshape(contiguous(expand(reshape(x, [B, C, H, 1, W, 1]), [B, C, H, 2, W, 2])), [B, C, 2 * H, 2 * W]);
    return this.conv.forward(up); // nearest 2x, then a conv
  }
}

class Level extends Module {
  readonly resnets: ModuleList<ResnetBlock>;
  readonly sampler: Resample | null;
  constructor(cin: number, cout: number, n: number, groups: number, resample: 'down' | 'up' | null, o: InitOptions) {
    super();
    this.resnets = this.module('resnets', new ModuleList(Array.from({ length: n }, (_, j) => new ResnetBlock(j === 0 ? cin : cout, cout, groups, o))));
    const name = resample === 'down' ? 'downsamplers' : 'upsamplers';
    this.sampler = resample ? this.module(name, new ModuleList([new Resample(cout, resample === 'down', o)])).items[0]! : null;
  }
  forward(x: Tensor): Tensor {
    // one scope per block: a block's intermediates (tens of MB each at 256^2) are freed when it ends
    for (const r of this.resnets.items) x = scope(() => r.forward(x));
    return this.sampler ? scope(() => this.sampler!.forward(x)) : x;
  }
}

class Encoder extends Module {
  readonly conv_in: Conv2d; readonly down_blocks: ModuleList<Level>; readonly mid_block: MidBlock;
  readonly conv_norm_out: GroupNorm; readonly conv_out: Conv2d;
  constructor(c: VAEConfig, o: InitOptions) {
    super();
    const ch = c.block_out_channels, g = c.norm_num_groups, last = ch[ch.length - 1]!;
    this.conv_in = this.module('conv_in', new Conv2d(c.in_channels, ch[0]!, 3, { ...o, padding: 1 }));
    this.down_blocks = this.module('down_blocks', new ModuleList(ch.map((cout, i) => new Level(i === 0 ? ch[0]! : ch[i - 1]!, cout, c.layers_per_block, g, i < ch.length - 1 ? 'down' : null, o))));
    this.mid_block = this.module('mid_block', new MidBlock(last, g, c.mid_block_add_attention, o));
    this.conv_norm_out = this.module('conv_norm_out', new GroupNorm(g, last, EPS, o));
    this.conv_out = this.module('conv_out', new Conv2d(last, 2 * c.latent_channels, 3, { ...o, padding: 1 }));
  }
  forward(x: Tensor): Tensor {
    let h = this.conv_in.forward(x);
    for (const b of this.down_blocks.items) h = b.forward(h);
    const m = this.mid_block.forward(h);
    return scope(() => this.conv_out.forward(silu(this.conv_norm_out.forward(m))));
  }
}

class Decoder extends Module {
  readonly conv_in: Conv2d; readonly mid_block: MidBlock; readonly up_blocks: ModuleList<Level>;
  readonly conv_norm_out: GroupNorm; readonly conv_out: Conv2d;
  constructor(c: VAEConfig, o: InitOptions) {
    super();
    const rev = [...c.block_out_channels].reverse(), g = c.norm_num_groups;
    this.conv_in = this.module('conv_in', new Conv2d(c.latent_channels, rev[0]!, 3, { ...o, padding: 1 }));
    this.mid_block = this.module('mid_block', new MidBlock(rev[0]!, g, c.mid_block_add_attention, o));
    this.up_blocks = this.module('up_blocks', new ModuleList(rev.map((cout, i) => new Level(i === 0 ? rev[0]! : rev[i - 1]!, cout, c.layers_per_block + 1, g, i < rev.length - 1 ? 'up' : null, o))));
    this.conv_norm_out = this.module('conv_norm_out', new GroupNorm(g, rev[rev.length - 1]!, EPS, o));
    this.conv_out = this.module('conv_out', new Conv2d(rev[rev.length - 1]!, c.out_channels, 3, { ...o, padding: 1 }));
  }
  forward(z: Tensor): Tensor {
    let h = this.mid_block.forward(this.conv_in.forward(z));
    for (const b of this.up_blocks.items) h = b.forward(h);
    return scope(() => this.conv_out.forward(silu(this.conv_norm_out.forward(h))));
  }
}

export class AutoencoderKL extends Module {
  readonly config: VAEConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quant_conv: Conv2d | null;
  readonly post_quant_conv: Conv2d | null;

  constructor(config: VAEConfig, o: InitOptions = {}) {
    super();
    this.config = config;
    const l = config.latent_channels;
    this.encoder = this.module('encoder', new Encoder(config, o));
    this.decoder = this.module('decoder', new Decoder(config, o));
    this.quant_conv = config.use_quant_conv ? this.module('quant_conv', new Conv2d(2 * l, 2 * l, 1, o)) : null;
    this.post_quant_conv = config.use_post_quant_conv ? this.module('post_quant_conv', new Conv2d(l, l, 1, o)) : null;
  }

  /** The downsampling factor: 2^(levels - 1) (8 for SDXL). */
  get factor(): number {
    return 2 ** (this.config.block_out_channels.length - 1);
  }

  /** images [B, in, H, W] in [-1, 1] -> the latent distribution's mean and log-variance [B, latent, H/f, W/f]. */
  encode(images: Tensor): { mean: Tensor; logvar: Tensor } {
    const c = this.config, f = this.factor;
    if (images.ndim !== 4 || images.shape[1] !== c.in_channels || images.shape[2]! % f || images.shape[3]! % f) {
      throw new Error(`AutoencoderKL.encode: images must be [B, ${c.in_channels}, H, W] with H and W multiples of ${f}, got ${images.describe()}`);
    }
    let moments = this.encoder.forward(images);
    if (this.quant_conv) moments = this.quant_conv.forward(moments);
    const [mean, logvar] = chunk(moments, 2, 1) as [Tensor, Tensor];
    return { mean, logvar: clamp(logvar, -30, 20) };
  }

  /** mean + exp(logvar / 2) * N(0, 1): a sample of the latent distribution. */
  sample(d: { mean: Tensor; logvar: Tensor }, generator?: Generator): Tensor {
    return add(d.mean, mul(exp(mul(d.logvar, 0.5)), randn([...d.mean.shape], { generator, device: d.mean.device })));
  }

  /** latents [B, latent, h, w] (VAE space, not scaled) -> images [B, out, f*h, f*w], nominally in [-1, 1]. */
  decode(z: Tensor): Tensor {
    const c = this.config;
    if (z.ndim !== 4 || z.shape[1] !== c.latent_channels) {
      throw new Error(`AutoencoderKL.decode: latents must be [B, ${c.latent_channels}, h, w] (this VAE has ${c.latent_channels} latent channels), got ${z.describe()}`);
    }
    return this.decoder.forward(this.post_quant_conv ? this.post_quant_conv.forward(z) : z);
  }
}

/** Attention names of older diffusers checkpoints -> the current ones. */
const LEGACY_ATTENTION: Array<[RegExp, string]> = [[/\.query\./, '.to_q.'], [/\.key\./, '.to_k.'], [/\.value\./, '.to_v.'], [/\.proj_attn\./, '.to_out.0.']];

/**
 * An AutoencoderKL from a diffusers folder (config.json + diffusion_pytorch_model.safetensors, or
 * model.safetensors), built on the meta device and given the file's tensors (16-bit stays 16-bit).
 * Every missing, unexpected or mis-shaped tensor is listed in one error.
 */
export function loadVAE(dir: string, device = 'cpu'): AutoencoderKL {
  const config = resolveVAEConfig(readHfConfig(dir), join(dir, 'config.json'));
  const model = new AutoencoderKL(config, { device: 'meta' });
  const { tensors, files } = loadHfWeights(dir, { device, names: ['diffusion_pytorch_model', 'model'] });
  const renamed: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(tensors)) {
    let name = k;
    if (name.includes('.attentions.')) for (const [re, to] of LEGACY_ATTENTION) name = name.replace(re, to);
    renamed[name] = v;
  }
  try {
    model.loadStateDict(renamed, { assign: true, device });
  } catch (e) {
    throw new Error(`${files.join(', ')}: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  model.eval();
  return model;
}

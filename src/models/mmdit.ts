// MMDiT, the SD3-style text-to-image network of LavenderFlow, exactly as docs/models.md "MMDiT":
// double-stream blocks (text c, image x, joint attention), then single-stream blocks over cat(c, x).
// Parameter names, shapes, initialisation and arithmetic match the release (quirks kept).
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../autograd/grad-mode.js';
import { add, mul, silu } from '../ops/elementwise.js';
import { cast, cat, chunk } from '../ops/movement.js';
import { layerNorm } from '../ops/nn.js';
import { swiglu } from '../ops/composite.js';
import { expand, reshape, slice } from '../ops/views.js';
import { Linear, normalInit, zero_, type InitOptions } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import { runPlan, type Blockwise, type ForwardPlan, type PlanBlock } from '../nn/plan.js';
import { attention, gatedAdd, mergeHeads, modulate, patchify, roundUp, splitHeads, TimestepEmbedder, unpatchify } from '../nn/blocks.js';
import { defaultGenerator } from '../tensor/random.js';
import { bilinearResize } from './interpolate.js';

export interface MMDiTConfig {
  in_channels?: number;
  out_channels?: number;
  patch_size?: number;
  dim: number;
  n_layers: number;
  n_double_layers?: number;
  n_heads: number;
  global_conddim: number;
  cond_seq_dim?: number;
  max_seq: number;
}

export const MMDIT_PRESETS: Record<string, MMDiTConfig> = {
  // the two 5.6B-class configurations of the release
  'lavenderflow-2560-highres': { dim: 2560, n_layers: 36, n_heads: 8, global_conddim: 2560, max_seq: 4096 },
  'lavenderflow-3072': { dim: 3072, n_layers: 36, n_heads: 12, global_conddim: 3072, max_seq: 256 },
  // small ones for tests and CPU runs
  'mmdit-tiny': { dim: 64, n_layers: 3, n_double_layers: 2, n_heads: 4, global_conddim: 64, cond_seq_dim: 32, max_seq: 64 },
  'mmdit-small': { dim: 256, n_layers: 6, n_double_layers: 2, n_heads: 4, global_conddim: 256, cond_seq_dim: 256, max_seq: 256 },
};

const KEYS = ['in_channels', 'out_channels', 'patch_size', 'dim', 'n_layers', 'n_double_layers', 'n_heads', 'global_conddim', 'cond_seq_dim', 'max_seq'];

export function resolveMMDiTConfig(cfg: Partial<MMDiTConfig>, source = 'config'): Required<MMDiTConfig> {
  for (const k of Object.keys(cfg)) if (!KEYS.includes(k)) throw new Error(`${source}: unknown MMDiT config key '${k}' (known: ${KEYS.join(', ')})`);
  const c = { in_channels: 4, out_channels: 4, patch_size: 2, n_double_layers: 4, cond_seq_dim: 2048, ...cfg } as Required<MMDiTConfig>;
  for (const k of KEYS as (keyof MMDiTConfig)[]) {
    const v = c[k];
    if (!Number.isInteger(v) || v < (k === 'n_double_layers' ? 0 : 1)) throw new Error(`${source}: '${k}' must be a ${k === 'n_double_layers' ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(v)}`);
  }
  if (c.dim % c.n_heads) throw new Error(`${source}: dim ${c.dim} is not divisible by n_heads ${c.n_heads}`);
  if (c.n_double_layers > c.n_layers) throw new Error(`${source}: n_double_layers ${c.n_double_layers} exceeds n_layers ${c.n_layers}`);
  return c;
}

/** Hidden width of the SwiGLU MLPs: round_up(int(2 * 4 * dim / 3), 256). */
export const mmditHidden = (dim: number) => roundUp(Math.trunc((2 * 4 * dim) / 3), 256);

/** Parameter-free LayerNorm over the last dim, eps 1e-5 (float32, as the release's Fp32LayerNorm). */
const ln = (x: Tensor) => layerNorm(x, [x.shape[x.ndim - 1]!], null, null, 1e-5);

class MLP extends Module {
  readonly c_fc1: Linear; readonly c_fc2: Linear; readonly c_proj: Linear;
  constructor(dim: number, o: InitOptions) {
    super();
    const h = mmditHidden(dim);
    this.c_fc1 = this.module('c_fc1', new Linear(dim, h, { ...o, bias: false }));
    this.c_fc2 = this.module('c_fc2', new Linear(dim, h, { ...o, bias: false }));
    this.c_proj = this.module('c_proj', new Linear(h, dim, { ...o, bias: false }));
  }
  forward(x: Tensor): Tensor {
    return this.c_proj.forward(swiglu(this.c_fc1.forward(x), this.c_fc2.forward(x)));
  }
}

/** Linear(G, k*dim, nobias) after SiLU, stored as `<name>.1` like nn.Sequential(SiLU, Linear). */
class Modulation extends ModuleList<Linear> {
  constructor(G: number, out: number, o: InitOptions) {
    super([null, new Linear(G, out, { ...o, bias: false })]);
  }
  forward(g: Tensor, parts: number): Tensor[] {
    return chunk(this.items[0]!.forward(silu(g)), parts, 1);
  }
}

/** q, k, v of one stream as [B, T, H, hd] with q and k layer-normed over the head dim. */
function qkv(x: Tensor, wq: Linear, wk: Linear, wv: Linear, heads: number): [Tensor, Tensor, Tensor] {
  const [B, T, D] = x.shape as [number, number, number];
  const split = (t: Tensor) => reshape(t, [B, T, heads, D / heads]);
  return [ln(split(wq.forward(x))), ln(split(wk.forward(x))), split(wv.forward(x))];
}

/** Options beyond the release's constructor arguments (muP experiments). */
export interface MMDiTOptions extends InitOptions {
  /** 'sqrt' (default, the release): softmax(q k^T / sqrt(hd)); 'linear': 1/hd, muP's attention scaling. */
  attentionScale?: 'sqrt' | 'linear';
  /** Multiplies the readout (final_linear output): muP uses 1 / width multiplier. Default 1. */
  outputMultiplier?: number;
}

/** softmax attention over [B, T, H, hd] streams (already concatenated), back to [B, T, D]. */
function jointAttention(q: Tensor, k: Tensor, v: Tensor, scaling: 'sqrt' | 'linear'): Tensor {
  const toHeads = (t: Tensor) => splitHeads(reshape(t, [t.shape[0]!, t.shape[1]!, -1]), t.shape[2]!);
  const hd = q.shape[3]!;
  return mergeHeads(attention(toHeads(q), toHeads(k), toHeads(v), scaling === 'linear' ? 1 / hd : 1 / Math.sqrt(hd)));
}

class DoubleAttention extends Module {
  readonly w1q: Linear; readonly w1k: Linear; readonly w1v: Linear; readonly w1o: Linear;
  readonly w2q: Linear; readonly w2k: Linear; readonly w2v: Linear; readonly w2o: Linear;
  constructor(dim: number, readonly heads: number, o: InitOptions, readonly scaling: 'sqrt' | 'linear') {
    super();
    const lin = (n: string) => this.module(n, new Linear(dim, dim, { ...o, bias: false }));
    this.w1q = lin('w1q'); this.w1k = lin('w1k'); this.w1v = lin('w1v'); this.w1o = lin('w1o');
    this.w2q = lin('w2q'); this.w2k = lin('w2k'); this.w2v = lin('w2v'); this.w2o = lin('w2o');
  }
  forward(c: Tensor, x: Tensor): [Tensor, Tensor] {
    const [cq, ck, cv] = qkv(c, this.w1q, this.w1k, this.w1v, this.heads);
    const [xq, xk, xv] = qkv(x, this.w2q, this.w2k, this.w2v, this.heads);
    const out = jointAttention(cat([cq, xq], 1), cat([ck, xk], 1), cat([cv, xv], 1), this.scaling);
    const Tc = c.shape[1]!;
    return [this.w1o.forward(slice(out, 1, 0, Tc)), this.w2o.forward(slice(out, 1, Tc))];
  }
}

class SingleAttention extends Module {
  readonly w1q: Linear; readonly w1k: Linear; readonly w1v: Linear; readonly w1o: Linear;
  constructor(dim: number, readonly heads: number, o: InitOptions, readonly scaling: 'sqrt' | 'linear') {
    super();
    const lin = (n: string) => this.module(n, new Linear(dim, dim, { ...o, bias: false }));
    this.w1q = lin('w1q'); this.w1k = lin('w1k'); this.w1v = lin('w1v'); this.w1o = lin('w1o');
  }
  forward(cx: Tensor): Tensor {
    const [q, k, v] = qkv(cx, this.w1q, this.w1k, this.w1v, this.heads);
    return this.w1o.forward(jointAttention(q, k, v, this.scaling));
  }
}

class DoubleBlock extends Module {
  readonly modC: Modulation; readonly modX: Modulation;
  readonly mlpC: MLP; readonly mlpX: MLP;
  readonly attn: DoubleAttention;
  constructor(c: Required<MMDiTConfig>, o: MMDiTOptions) {
    super();
    this.modC = this.module('modC', new Modulation(c.global_conddim, 6 * c.dim, o));
    this.modX = this.module('modX', new Modulation(c.global_conddim, 6 * c.dim, o));
    this.mlpC = this.module('mlpC', new MLP(c.dim, o));
    this.mlpX = this.module('mlpX', new MLP(c.dim, o));
    this.attn = this.module('attn', new DoubleAttention(c.dim, c.n_heads, o, o.attentionScale ?? 'sqrt'));
  }
  forward(c: Tensor, x: Tensor, g: Tensor): [Tensor, Tensor] {
    const [cs1, csc1, cg1, cs2, csc2, cg2] = this.modC.forward(g, 6) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const [xs1, xsc1, xg1, xs2, xsc2, xg2] = this.modX.forward(g, 6) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const [ac, ax] = this.attn.forward(modulate(ln(c), cs1, csc1), modulate(ln(x), xs1, xsc1));
    // quirk of the release, kept: the second residual adds the block input, not the post-attention value
    const c2 = ln(gatedAdd(c, cg1, ac));
    const x2 = ln(gatedAdd(x, xg1, ax));
    return [
      gatedAdd(c, cg2, this.mlpC.forward(modulate(c2, cs2, csc2))),
      gatedAdd(x, xg2, this.mlpX.forward(modulate(x2, xs2, xsc2))),
    ];
  }
}

class SingleBlock extends Module {
  readonly modCX: Modulation;
  readonly attn: SingleAttention;
  readonly mlp: MLP;
  constructor(c: Required<MMDiTConfig>, o: MMDiTOptions) {
    super();
    this.modCX = this.module('modCX', new Modulation(c.global_conddim, 6 * c.dim, o));
    this.attn = this.module('attn', new SingleAttention(c.dim, c.n_heads, o, o.attentionScale ?? 'sqrt'));
    this.mlp = this.module('mlp', new MLP(c.dim, o));
  }
  forward(cx: Tensor, g: Tensor): Tensor {
    const [s1, sc1, g1, s2, sc2, g2] = this.modCX.forward(g, 6) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const u = ln(gatedAdd(cx, g1, this.attn.forward(modulate(ln(cx), s1, sc1))));
    return gatedAdd(cx, g2, this.mlp.forward(modulate(u, s2, sc2)));
  }
}

export class MMDiT extends Module implements Blockwise<Tensor> {
  readonly config: Required<MMDiTConfig>;
  readonly t_embedder: TimestepEmbedder;
  readonly cond_seq_linear: Linear;
  readonly init_x_linear: Linear;
  readonly positional_encoding: Tensor;
  readonly register_tokens: Tensor;
  readonly double_layers: ModuleList<DoubleBlock>;
  readonly single_layers: ModuleList<SingleBlock>;
  readonly final_linear: Linear;
  readonly modF: Modulation;
  readonly outputMultiplier: number;
  /** Called with each block's output (name, tensor) during forward: activation statistics (coord check). */
  onBlockOutput: ((name: string, t: Tensor) => void) | null = null;

  constructor(config: Partial<MMDiTConfig>, o: MMDiTOptions = {}) {
    super();
    this.outputMultiplier = o.outputMultiplier ?? 1;
    const c = (this.config = resolveMMDiTConfig(config));
    const gen = o.generator ?? defaultGenerator;
    const p = c.patch_size;
    this.t_embedder = this.module('t_embedder', new TimestepEmbedder(c.global_conddim, 1000, o));
    this.cond_seq_linear = this.module('cond_seq_linear', new Linear(c.cond_seq_dim, c.dim, { ...o, bias: false }));
    this.init_x_linear = this.module('init_x_linear', new Linear(p * p * c.in_channels, c.dim, o));
    this.positional_encoding = this.param('positional_encoding', normalInit([1, c.max_seq, c.dim], 0.1, { ...o, generator: gen }));
    this.register_tokens = this.param('register_tokens', normalInit([1, 8, c.dim], 0.02, { ...o, generator: gen }));
    this.double_layers = this.module('double_layers', new ModuleList(Array.from({ length: c.n_double_layers }, () => new DoubleBlock(c, o))));
    this.single_layers = this.module('single_layers', new ModuleList(Array.from({ length: c.n_layers - c.n_double_layers }, () => new SingleBlock(c, o))));
    this.final_linear = this.module('final_linear', new Linear(c.dim, p * p * c.out_channels, { ...o, bias: false }));
    this.modF = this.module('modF', new Modulation(c.global_conddim, 2 * c.dim, o));
    // the release's initialisation: every modulation, the final projection and the text projection start at zero
    for (const [name, t] of this.namedParameters()) {
      if (name.includes('.mod') || name.startsWith('mod') || name === 'final_linear.weight' || name === 'cond_seq_linear.weight') zero_(t);
    }
  }

  /** x [B, in, H, W] latents, t [B], cSeq [B, Tc, cond_seq_dim] text embeddings -> velocity [B, out, H, W]. */
  forward(x: Tensor, t: Tensor, cSeq: Tensor): Tensor {
    return runPlan(this.plan(x, t, cSeq));
  }

  blockModules(): Module[] {
    return [...this.double_layers.items, ...this.single_layers.items];
  }

  /**
   * The forward pass cut at block boundaries (nn/plan.ts). State between blocks: [txt, img, g] through the
   * double-stream blocks, [cat(txt, img), g] through the single-stream ones (the first one joins them).
   */
  plan(x: Tensor, t: Tensor, cSeq: Tensor): ForwardPlan {
    const c = this.config, p = c.patch_size;
    if (x.ndim !== 4 || x.shape[1] !== c.in_channels || x.shape[2]! % p || x.shape[3]! % p) {
      throw new Error(`MMDiT.forward: x must be [B, ${c.in_channels}, H, W] with H, W divisible by ${p}, got ${x.describe()}`);
    }
    const [B, , H, W] = x.shape as [number, number, number, number];
    const T = (H / p) * (W / p);
    if (T > this.positional_encoding.shape[1]!) throw new Error(`MMDiT.forward: ${T} image tokens exceed the ${this.positional_encoding.shape[1]} positional slots (use extendPe)`);
    if (t.ndim !== 1 || t.shape[0] !== B) throw new Error(`MMDiT.forward: t must be [${B}], got ${t.describe()}`);
    if (cSeq.ndim !== 3 || cSeq.shape[0] !== B || cSeq.shape[2] !== c.cond_seq_dim) throw new Error(`MMDiT.forward: c_seq must be [${B}, Tc, ${c.cond_seq_dim}], got ${cSeq.describe()}`);
    // 16-bit parameters (loaded with assign) compute in the activations' dtype
    const like = (t: Tensor) => (t.dtype === x.dtype ? t : cast(t, x.dtype));
    const Tc = 8 + cSeq.shape[1]!;
    const double = this.double_layers.items.map((layer, i): PlanBlock => ({
      module: layer,
      run: ([txt, img, g]) => {
        const [t2, i2] = layer.forward(txt!, img!, g!);
        this.onBlockOutput?.(`double_layers.${i}`, i2);
        return [t2, i2, g!];
      },
    }));
    const single = this.single_layers.items.map((layer, i): PlanBlock => ({
      module: layer,
      run: (state) => {
        const [cx0, g] = i === 0 ? [cat([state[0]!, state[1]!], 1), state[2]!] : [state[0]!, state[1]!];
        const cx = layer.forward(cx0, g);
        this.onBlockOutput?.(`single_layers.${i}`, cx);
        return [cx, g];
      },
    }));
    return {
      prologue: () => {
        const img = add(this.init_x_linear.forward(patchify(x, p)), like(slice(this.positional_encoding, 1, 0, T)));
        const txt = cat([expand(like(this.register_tokens), [B, 8, c.dim]), this.cond_seq_linear.forward(cSeq)], 1);
        return [txt, img, this.t_embedder.forward(t)];
      },
      blocks: [...double, ...single],
      epilogue: (state) => {
        const g = state[state.length - 1]!;
        const img = single.length ? slice(state[0]!, 1, Tc) : state[1]!;
        const [fs, fsc] = this.modF.forward(g, 2) as [Tensor, Tensor];
        let out = this.final_linear.forward(modulate(img, fs, fsc));
        if (this.outputMultiplier !== 1) out = mul(out, this.outputMultiplier);
        this.onBlockOutput?.('final_linear', out);
        return unpatchify(out, H / p, W / p, p, c.out_channels);
      },
    };
  }

  /** Resize the first h0*w0 positional slots, as an h0 x w0 grid, to h1 x w1 (bilinear, align_corners=False). */
  extendPe(from: [number, number], to: [number, number]): void {
    const [h0, w0] = from, [h1, w1] = to, D = this.config.dim;
    if (h0 * w0 > this.positional_encoding.shape[1]!) throw new Error(`extendPe: ${h0}x${w0} exceeds the ${this.positional_encoding.shape[1]} positional slots`);
    const resized = noGrad(() => {
      const grid = reshape(cast(slice(this.positional_encoding, 1, 0, h0 * w0), 'float32'), [h0, w0, D]);
      return reshape(bilinearResize(grid, h1, w1), [1, h1 * w1, D]);
    });
    this.replaceParam('positional_encoding', resized);
    (this as { positional_encoding: Tensor }).positional_encoding = resized;
  }
}

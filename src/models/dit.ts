// DiT (minRF's DiT_Llama), exactly as docs/models.md "DiT": parameter names, shapes and
// arithmetic match the PyTorch release so its state dicts load unchanged.
import type { Tensor } from '../tensor/tensor.js';
import { add, silu } from '../ops/elementwise.js';
import { rand } from '../ops/creation.js';
import { where, lt } from '../ops/elementwise.js';
import { chunk } from '../ops/movement.js';
import { Conv2d, Embedding, GroupNorm, LayerNorm, Linear, zero_, type InitOptions } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import { runPlan, type Blockwise, type ForwardPlan } from '../nn/plan.js';
import {
  applyRotary, attention, gatedAdd, mergeHeads, modulate, patchify, rotaryTables, roundUp, splitHeads, TimestepEmbedder, unpatchify,
} from '../nn/blocks.js';
import { reshape } from '../ops/views.js';
import { swiglu } from '../ops/composite.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { keep } from '../tensor/scope.js';

export interface DiTConfig {
  in_channels: number;
  input_size: number;
  patch_size?: number;
  dim: number;
  n_layers: number;
  n_heads: number;
  multiple_of?: number;
  norm_eps?: number;
  class_dropout_prob?: number;
  num_classes?: number;
}

export const DIT_PRESETS: Record<string, DiTConfig> = {
  mnist: { in_channels: 1, input_size: 32, dim: 64, n_layers: 6, n_heads: 4, num_classes: 10 },
  cifar: { in_channels: 3, input_size: 32, dim: 256, n_layers: 10, n_heads: 8, num_classes: 10 },
};

const CONFIG_KEYS = ['in_channels', 'input_size', 'patch_size', 'dim', 'n_layers', 'n_heads', 'multiple_of', 'norm_eps', 'class_dropout_prob', 'num_classes'];

/** Fill defaults and validate a config (unknown keys and bad values are named). */
export function resolveDiTConfig(cfg: Partial<DiTConfig>, source = 'config'): Required<DiTConfig> {
  for (const k of Object.keys(cfg)) if (!CONFIG_KEYS.includes(k)) throw new Error(`${source}: unknown DiT config key '${k}' (known: ${CONFIG_KEYS.join(', ')})`);
  for (const k of ['in_channels', 'input_size', 'dim', 'n_layers', 'n_heads'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k]! <= 0) throw new Error(`${source}: '${k}' must be a positive integer, got ${JSON.stringify(cfg[k])}`);
  }
  const c: Required<DiTConfig> = { patch_size: 2, multiple_of: 256, norm_eps: 1e-5, class_dropout_prob: 0.1, num_classes: 10, ...cfg } as Required<DiTConfig>;
  if (c.dim % c.n_heads) throw new Error(`${source}: dim ${c.dim} is not divisible by n_heads ${c.n_heads}`);
  if ((c.dim / 2) % 32) throw new Error(`${source}: dim/2 = ${c.dim / 2} must be divisible by 32 (GroupNorm with 32 groups)`);
  if ((c.dim / c.n_heads) % 2) throw new Error(`${source}: head dim ${c.dim / c.n_heads} must be even (rotary pairs)`);
  if (c.input_size % c.patch_size) throw new Error(`${source}: input_size ${c.input_size} is not divisible by patch_size ${c.patch_size}`);
  return c;
}

class DiTAttention extends Module {
  readonly wq: Linear; readonly wk: Linear; readonly wv: Linear; readonly wo: Linear;
  readonly q_norm: LayerNorm; readonly k_norm: LayerNorm;
  constructor(dim: number, readonly heads: number, o: InitOptions) {
    super();
    this.wq = this.module('wq', new Linear(dim, dim, { ...o, bias: false }));
    this.wk = this.module('wk', new Linear(dim, dim, { ...o, bias: false }));
    this.wv = this.module('wv', new Linear(dim, dim, { ...o, bias: false }));
    this.wo = this.module('wo', new Linear(dim, dim, { ...o, bias: false }));
    this.q_norm = this.module('q_norm', new LayerNorm(dim, 1e-5, true, o));
    this.k_norm = this.module('k_norm', new LayerNorm(dim, 1e-5, true, o));
  }
  forward(x: Tensor, rope: { cos: Tensor; sin: Tensor }): Tensor {
    const [B, T, D] = x.shape as [number, number, number];
    const hd = D / this.heads;
    const q = applyRotary(reshape(this.q_norm.forward(this.wq.forward(x)), [B, T, this.heads, hd]), rope);
    const k = applyRotary(reshape(this.k_norm.forward(this.wk.forward(x)), [B, T, this.heads, hd]), rope);
    const v = this.wv.forward(x);
    const toHeads = (t: Tensor) => splitHeads(reshape(t, [B, T, D]), this.heads);
    return this.wo.forward(mergeHeads(attention(toHeads(q), toHeads(k), toHeads(v))));
  }
}

class FeedForward extends Module {
  readonly w1: Linear; readonly w2: Linear; readonly w3: Linear;
  constructor(dim: number, hidden: number, o: InitOptions) {
    super();
    this.w1 = this.module('w1', new Linear(dim, hidden, { ...o, bias: false }));
    this.w2 = this.module('w2', new Linear(hidden, dim, { ...o, bias: false }));
    this.w3 = this.module('w3', new Linear(dim, hidden, { ...o, bias: false }));
  }
  forward(x: Tensor): Tensor {
    return this.w2.forward(swiglu(this.w1.forward(x), this.w3.forward(x)));
  }
}

class DiTBlock extends Module {
  readonly attention: DiTAttention;
  readonly feed_forward: FeedForward;
  readonly attention_norm: LayerNorm;
  readonly ffn_norm: LayerNorm;
  readonly adaLN_modulation: ModuleList<Linear>;
  constructor(c: Required<DiTConfig>, o: InitOptions) {
    super();
    const E = Math.min(c.dim, 1024);
    this.attention = this.module('attention', new DiTAttention(c.dim, c.n_heads, o));
    this.feed_forward = this.module('feed_forward', new FeedForward(c.dim, roundUp(Math.trunc((2 * 4 * c.dim) / 3), c.multiple_of), o));
    this.attention_norm = this.module('attention_norm', new LayerNorm(c.dim, c.norm_eps, true, o));
    this.ffn_norm = this.module('ffn_norm', new LayerNorm(c.dim, c.norm_eps, true, o));
    this.adaLN_modulation = this.module('adaLN_modulation', new ModuleList([null, new Linear(E, 6 * c.dim, o)]));
  }
  forward(x: Tensor, cond: Tensor, rope: { cos: Tensor; sin: Tensor }): Tensor {
    const [s1, sc1, g1, s2, sc2, g2] = chunk(this.adaLN_modulation.items[0]!.forward(silu(cond)), 6, 1) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    x = gatedAdd(x, g1, this.attention.forward(modulate(this.attention_norm.forward(x), s1, sc1), rope));
    return gatedAdd(x, g2, this.feed_forward.forward(modulate(this.ffn_norm.forward(x), s2, sc2)));
  }
}

class FinalLayer extends Module {
  readonly norm_final: LayerNorm;
  readonly linear: Linear;
  readonly adaLN_modulation: ModuleList<Linear>;
  constructor(dim: number, outFeatures: number, o: InitOptions) {
    super();
    this.norm_final = this.module('norm_final', new LayerNorm(dim, 1e-6, false, o));
    this.linear = this.module('linear', new Linear(dim, outFeatures, o));
    this.adaLN_modulation = this.module('adaLN_modulation', new ModuleList([null, new Linear(Math.min(dim, 1024), 2 * dim, o)]));
  }
  forward(x: Tensor, cond: Tensor): Tensor {
    const [shift, scale] = chunk(this.adaLN_modulation.items[0]!.forward(silu(cond)), 2, 1) as [Tensor, Tensor];
    return this.linear.forward(modulate(this.norm_final.forward(x), shift, scale));
  }
}

class LabelEmbedder extends Module {
  readonly embedding_table: Embedding;
  constructor(readonly numClasses: number, hidden: number, readonly dropoutProb: number, o: InitOptions) {
    super();
    this.embedding_table = this.module('embedding_table', new Embedding(numClasses + (dropoutProb > 0 ? 1 : 0), hidden, o));
  }
  /** In training mode labels are replaced by the null class with probability dropoutProb. */
  forward(labels: Tensor, generator: Generator): Tensor {
    if (this.training && this.dropoutProb > 0) {
      const drop = lt(rand([labels.shape[0]!], { generator, device: labels.device }), this.dropoutProb);
      labels = where(drop, this.numClasses, labels);
    }
    return this.embedding_table.forward(labels);
  }
}

export class DiT extends Module implements Blockwise<Tensor> {
  readonly config: Required<DiTConfig>;
  readonly init_conv_seq: ModuleList;
  readonly x_embedder: Linear;
  readonly t_embedder: TimestepEmbedder;
  readonly y_embedder: LabelEmbedder;
  readonly layers: ModuleList<DiTBlock>;
  readonly final_layer: FinalLayer;
  /** Draws label dropout; part of the training RNG state. */
  generator: Generator = defaultGenerator;
  private rope: { cos: Tensor; sin: Tensor } | null = null;

  constructor(config: Partial<DiTConfig>, opts: InitOptions = {}) {
    super();
    const c = (this.config = resolveDiTConfig(config));
    const half = c.dim / 2, E = Math.min(c.dim, 1024), p = c.patch_size;
    this.init_conv_seq = this.module('init_conv_seq', new ModuleList([
      new Conv2d(c.in_channels, half, 5, { ...opts, padding: 2 }), null, new GroupNorm(32, half, 1e-5, opts),
      new Conv2d(half, half, 5, { ...opts, padding: 2 }), null, new GroupNorm(32, half, 1e-5, opts),
    ]));
    this.x_embedder = this.module('x_embedder', new Linear(p * p * half, c.dim, opts));
    this.t_embedder = this.module('t_embedder', new TimestepEmbedder(E, 1, opts));
    this.y_embedder = this.module('y_embedder', new LabelEmbedder(c.num_classes, E, c.class_dropout_prob, opts));
    this.layers = this.module('layers', new ModuleList(Array.from({ length: c.n_layers }, () => new DiTBlock(c, opts))));
    this.final_layer = this.module('final_layer', new FinalLayer(c.dim, p * p * c.in_channels, opts));
    // the release zero-initialises the final projection and the x_embedder bias
    zero_(this.final_layer.linear.weight);
    zero_(this.final_layer.linear.bias!);
    zero_(this.x_embedder.bias!);
  }

  private ropeFor(T: number, device: string): { cos: Tensor; sin: Tensor } {
    if (!this.rope || this.rope.cos.shape[0] !== T || this.rope.cos.device !== device) {
      this.rope?.cos.dispose();
      this.rope?.sin.dispose();
      const r = rotaryTables(T, this.config.dim / this.config.n_heads, device);
      this.rope = { cos: keep(r.cos), sin: keep(r.sin) };
    }
    return this.rope;
  }

  /** x [B, C, H, W], t [B] in [0, 1], y [B] integer labels -> velocity [B, C, H, W]. */
  forward(x: Tensor, t: Tensor, y: Tensor): Tensor {
    return runPlan(this.plan(x, t, y));
  }

  blockModules(): Module[] {
    return [...this.layers.items];
  }

  /** The forward pass cut at block boundaries (nn/plan.ts); the state between blocks is [h, cond]. */
  plan(x: Tensor, t: Tensor, y: Tensor): ForwardPlan {
    const c = this.config;
    if (x.ndim !== 4 || x.shape[1] !== c.in_channels || x.shape[2] !== c.input_size || x.shape[3] !== c.input_size) {
      throw new Error(`DiT.forward: x must be [B, ${c.in_channels}, ${c.input_size}, ${c.input_size}], got ${x.describe()}`);
    }
    const B = x.shape[0]!;
    if (t.ndim !== 1 || t.shape[0] !== B) throw new Error(`DiT.forward: t must be [${B}], got ${t.describe()}`);
    if (y.ndim !== 1 || y.shape[0] !== B || (y.dtype !== 'int32' && y.dtype !== 'int64')) throw new Error(`DiT.forward: y must be int [${B}], got ${y.describe()}`);
    let rope: { cos: Tensor; sin: Tensor } | null = null;
    return {
      prologue: () => {
        const [conv0, gn2, conv3, gn5] = this.init_conv_seq.items as [Conv2d, GroupNorm, Conv2d, GroupNorm];
        let h = gn5.forward(silu(conv3.forward(gn2.forward(silu(conv0.forward(x))))));
        h = this.x_embedder.forward(patchify(h, c.patch_size));
        const cond = add(this.t_embedder.forward(t), this.y_embedder.forward(y, this.generator));
        rope = this.ropeFor(h.shape[1]!, x.device);
        return [h, cond];
      },
      blocks: this.layers.items.map((layer) => ({ module: layer, run: ([h, cond]) => [layer.forward(h!, cond!, rope!), cond!] })),
      epilogue: ([h, cond]) => {
        const out = this.final_layer.forward(h!, cond!);
        const g = c.input_size / c.patch_size;
        return unpatchify(out, g, g, c.patch_size, c.in_channels);
      },
    };
  }
}

// The T5 text encoder, as HF transformers lays it out (parameter names included), in its two layouts:
// T5 v1.1 (`model_type: t5`, a relative-position bias table in block 0, shared by every block) and UMT5
// (`model_type: umt5`, EleutherAI/pile-t5: one table per block). Per block: x += attn(rms(x)), then
// x += ff(rms(x)); then a final RMS norm. RMS norm: x * rsqrt(mean(x^2) + eps) * w, no mean, no bias.
// Attention: no 1/sqrt(d) (T5 folds it into the initialisation), scores + bucketed relative-position
// bias + the padding mask. Feed forward: wo(gelu_tanh(wi_0 x) * wi_1 x) (gated-gelu), or relu/gelu/silu.
import { join } from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import { loadHfWeights, readHfConfig } from '../io/hf-folder.js';
import { ones, tensor } from '../ops/creation.js';
import { add, gelu, mul, relu, rsqrt, silu, square, sub } from '../ops/elementwise.js';
import { cast } from '../ops/movement.js';
import { embedding, softmax } from '../ops/nn.js';
import { matmul } from '../ops/matmul.js';
import { mean } from '../ops/reduce.js';
import { permute, reshape, transpose, unsqueeze } from '../ops/views.js';
import { Embedding, Linear, usingDtype, type InitOptions } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';

export interface T5Config {
  model_type: 't5' | 'umt5';
  vocab_size: number;
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_layers: number;
  num_heads: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  layer_norm_epsilon: number;
  /** 'gated-gelu' (v1.1, UMT5), 'relu' (original T5), 'gated-silu', 'gelu', ... */
  feed_forward_proj: string;
  pad_token_id: number;
  eos_token_id: number;
}

const DEFAULTS: Partial<T5Config> = {
  relative_attention_num_buckets: 32, relative_attention_max_distance: 128, layer_norm_epsilon: 1e-6,
  feed_forward_proj: 'relu', pad_token_id: 0, eos_token_id: 1,
};

/** The encoder's config from an HF config.json object; every missing or wrong field is named. */
export function resolveT5Config(raw: Record<string, unknown>, source = 'config.json'): T5Config {
  const c = { ...DEFAULTS, ...raw } as Record<string, unknown>;
  const problems: string[] = [];
  if (c.model_type !== 't5' && c.model_type !== 'umt5') {
    problems.push(`model_type must be "t5" (T5 v1.1: one relative-position table, in block 0) or "umt5" (a table per block), got ${JSON.stringify(c.model_type)}`);
  }
  for (const k of ['vocab_size', 'd_model', 'd_kv', 'd_ff', 'num_layers', 'num_heads', 'relative_attention_num_buckets', 'relative_attention_max_distance']) {
    if (!Number.isInteger(c[k]) || (c[k] as number) < 1) problems.push(`'${k}' must be a positive integer, got ${JSON.stringify(c[k])}`);
  }
  for (const k of ['pad_token_id', 'eos_token_id']) {
    if (!Number.isInteger(c[k]) || (c[k] as number) < 0) problems.push(`'${k}' must be a non-negative integer, got ${JSON.stringify(c[k])}`);
  }
  if (!(typeof c.layer_norm_epsilon === 'number' && c.layer_norm_epsilon > 0)) problems.push(`'layer_norm_epsilon' must be a positive number, got ${JSON.stringify(c.layer_norm_epsilon)}`);
  if (typeof c.feed_forward_proj !== 'string' || !ACTIVATIONS[c.feed_forward_proj.replace(/^gated-/, '')]) {
    problems.push(`'feed_forward_proj' must be one of relu, gelu, silu, gated-gelu, gated-relu, gated-silu, got ${JSON.stringify(c.feed_forward_proj)}`);
  }
  if (problems.length) throw new Error(`${source}: ${problems.join('; ')}`);
  return c as unknown as T5Config;
}

/** HF's activations for feed_forward_proj; 'gelu' in a gated T5 means the tanh approximation (gelu_new). */
const ACTIVATIONS: Record<string, (x: Tensor, gated: boolean) => Tensor> = {
  relu: (x) => relu(x),
  gelu: (x, gated) => gelu(x, gated ? 'tanh' : 'none'),
  silu: (x) => silu(x),
};

/** T5's layer norm: scale only, no mean subtraction, variance in float32. */
class RMSNorm extends Module {
  readonly weight: Tensor;
  constructor(dim: number, readonly eps: number, o: InitOptions) {
    super();
    this.weight = this.param('weight', ones([dim], { device: o.device }));
  }
  forward(x: Tensor): Tensor {
    const y = mul(x, rsqrt(add(mean(square(x), -1, true), this.eps)));
    return usingDtype(this.weight, x.dtype, (w) => mul(y, w));
  }
}

/**
 * Bucket of each relative position k - q (bidirectional, as the encoder uses it): half the buckets for
 * keys after the query; distances below a quarter of the buckets exact, larger ones log-spaced up to
 * max_distance. Computed in float32 as torch does, so the boundaries fall where they fall there.
 */
export function relativePositionBuckets(T: number, numBuckets: number, maxDistance: number): Int32Array {
  const half = Math.floor(numBuckets / 2), maxExact = Math.floor(half / 2);
  const logRange = Math.fround(Math.log(maxDistance / maxExact));
  const out = new Int32Array(T * T);
  for (let q = 0; q < T; q++) {
    for (let k = 0; k < T; k++) {
      const rel = k - q, d = Math.abs(rel);
      let b = rel > 0 ? half : 0;
      if (d < maxExact) b += d;
      else {
        const ratio = Math.fround(Math.fround(Math.log(Math.fround(d / maxExact))) / logRange);
        b += Math.min(maxExact + Math.trunc(Math.fround(ratio * (half - maxExact))), half - 1);
      }
      out[q * T + k] = b;
    }
  }
  return out;
}

class Attention extends Module {
  readonly q: Linear; readonly k: Linear; readonly v: Linear; readonly o: Linear;
  readonly relative_attention_bias: Embedding | null;
  constructor(readonly c: T5Config, hasBias: boolean, o: InitOptions) {
    super();
    const inner = c.num_heads * c.d_kv;
    this.q = this.module('q', new Linear(c.d_model, inner, { ...o, bias: false }));
    this.k = this.module('k', new Linear(c.d_model, inner, { ...o, bias: false }));
    this.v = this.module('v', new Linear(c.d_model, inner, { ...o, bias: false }));
    this.o = this.module('o', new Linear(inner, c.d_model, { ...o, bias: false }));
    this.relative_attention_bias = hasBias ? this.module('relative_attention_bias', new Embedding(c.relative_attention_num_buckets, c.num_heads, o)) : null;
  }

  /** The bias [1, H, T, T] from this block's table. */
  positionBias(T: number, dtype: Tensor['dtype']): Tensor {
    const table = this.relative_attention_bias!;
    const buckets = tensor(relativePositionBuckets(T, this.c.relative_attention_num_buckets, this.c.relative_attention_max_distance), { shape: [T, T], dtype: 'int32', device: table.weight.device });
    const values = usingDtype(table.weight, dtype, (w) => embedding(buckets, w)); // [T, T, H]
    return unsqueeze(permute(values, [2, 0, 1]), 0);
  }

  forward(x: Tensor, bias: Tensor): Tensor {
    const [B, T] = x.shape as [number, number, number];
    const H = this.c.num_heads, dk = this.c.d_kv;
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, H, dk]), 1, 2);
    const q = heads(this.q.forward(x)), k = heads(this.k.forward(x)), v = heads(this.v.forward(x));
    const p = softmax(add(matmul(q, transpose(k, -1, -2)), bias), -1);
    return this.o.forward(reshape(transpose(matmul(p, v), 1, 2), [B, T, H * dk]));
  }
}

class DenseReluDense extends Module {
  readonly wi_0: Linear | null; readonly wi_1: Linear | null; readonly wi: Linear | null; readonly wo: Linear;
  readonly act: (x: Tensor, gated: boolean) => Tensor;
  readonly gated: boolean;
  constructor(c: T5Config, o: InitOptions) {
    super();
    this.gated = c.feed_forward_proj.startsWith('gated-');
    this.act = ACTIVATIONS[c.feed_forward_proj.replace(/^gated-/, '')]!;
    const lin = (n: string, i: number, out: number) => this.module(n, new Linear(i, out, { ...o, bias: false }));
    this.wi_0 = this.gated ? lin('wi_0', c.d_model, c.d_ff) : null;
    this.wi_1 = this.gated ? lin('wi_1', c.d_model, c.d_ff) : null;
    this.wi = this.gated ? null : lin('wi', c.d_model, c.d_ff);
    this.wo = lin('wo', c.d_ff, c.d_model);
  }
  forward(x: Tensor): Tensor {
    const h = this.gated ? mul(this.act(this.wi_0!.forward(x), true), this.wi_1!.forward(x)) : this.act(this.wi!.forward(x), false);
    return this.wo.forward(h);
  }
}

class SelfAttentionLayer extends Module {
  readonly SelfAttention: Attention;
  readonly layer_norm: RMSNorm;
  constructor(c: T5Config, hasBias: boolean, o: InitOptions) {
    super();
    this.SelfAttention = this.module('SelfAttention', new Attention(c, hasBias, o));
    this.layer_norm = this.module('layer_norm', new RMSNorm(c.d_model, c.layer_norm_epsilon, o));
  }
}

class FeedForwardLayer extends Module {
  readonly DenseReluDense: DenseReluDense;
  readonly layer_norm: RMSNorm;
  constructor(c: T5Config, o: InitOptions) {
    super();
    this.DenseReluDense = this.module('DenseReluDense', new DenseReluDense(c, o));
    this.layer_norm = this.module('layer_norm', new RMSNorm(c.d_model, c.layer_norm_epsilon, o));
  }
}

class Block extends Module {
  readonly attn: SelfAttentionLayer;
  readonly ff: FeedForwardLayer;
  constructor(c: T5Config, hasBias: boolean, o: InitOptions) {
    super();
    const layers = this.module('layer', new ModuleList<Module>([new SelfAttentionLayer(c, hasBias, o), new FeedForwardLayer(c, o)]));
    [this.attn, this.ff] = layers.items as [SelfAttentionLayer, FeedForwardLayer];
  }
}

class Stack extends Module {
  readonly block: ModuleList<Block>;
  readonly final_layer_norm: RMSNorm;
  constructor(c: T5Config, o: InitOptions) {
    super();
    this.block = this.module('block', new ModuleList(Array.from({ length: c.num_layers }, (_, i) => new Block(c, c.model_type === 'umt5' || i === 0, o))));
    this.final_layer_norm = this.module('final_layer_norm', new RMSNorm(c.d_model, c.layer_norm_epsilon, o));
  }
}

/** float32's most negative value: what HF adds to the scores of padded keys. */
const MASKED = -3.4028234663852886e38;

export class T5Encoder extends Module {
  readonly config: T5Config;
  readonly shared: Embedding;
  readonly encoder: Stack;

  constructor(config: T5Config, o: InitOptions = {}) {
    super();
    this.config = config;
    this.shared = this.module('shared', new Embedding(config.vocab_size, config.d_model, o));
    this.encoder = this.module('encoder', new Stack(config, o));
  }

  /**
   * ids [B, T] (int32 or int64), mask [B, T] (1 = token, 0 = padding) -> the last hidden state [B, T, d_model]
   * in float32, multiplied by the mask (padded rows are zero, as the release stores them).
   */
  forward(ids: Tensor, mask: Tensor): Tensor {
    const c = this.config;
    if (ids.ndim !== 2 || (ids.dtype !== 'int32' && ids.dtype !== 'int64')) throw new Error(`T5Encoder.forward: input_ids must be int32/int64 [B, T], got ${ids.describe()}`);
    if (mask.ndim !== 2 || mask.shape[0] !== ids.shape[0] || mask.shape[1] !== ids.shape[1]) throw new Error(`T5Encoder.forward: attention_mask must be [${ids.shape.join(', ')}] like input_ids, got ${mask.describe()}`);
    const bad = Array.from(ids.toArray()).findIndex((v) => !(v >= 0 && v < c.vocab_size));
    if (bad >= 0) throw new Error(`T5Encoder.forward: input_ids[${bad}] = ${ids.toArray()[bad]} is outside the vocabulary (0..${c.vocab_size - 1})`);
    const [B, T] = ids.shape as [number, number];
    const m = cast(mask, 'float32');
    let x = usingDtype(this.shared.weight, 'float32', (w) => embedding(ids, w));
    // padded keys get float32's minimum added, as HF's extended attention mask
    const maskAdd = reshape(mul(sub(1, m), MASKED), [B, 1, 1, T]);
    let bias: Tensor | null = null;
    for (const blk of this.encoder.block.items) {
      const att = blk.attn.SelfAttention;
      if (att.relative_attention_bias) bias = add(att.positionBias(T, 'float32'), maskAdd);
      x = add(x, att.forward(blk.attn.layer_norm.forward(x), bias!));
      x = add(x, blk.ff.DenseReluDense.forward(blk.ff.layer_norm.forward(x)));
    }
    return mul(this.encoder.final_layer_norm.forward(x), unsqueeze(m, 2));
  }
}

/**
 * A T5 encoder from an HF folder (config.json + model.safetensors, shards or pytorch_model.bin) on
 * `device`: built on the meta device and given the file's tensors as its parameters, so 16-bit weights
 * stay 16-bit; `decoder.*` and `lm_head.weight` are never read. Missing, unexpected and mis-shaped
 * tensors are all listed in one error.
 */
export function loadT5Encoder(dir: string, device = 'cpu'): T5Encoder {
  const config = resolveT5Config(readHfConfig(dir), join(dir, 'config.json'));
  const model = new T5Encoder(config, { device: 'meta' });
  const { tensors, files } = loadHfWeights(dir, { device, only: (n) => !n.startsWith('decoder.') && n !== 'lm_head.weight' });
  // encoder.embed_tokens is tied to shared (HF files often carry both)
  const tied = tensors['encoder.embed_tokens.weight'];
  if (tied) {
    if (!tensors['shared.weight']) tensors['shared.weight'] = tied;
    else tied.dispose();
    delete tensors['encoder.embed_tokens.weight'];
  }
  try {
    model.loadStateDict(tensors, { assign: true, device });
  } catch (e) {
    throw new Error(`${files.join(', ')}: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(tensors)) t.dispose(); // the parameters hold their own references
  }
  model.eval();
  return model;
}

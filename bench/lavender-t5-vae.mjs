// lavender side of bench/compare-t5-vae.mjs: seconds for one forward of a T5-XL-sized encoder (bf16 weights
// kept bf16, as pile-t5-xl ships) on 128 tokens, or of the SDXL-VAE decoder making a 256x256 image (float32),
// random weights of the real sizes, no grad.   node bench/lavender-t5-vae.mjs t5|vae RUNS
import * as L from '../dist/src/index.js';
import { T5Encoder } from '../dist/src/models/t5.js';
import { AutoencoderKL, SDXL_VAE_CONFIG } from '../dist/src/models/vae.js';

const [which, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 2);
const T5_XL = {
  model_type: 'umt5', vocab_size: 32128, d_model: 2048, d_kv: 64, d_ff: 5120, num_layers: 24, num_heads: 32, relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128, layer_norm_epsilon: 1e-6, feed_forward_proj: 'gated-gelu', pad_token_id: 0, eos_token_id: 2,
};

/**
 * Pseudo-random weights of the model's shapes (a cheap hash, uniform in +-0.05: the time of a forward does
 * not depend on the values, and drawing 1.2B Gaussians would take minutes), assigned to a model built on
 * the meta device, so only the weights are allocated.
 */
function randomize(model, dtype) {
  const sd = {};
  let seed = 1;
  for (const [k, p] of model.namedParameters()) {
    const n = p.size, vals = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      vals[i] = ((seed >>> 8) / 2 ** 24 - 0.5) * 0.1;
    }
    sd[k] = L.keep(L.scope(() => L.tensor(vals, { shape: [...p.shape] }).to(dtype)));
  }
  model.loadStateDict(sd, { assign: true, device: 'cpu' });
  for (const t of Object.values(sd)) t.dispose();
}

let f;
if (which === 't5') {
  const m = new T5Encoder(T5_XL, { device: 'meta' });
  randomize(m, 'bfloat16');
  const ids = L.tensor(Array.from({ length: 128 }, (_, i) => 3 + ((i * 7919) % 32000)), { shape: [1, 128], dtype: 'int64' });
  const mask = L.tensor(Array.from({ length: 128 }, (_, i) => (i < 40 ? 1 : 0)), { shape: [1, 128], dtype: 'int64' });
  f = () => m.forward(ids, mask);
} else {
  const m = new AutoencoderKL(SDXL_VAE_CONFIG, { device: 'meta' });
  randomize(m, 'float32');
  const z = L.randn([1, 4, 32, 32]);
  f = () => m.decode(z);
}
const time = () => L.noGrad(() => L.scope(() => {
  const t = performance.now();
  f().toArray();
  return (performance.now() - t) / 1000;
}));
if (process.env.WARMUP !== '0') time(); // warm-up
const times = Array.from({ length: runs }, time).sort((a, b) => a - b);
console.log(JSON.stringify({ seconds: times[Math.floor(times.length / 2)], runs: times, peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) }));

// The full LavenderFlow training step, timed, for bench/gpu/run.sh (compiled to dist/bench/gpu/t2i-step.js):
// the step of `lavender train t2i` (src/train/train-t2i.ts) on MDS shards (the real loader and t2iBatch),
// MMDiT from a preset, AdamW (0.9, 0.95) with the release's per-parameter groups, rectified-flow loss
// under autocast, gradient clipping at 1.0, without the command's two float32 EMAs, checkpoints and
// metrics: the same work as bench/gpu/torch_t2i_step.py does in PyTorch. (For the 4.78B preset the two
// EMAs alone are 38 GB; with float32 weights, gradients and moments, 115 GB before any activation:
// `train t2i --ema-device cpu` keeps them in host memory.)
//
//   node dist/bench/gpu/t2i-step.js --data DIR --preset NAME [--batch 16] [--tokens 120] [--latent-size 32]
//        [--steps 4] [--warmup 2] [--backend cuda] [--precision bf16|fp32]
// Text positions are the preset's 8 register tokens + --tokens; image positions (latent / patch)^2.
// Prints one JSON line: median seconds per step, tokens/s, MFU (6 N tokens/s over the card's dense bf16
// peak), peak memory of the backend's allocator, the losses. Runs on any backend (cpu: a small preset).
import '../../src/index.js';  // loads the ops (tensors need them)
import { MMDiT, MMDIT_PRESETS, type MMDiTConfig } from '../../src/models/mmdit.js';
import { MdsLoader, openMds } from '../../src/data/mds/index.js';
import { t2iBatch } from '../../src/data/t2i.js';
import { flowLoss } from '../../src/flow/rectified-flow.js';
import { AdamW } from '../../src/optim/adamw.js';
import { clipGradNorm } from '../../src/optim/clip.js';
import { lavenderflowGroups } from '../../src/optim/mup.js';
import { Generator } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { autocast } from '../../src/ops/autocast.js';
import { getBackend } from '../../src/backends/registry.js';
import { cpuMemoryStats } from '../../src/backends/cpu/index.js';
import type { CudaBackend } from '../../src/backends/cuda/index.js';
import { peakBf16Tflops } from '../../src/train/throughput.js';

const args = new Map<string, string>();
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  if (!argv[i]!.startsWith('--') || argv[i + 1] === undefined) throw new Error(`t2i-step: expected --flag value pairs, got '${argv[i]}'`);
  args.set(argv[i]!.slice(2), argv[i + 1]!);
}
const known = ['data', 'preset', 'batch', 'tokens', 'latent-size', 'steps', 'warmup', 'backend', 'precision'];
for (const k of args.keys()) if (!known.includes(k)) throw new Error(`t2i-step: unknown flag --${k} (known: ${known.map((f) => `--${f}`).join(' ')})`);
const num = (k: string, d: number) => {
  const v = args.has(k) ? Number(args.get(k)) : d;
  if (!Number.isInteger(v) || v < 0) throw new Error(`t2i-step: --${k} must be a non-negative integer, got '${args.get(k)}'`);
  return v;
};
const data = args.get('data');
const presetName = args.get('preset') ?? 'mmdit-tiny';
if (!data) throw new Error('t2i-step: --data DIR (MDS shards: `lavender make-shards --synthetic-t2i`) is required');
const preset = MMDIT_PRESETS[presetName];
if (!preset) throw new Error(`t2i-step: unknown preset '${presetName}' (${Object.keys(MMDIT_PRESETS).join(', ')})`);
const batch = num('batch', 16), tokens = num('tokens', 120), latentSize = num('latent-size', 32), steps = num('steps', 4), warmup = num('warmup', 2);
const backend = args.get('backend') ?? 'cuda';
const precision = args.get('precision') ?? 'bf16';
if (precision !== 'bf16' && precision !== 'fp32') throw new Error(`t2i-step: --precision expects bf16 or fp32, got '${precision}'`);
if (steps < 1) throw new Error('t2i-step: --steps must be at least 1');

const be = getBackend(backend);
const model = new MMDiT(preset as MMDiTConfig, { generator: new Generator(0), device: backend });
const c = model.config;
const params = model.parameters();
const opt = new AdamW(lavenderflowGroups(model.namedParameters(), { lr: 1e-4, width: c.dim, weightDecay: 0.1 }), { lr: 1e-4, betas: [0.9, 0.95] });
const loader = new MdsLoader(openMds(data), { batchSize: batch, seed: 0 });
const rng = new Generator(1);
const batchOpts = { latentSize, condDim: c.cond_seq_dim, tokens, device: backend };
const sync = () => be.synchronize?.();

function step(): number {
  return scope(() => {
    // gradients freed before the forward (as the loop does, and PyTorch's zero_grad(set_to_none=True)): not held beside the activations
    opt.zeroGrad();
    const { x, cSeq } = t2iBatch(loader.next(), batchOpts, data!);
    const f = autocast(precision === 'bf16' ? 'bfloat16' : 'float32', () =>
      flowLoss((xt, t, cond: Tensor) => model.forward(xt, t, cond), x, cSeq, { generator: rng }));
    f.loss.backward();
    clipGradNorm(params, 1.0);
    opt.step();
    return f.loss.item();
  });
}

const losses: number[] = [];
for (let i = 0; i < warmup; i++) losses.push(step());
sync();
const times: number[] = [];
for (let i = 0; i < steps; i++) {
  const t0 = performance.now();
  losses.push(step());
  sync();
  times.push((performance.now() - t0) / 1000);
}
const sorted = [...times].sort((a, b) => a - b);
const seconds = sorted[Math.floor(sorted.length / 2)]!;
const textTokens = 8 + tokens, imageTokens = (latentSize / c.patch_size) ** 2;
const tokensPerStep = batch * (textTokens + imageTokens);
const n = model.numParameters();
const cuda = backend === 'cuda' ? (be as CudaBackend) : null;
const device = cuda ? cuda.device.name : backend;
const peak = peakBf16Tflops(device);
const flops = 6 * n * tokensPerStep / seconds;
console.log(JSON.stringify({
  bench: 't2i-step', framework: 'lavender', backend, device, preset: presetName, precision, parameters: n, batch, text_tokens: textTokens, image_tokens: imageTokens,
  seconds_per_step: seconds, step_seconds: times, tokens_per_s: tokensPerStep / seconds, tflops: flops / 1e12, mfu: Number.isNaN(peak) ? null : flops / 1e12 / peak,
  peak_memory_bytes: cuda ? cuda.memStats().peak : cpuMemoryStats().peakBytes, losses,
}));
if (!losses.every(Number.isFinite)) {
  console.error(`t2i-step: a loss is not finite: ${losses.join(', ')}`);
  process.exitCode = 1;
}

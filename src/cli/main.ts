// The lavender command line: `lavender info`, `lavender bench matmul`.
import * as L from '../index.js';
import { sgemmInfo } from '../backends/cpu/fast/sgemm.js';
import { closest, intFlag, parseArgs, stringFlag, type Parsed } from './args.js';
import { COMMANDS, findCommand } from './commands.js';
import { benchMatmul } from './bench-matmul.js';
import { benchStep, forward, makeShards, precisionFlag, sample, train } from './train.js';
import { modelInfo, type ModelInfo } from '../train/model-info.js';
import { planMemory, type MemoryPlan } from '../train/memory-plan.js';
import type { ZeroStage } from '../distributed/zero.js';
import { runCoordCheck } from './coord-check.js';
import { mupSweepCommand } from './mup-sweep.js';
import { consolidateCommand, launchCommand } from './launch.js';
import { decodeLatentsCommand, encodeImagesCommand, encodeTextCommand, prepareShardsCommand } from './pipeline.js';
import { generateCommand } from './generate.js';

const USAGE = `usage: lavender <command> [options]

commands:
  info [--json]                                  version and the backends of this build
  info --model P [--ranks N] [--zero S] [--batch B] [--tokens T] [--latent-size R] [--grad-accum K]
        [--checkpoint-activations] [--precision fp32|bf16] [--ema-device cpu] [--json]
                                                 plan before you rent: exact parameter count, the bf16 ZeRO-2
                                                 formula, and lavender's bytes per rank (weights, gradients,
                                                 optimizer state, train t2i's two EMAs, activations) and sent
                                                 per step, from one rank's step traced on the meta device (no
                                                 allocation); --precision and --ema-device as train takes
                                                 them (EMAs on cpu: host memory, not in the device's peak);
                                                 defaults: 8 ranks, ZeRO 2, batch 1 per rank, 64 text tokens,
                                                 latent 32 (MMDiT), fp32
  train mnist|cifar [--steps N] [--batch B] [--lr X] [--seed S] [--backend B] [--out DIR]
        [--resume CKPT [--allow-changes]] [--overwrite]
        [--data DIR] [--checkpoint-every N] [--no-save] [--sample-rows R] [--sample-steps S] [--cfg X]
        [--precision fp32|bf16] [--lr-schedule constant|linear] [scale-out flags]
                                                 train the DiT sanity model with rectified flow; --precision
                                                 bf16: autocast (bf16 matmuls/attention, fp32 masters);
                                                 --lr-schedule linear: lr decays linearly to 0 over --steps.
                                                 mnist defaults: 1000 steps of 32, lr 2e-3, linear, grid at
                                                 --cfg 4; cifar: 2000 steps of 64, lr 5e-4, constant, --cfg 2.
                                                 The end-of-run sample grid is 4 rows (--sample-rows), none for
                                                 runs under 100 steps unless --sample-rows is given
  train t2i --data DIR [--preset P] [--steps N] [--batch B] [--lr X] [--latent-size R] [--tokens T]
        [--warmup N] [--ema-every S] [--ema-device D] [--out DIR] [--resume CKPT [--allow-changes]]
        [--overwrite] [--checkpoint-every N] [--no-save] [--precision fp32|bf16] [scale-out flags]
                                                 the LavenderFlow recipe on MDS shards (MMDiT); writes the
                                                 checkpoint, ema1/ema2.safetensors and cond.safetensors;
                                                 --ema-device cpu keeps the two float32 EMAs in host memory
                                                 (default: the training device; may change on resume).
                                                 The last line gives tokens/s, MFU (6 N tokens/s over the
                                                 GPU's bf16 peak) and the device's peak memory; --no-save
                                                 writes no checkpoint (a benchmark run)
  scale-out flags of every train command:
        [--nproc N] [--zero 0|1|2|3] [--master-addr A] [--master-port P] [--dist-backend cpu|nccl]
        [--grad-accum K] [--checkpoint-activations]
                                                 --nproc N runs N data-parallel ranks here (the global --batch is
                                                 split; under lavender launch, torchrun or srun every rank reads
                                                 its place from the environment); --zero the ZeRO stage (3:
                                                 parameters sharded too); --grad-accum K: a step is K
                                                 micro-batches of --batch; --checkpoint-activations: blocks are
                                                 recomputed in the backward (less memory, same gradients)
  run directories (--out): a new run refuses a directory that holds files; --resume CKPT continues a run
        (metrics.jsonl appended; flags left out take the checkpoint's values; --steps is the total and must
        exceed the checkpoint's step; another --batch/--lr/... is refused unless --allow-changes);
        --overwrite replaces a previous run (its checkpoints, metrics, samples, EMAs are removed first)
  launch --nproc N [--nnodes M --node-rank R --master-addr A --master-port P] <command...>
                                                 run N ranks of a command (torchrun's environment; srun aware)
  consolidate CKPT [--out FILE]                  join a ZeRO checkpoint's per-rank shards into one file
  make-shards --synthetic-t2i --out DIR [--samples N] [--latent-size R] [--cond-dim D] [--tokens T]
                                                 a small learnable LavenderFlow-style MDS dataset
  make-shards --synthetic-imagenet --out DIR [--samples N] [--latent-size R] [--classes K]
                                                 a small class-conditional dataset in the imagenet.int8 layout
                                                 (uint8 latents + label), which train t2i also reads
  prepare-shards --images DIR --captions FILE --t5 DIR --vae DIR --out DIR [--size 256] [--tokens 256]
        [--batch B] [--latents sample|mean] [--seed S] [--backend B]
                                                 the release's data preparation: PNG/JPEG center-cropped and
                                                 resized, SDXL-VAE latents (np16) and T5 embeddings (uint8) in
                                                 MDS shards that train t2i reads; captions: JSON {file: text}
                                                 or lines 'file<TAB>text'; unreadable images named and skipped
  sample --checkpoint F [--out grid.png] [--gif F] [--cfg X] [--steps N] [--rows R] [--seed S]
                                                 class-conditional samples from a DiT training checkpoint
  sample --model mmdit --checkpoint F --cond C.safetensors --out LAT.safetensors [--config C.json]
        [--latent-size R] [--cfg X] [--steps N] [--shift S]
                                                 latents from an MMDiT with CFG (c_seq, optional c_seq_null);
                                                 F: a t2i checkpoint or ema1/ema2.safetensors (config and latent
                                                 size from its metadata), or a state dict with --config
  forward --model dit --config C.json --weights W.safetensors --inputs IN.safetensors --out OUT.safetensors [--grad]
                                                 run a model on given weights (parity with PyTorch)
  generate --prompt TEXT --checkpoint ema1.pt|F.safetensors --t5 DIR --vae DIR --out IMG.png
        [--size 256|512|1024] [--steps N] [--cfg X] [--negative TEXT] [--seed S] [--batch B] [--config C.json]
        [--max-length N] [--gif F] [--noise IN.safetensors] [--raw OUT.safetensors] [--backend B]
                                                 prompt to image, the release's recipe (Euler + CFG, negative
                                                 prompt, defaults per size: 512: 50 steps CFG 9.5; 1024: 100
                                                 steps CFG 5); --noise: initial 'noise' [B,4,h,w]; --raw:
                                                 final 'latents' (model space) and 'images' before clamping
  encode-text --t5 DIR --prompt TEXT --out OUT.safetensors [--max-length 128] [--pad-id P] [--backend B]
                                                 T5 embeddings of a prompt (HF folder: config.json, weights,
                                                 tokenizer): input_ids, attention_mask [1,N], embeddings [1,N,d]
  decode-latents --vae DIR --latents IN.safetensors --out IMG.png [--raw OUT.safetensors] [--backend B]
                                                 SDXL-VAE decode of 'latents' [B,4,h,w] (model space: divided by
                                                 scaling_factor first); --raw: 'images' float32 before clamping
  encode-images --vae DIR --images IN.safetensors --out OUT.safetensors [--sample --seed S] [--backend B]
                                                 'images' [B,3,H,W] in [-1,1] -> 'latents' (mean, or a seeded
                                                 sample, times scaling_factor)
  coord-check [--widths 32,64,128,256] [--steps N] [--lr X] [--param mup|sp|both] [--out DIR]
                                                 muP coordinate check of the MMDiT: JSON and a PNG plot
  mup-sweep --data DIR|--synthetic [--widths 64,128,256,512] [--lrs 2^-14..2^-6] [--param mup|sp|release|both]
        [--steps 200] [--seeds K] [--nproc N] [--out DIR] [--batch 16] [--layers 2] [--head-dim 32]
        [--base-width W] [--latent-size R] [--cond-dim D] [--warmup N] [--samples N --classes K (synthetic)]
                                                 muTransfer lr sweep of the MMDiT over widths: sweep.jsonl,
                                                 sweep.png, summary.md; resumable (finished runs are kept, the
                                                 same command continues); --nproc N runs N processes
  bench matmul [--size N] [--backend B] [--runs R] [--json]
                                                 float32 N x N matmul throughput (GFLOP/s)
  bench train-step [--model dit-mnist] [--batch B] [--backend B] [--steps N] [--json]
                                                 median seconds per training step
`;

async function info(p: Parsed): Promise<number> {
  if (p.flags.has('model')) {
    const model = stringFlag(p, 'model', ''), ranks = intFlag(p, 'ranks', 8);
    const r = modelInfo(model, ranks);
    const zero = intFlag(p, 'zero', 2, true);
    if (zero > 3) throw new Error(`--zero expects 0, 1, 2 or 3, got ${zero}`);
    const plan = await planMemory({
      model, ranks, zero: zero as ZeroStage, batch: intFlag(p, 'batch', ranks), tokens: intFlag(p, 'tokens', 64), latentSize: intFlag(p, 'latent-size', 32),
      gradAccum: intFlag(p, 'grad-accum', 1), checkpointActivations: p.flags.has('checkpoint-activations'),
      precision: precisionFlag(p, 'info'), as: 'gpu', emaDevice: p.flags.has('ema-device') ? stringFlag(p, 'ema-device', '') : undefined,
    });
    if (p.flags.has('json')) console.log(JSON.stringify({ ...r, plan }));
    else for (const line of formatInfo(r, plan)) console.log(line);
    return 0;
  }
  const backends = L.backendEntries().map((e) => {
    const probe = e.probe();
    return { name: e.name, built: e.built, available: probe.available, reason: probe.reason ?? null };
  });
  const cpu = sgemmInfo();
  const report = { version: L.VERSION, node: process.version, backends, cpu_matmul: cpu };
  if (p.flags.has('json')) {
    console.log(JSON.stringify(report));
    return 0;
  }
  console.log(`lavender ${L.VERSION} (node ${process.version})`);
  for (const b of backends) console.log(`  ${b.name.padEnd(8)} built=${b.built} available=${b.available}${b.reason ? `  (${b.reason})` : ''}`);
  console.log(`  cpu matmul: ${cpu.simd ? `wasm SIMD${cpu.relaxed ? ' + FMA' : ''}` : 'reference loops'}, ${cpu.threads} thread(s)`);
  return 0;
}

function bench(p: Parsed): number {
  const what = p.positionals[1];
  if (what === 'train-step') return benchStep(p);
  if (what !== 'matmul') throw new Error(`bench: unknown benchmark '${what ?? ''}' (available: matmul, train-step)`);
  const size = intFlag(p, 'size', 1024);
  const backend = stringFlag(p, 'backend', 'cpu');
  const runs = intFlag(p, 'runs', size >= 1024 ? 10 : 30);
  const r = benchMatmul(size, backend, runs);
  if (p.flags.has('json')) console.log(JSON.stringify(r));
  else console.log(`matmul ${size}x${size}x${size} float32 on ${backend}: ${r.gflops.toFixed(1)} GFLOP/s (median ${r.median_ms.toFixed(2)} ms over ${runs} runs${r.kernel ? `, ${r.kernel}, ${r.threads} thread(s)` : ''})`);
  return 0;
}

const gib = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`);

/** `lavender info --model`: the count, the bf16 ZeRO-2 formula, then the traced plan of this run. */
function formatInfo(r: ModelInfo, plan: MemoryPlan): string[] {
  const b = r.zero2.bytes_per_rank, m = plan.bytes_per_rank, s = plan.bytes_sent_per_step;
  const seq = plan.sequence.text ? `${plan.sequence.text} text + ${plan.sequence.image} image tokens` : `${plan.sequence.image} image tokens`;
  return [
    `${r.model}: ${r.parameters.toLocaleString('en')} parameters`,
    `ZeRO-2 formula over ${r.zero2.ranks} ranks, per rank: weights (bf16) ${gib(b.weights_bf16)}, gradients (bf16) ${gib(b.gradients_bf16)}, master weights (fp32) ${gib(b.master_weights_fp32)}, Adam state (fp32) ${gib(b.adam_state_fp32)}; total ${gib(b.total)}`,
    `lavender's step, traced on the meta device as a GPU computes it: ZeRO ${plan.zero} over ${plan.ranks} ranks, ${plan.batch_per_rank} sample(s) per rank x ${plan.micro_batches} micro-batch(es) of ${seq}${plan.checkpoint_activations ? ', activations checkpointed' : ''} (${plan.precision})`,
    `  per rank: weights ${gib(m.weights)}, gradients ${gib(m.gradients)}, optimizer state ${gib(m.optimizer_state)}, ${emaText(plan)}activations ${gib(m.activations)}${plan.zero === 3 ? ' (with the gathered units)' : ''}; peak ${gib(m.peak)}${plan.host_bytes_per_rank.ema ? ` on the device, and ${gib(plan.host_bytes_per_rank.ema)} of host memory` : ''}`,
    `  sent per rank per step: ${gib(s.total)} (all-reduce ${gib(s.allReduce)}, reduce-scatter ${gib(s.reduceScatter)}, all-gather ${gib(s.allGather)})`,
  ];
}

/** The EMAs' part of the per-rank line: where they are and what they take (nothing for runs without EMAs). */
function emaText(plan: MemoryPlan): string {
  const e = plan.emas;
  if (!e.count) return '';
  return plan.host_bytes_per_rank.ema ? `${e.count} EMAs 0 (${gib(e.bytes)} on ${e.device}), ` : `${e.count} EMAs ${gib(plan.bytes_per_rank.ema)}, `;
}

const TOP_LEVEL = ['info', 'train', 'launch', 'consolidate', 'make-shards', 'prepare-shards', 'sample', 'forward', 'generate', 'encode-text', 'decode-latents', 'encode-images', 'coord-check', 'mup-sweep', 'bench', 'help'];

/** The error for argv that names no command: an unknown word, or a known word with a wrong sub-command. */
function noSuchCommand(argv: readonly string[]): string {
  const [first, second] = argv;
  const subs = COMMANDS.filter((c) => c.name.startsWith(`${first} `)).map((c) => c.name.split(' ')[1]!);
  if (subs.length) return `${first}: expected one of ${subs.join(', ')}, got ${second === undefined ? 'nothing' : `'${second}'`}`;
  if (first!.startsWith('-')) return `expected a command before the flags, got '${first}'`;
  const near = closest(first!, TOP_LEVEL);
  return `unknown command '${first}'${near ? ` (did you mean '${near}'?)` : ''}`;
}

export async function main(argv: readonly string[]): Promise<number> {
  const cmd = argv[0];
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 1;
  }
  const spec = findCommand(argv);
  try {
    // launch passes everything after its own flags to the command it runs: it parses its own argv
    if (cmd === 'launch') return await launchCommand(argv.slice(1));
    if (!spec) {
      process.stderr.write(`lavender: ${noSuchCommand(argv)}\n${USAGE}`);
      return 2;
    }
    const p = parseArgs(argv, spec);
    if (p.flags.has('help')) {
      process.stdout.write(USAGE);
      return 0;
    }
    switch (spec.name.split(' ')[0]) {
      case 'info': return await info(p);
      case 'bench': return bench(p);
      case 'train': return await train(p);
      case 'consolidate': return consolidateCommand(p);
      case 'sample': return sample(p);
      case 'forward': return forward(p);
      case 'coord-check': return runCoordCheck(p);
      case 'mup-sweep': return await mupSweepCommand(p);
      case 'make-shards': return makeShards(p);
      case 'prepare-shards': return prepareShardsCommand(p);
      case 'generate': return generateCommand(p);
      case 'encode-text': return encodeTextCommand(p);
      case 'decode-latents': return decodeLatentsCommand(p);
      case 'encode-images': return encodeImagesCommand(p);
      default: throw new Error(`no handler for '${spec.name}'`);
    }
  } catch (e) {
    const name = spec?.name ?? cmd, msg = (e as Error).message;
    // handlers often name themselves already ('generate: ...', 'train t2i: ...'): say it once
    const named = [name, name.split(' ')[0]!].some((n) => msg.startsWith(`${n}:`) || msg.startsWith(`${n} `));
    process.stderr.write(`lavender ${named ? msg : `${name}: ${msg}`}\n`);
    return cmd.startsWith('-') ? 2 : 1;
  }
}

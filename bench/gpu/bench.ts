// GPU benchmarks for bench/gpu/run.sh (compiled to dist/bench/gpu/bench.js):
//   matmul  float32 and bfloat16 GFLOP/s through the cuda backend (cuBLAS), sizes given on the command line
//   mmdit [fp32|bf16]  one MMDiT block (double block) training step (bf16: under autocast) at dim 2560, 64 text + 256 image tokens, batch 8:
//           forward, backward, AdamW, with its FLOPs counted and MFU against the card's dense bf16 peak
//   parity [cuda|webgpu]  the DiT and MMDiT fixtures through runForward on that backend vs PyTorch's outputs and
//           gradients (test/fixtures/dit, test/fixtures/mmdit)
//   webgpu-info    the WebGPU adapter (Dawn over the Vulkan driver), its limits, shader-f16, the kernel profile
//   webgpu-matmul  float32 and float16 (shader-f16) TFLOP/s through the webgpu backend with the planner's kernel,
//                  sizes on the command line; then every tile at the largest size (to choose the planner's tiles)
//   nccl    a 1-rank NCCL process group on this GPU: all-reduce, reduce-scatter, all-gather, broadcast and
//           barrier round trips (values checked), polled through stream markers with the async-error query
//   elementwise [log2n] [backend]  add / mul / add-scalar / copy of 2^26 float32 and bfloat16 elements through the
//           backend's primitives, effective GB/s (bytes read + written per second); torch_ew.py is the reference
//   check   no GPU: validates the configs, FLOP counts and that every step is wired (used by --dry-run)
// Prints one JSON object per line.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as L from '../../src/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { runForward } from '../../src/train/forward.js';
import type { CudaBackend } from '../../src/backends/cuda/index.js';
import { initProcessGroup } from '../../src/distributed/process-group.js';
import { createServer } from 'node:net';
import type { WebGpuBackend } from '../../src/backends/webgpu/index.js';
import { TILES } from '../../src/backends/webgpu/matmul.js';
import { peakBf16Tflops } from '../../src/train/throughput.js';
import { autocast } from '../../src/ops/autocast.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const [what = 'check', ...rest] = process.argv.slice(2);


export const MMDIT_BLOCK = { dim: 2560, heads: 8, text: 64, image: 256, batch: 8 };

/** FLOPs of one training step (forward + backward = 3x forward) of one MMDiT double block. */
export function mmditBlockFlops(c = MMDIT_BLOCK): number {
  const D = c.dim, T = c.text + c.image, B = c.batch;
  const perToken = 2 * (4 * D * D + 2 * 4 * D * D); // q,k,v,o projections + MLP (4x hidden, two matrices)
  const linear = B * T * perToken;
  const attention = B * 2 * 2 * T * T * D; // q k^T and p v
  const modulation = 2 * B * 2 * D * 6 * D; // two streams' [B, D] x [D, 6D]
  return 3 * (linear + attention + modulation);
}

function time(fn: () => void, be: CudaBackend, reps: number): number {
  fn();
  be.synchronize();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  be.synchronize();
  return (performance.now() - t0) / 1000 / reps;
}

function matmulBench(sizes: number[]): void {
  const be = L.getBackend('cuda') as CudaBackend;
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const n of sizes) {
      L.scope(() => {
        const a = L.randn([n, n], { device: 'cuda' }).to(dtype), b = L.randn([n, n], { device: 'cuda' }).to(dtype);
        const s = time(() => L.scope(() => { L.matmul(a, b); }), be, n >= 4096 ? 10 : 30);
        console.log(JSON.stringify({ bench: 'matmul', backend: 'cuda', dtype, n, seconds: s, tflops: (2 * n ** 3) / s / 1e12, device: be.device.name }));
      });
    }
  }
}

function mmditBench(precision: 'fp32' | 'bf16'): void {
  const be = L.getBackend('cuda') as CudaBackend;
  const c = MMDIT_BLOCK;
  const model = new L.MMDiT({ dim: c.dim, n_layers: 1, n_double_layers: 1, n_heads: c.heads, global_conddim: c.dim, cond_seq_dim: c.dim, max_seq: c.image, in_channels: 4, patch_size: 2 }, { device: 'cuda' });
  const opt = new L.optim.AdamW(model.parameters(), { lr: 1e-4 });
  const side = Math.sqrt(c.image) * 2;
  const x = L.randn([c.batch, 4, side, side], { device: 'cuda' }), cs = L.randn([c.batch, c.text - 8, c.dim], { device: 'cuda' });
  const t = L.rand([c.batch], { device: 'cuda' }), target = L.randn([c.batch, 4, side, side], { device: 'cuda' });
  const step = () => L.scope(() => {
    const out = autocast(precision === 'bf16' ? 'bfloat16' : 'float32', () => model.forward(x, t, cs));
    const loss = L.mean(L.square(L.sub(out, target)));
    loss.backward();
    opt.step();
    opt.zeroGrad();
  });
  const s = time(step, be, 5);
  const flops = mmditBlockFlops();
  const peak = peakBf16Tflops(be.device.name);
  console.log(JSON.stringify({ bench: 'mmdit-block-step', framework: 'lavender', precision, ...c, seconds: s, tflops: flops / s / 1e12, mfu_vs_bf16_peak: flops / s / 1e12 / peak, device: be.device.name, mem: be.memStats() }));
}

/** Effective bandwidth of the elementwise primitives on contiguous operands (outputs preallocated). */
function elementwiseBench(log2n: number, backend: string): void {
  const be = L.getBackend(backend);
  const n = 2 ** log2n;
  const sync = () => be.synchronize?.();
  // bfloat16 where the backend computes in it (on cpu it is a storage dtype)
  for (const dtype of ['float32', ...(be.lowPrecision?.includes('bfloat16') ? ['bfloat16'] as const : [])] as const) {
    const bytes = dtype === 'float32' ? 4 : 2;
    const bufs = [0, 1, 2].map(() => be.alloc(dtype, n));
    const [a, b, o] = bufs.map((buf): L.View => ({ buf, shape: [n], strides: [1], offset: 0 })) as [L.View, L.View, L.View];
    be.fill(a, 1.25);
    be.fill(b, -0.5);
    const cases: [string, () => void, number][] = [
      ['add', () => be.binary('add', a, b, o), 3],
      ['mul', () => be.binary('mul', a, b, o), 3],
      ['add-scalar', () => (be.binaryScalar ? be.binaryScalar('add', a, 0.5, o, false) : be.binary('add', a, b, o)), 2],
      ['copy', () => be.copy(a, o, false), 2],
    ];
    for (const [op, fn, moved] of cases) {
      fn();
      sync();
      const reps = backend === 'cpu' ? 3 : 50;
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) fn();
      sync();
      const s = (performance.now() - t0) / 1000 / reps;
      console.log(JSON.stringify({ bench: 'elementwise', framework: 'lavender', backend, op, dtype, n, seconds: s, gbps: (moved * n * bytes) / s / 1e9 }));
    }
    const check = be.read(o.buf);
    const want = dtype === 'float32' ? 1.25 : 0x3fa0;  // the copy of a (bf16 reads back as raw bits: 1.25)
    if (check[0] !== want || check[n - 1] !== want) throw new Error(`elementwise bench: copy of ${dtype} read back ${check[0]}, ${check[n - 1]}`);
    for (const buf of bufs) be.free(buf);
  }
}

function relErr(a: L.Tensor, b: L.Tensor): number {
  const x = a.toArray(), y = b.toArray();
  let d = 0, s = 0;
  for (let i = 0; i < y.length; i++) { d = Math.max(d, Math.abs(x[i]! - y[i]!)); s = Math.max(s, Math.abs(y[i]!)); }
  return d / (s + 1e-12);
}

function parity(backend = 'cuda'): void {
  // the DiT and MMDiT fixtures (PyTorch outputs and gradients); the bars: outputs < 1e-4, gradients < 1e-3
  for (const [model, name] of [['dit', 'small'], ['dit', 'rgb'], ['mmdit', 'tiny'], ['mmdit', 'single_only_nonsquare']] as const) {
    const f = (part: string) => join(root, 'test', 'fixtures', model, `${name}.${part}`);
    const got = runForward({ model, config: f('config.json'), weights: f('weights.safetensors'), inputs: f('inputs.safetensors'), grad: true, backend });
    const { tensors: want } = loadSafetensors(f('expected.safetensors'));
    const grads = Object.keys(want).filter((k) => k.startsWith('grad.'));
    const worst = Math.max(...grads.map((k) => relErr(got[k]!.to('cpu'), want[k]!)));
    const out = relErr(got.output!.to('cpu'), want.output!), loss = relErr(got.loss!.to('cpu'), want.loss!);
    const ok = out < 1e-4 && loss < 1e-3 && worst < 1e-3;
    console.log(JSON.stringify({ bench: `${model}-parity`, fixture: name, backend, output_rel_err: out, loss_rel_err: loss, worst_grad_rel_err: worst, ok }));
    if (!ok) process.exitCode = 1;
  }
}

function check(): void {
  const flops = mmditBlockFlops();
  if (!(flops > 1e12)) throw new Error(`mmdit FLOP count looks wrong: ${flops}`);
  if (MMDIT_BLOCK.dim % MMDIT_BLOCK.heads) throw new Error('heads must divide dim');
  for (const name of ['small', 'rgb']) loadSafetensors(join(root, 'test', 'fixtures', 'dit', `${name}.expected.safetensors`));
  const cuda = L.backendEntries().find((e) => e.name === 'cuda')!;
  console.log(JSON.stringify({ bench: 'check', mmdit_block_step_gflop: flops / 1e9, peak_h100_sxm_tflops: peakBf16Tflops('NVIDIA H100 80GB HBM3'), cuda: { built: cuda.built, ...cuda.probe() } }));
}

function webgpuInfo(): void {
  const be = L.getBackend('webgpu') as WebGpuBackend;
  console.log(JSON.stringify({ bench: 'webgpu-info', ...be.device, profile: be.profile }));
}

/** Seconds per call of fn on webgpu (the device is drained before and after; one warm-up call compiles). */
function timeWebgpu(be: WebGpuBackend, fn: () => void, reps: number): number {
  fn();
  be.finish();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  be.finish();
  return (performance.now() - t0) / 1000 / reps;
}

function webgpuMatmul(sizes: number[]): void {
  const be = L.getBackend('webgpu') as WebGpuBackend;
  const dtypes = be.device.f16 ? (['float32', 'float16'] as const) : (['float32'] as const);
  const one = (dtype: 'float32' | 'float16', n: number, config: string) => L.scope(() => {
    be.setMatmulConfig(config);
    const a = L.randn([n, n], { device: 'webgpu' }).to(dtype), b = L.randn([n, n], { device: 'webgpu' }).to(dtype);
    let s = NaN, error: string | undefined, plan: unknown = null;
    try {
      plan = be.matmulPlan(L.unsqueeze(a, 0).view(), L.unsqueeze(b, 0).view());
      s = timeWebgpu(be, () => L.scope(() => { L.matmul(a, b); }), n >= 4096 ? 10 : 30);
    } catch (e) {
      error = (e as Error).message;
    }
    console.log(JSON.stringify({ bench: 'matmul', backend: 'webgpu', dtype, n, config, plan, seconds: s, tflops: (2 * n ** 3) / s / 1e12, device: be.device.adapter, ...(error ? { error } : {}) }));
  });
  for (const dtype of dtypes) for (const n of sizes) one(dtype, n, 'auto');
  const n = Math.max(...sizes);
  for (const dtype of dtypes) for (const cfg of [...Object.keys(TILES), '128x128x16/8x8', '128x64x16/8x4', '64x128x8/8x8', 'direct4']) one(dtype, n, cfg);
  be.setMatmulConfig('auto');
}

const freePort = () => new Promise<number>((res) => {
  const srv = createServer();
  srv.listen({ host: '127.0.0.1', port: 0 }, () => {
    const a = srv.address();
    srv.close(() => res(typeof a === 'object' && a ? a.port : 29500));
  });
});

/** One rank over NCCL: every collective is a round trip through the library; the results are known. */
async function ncclRoundTrip(): Promise<void> {
  const port = await freePort();
  const t0 = performance.now();
  const pg = await initProcessGroup({ backend: 'nccl', env: { rank: 0, localRank: 0, worldSize: 1, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: port, source: 'none' }, config: { bench: 'nccl' }, timeoutMs: 60_000 });
  const initSeconds = (performance.now() - t0) / 1000;
  const results: Record<string, boolean> = {};
  try {
    const n = 1 << 20;
    const x = L.randn([n], { device: 'cuda', generator: new L.Generator(1) });
    const want = x.to('cpu').toArray();
    const same = (t: L.Tensor) => { const a = t.to('cpu').toArray(); return a.length === want.length && a.every((v, i) => v === want[i]); };
    const t1 = performance.now();
    await pg.allReduce(x, 'sum');
    results.allReduce_sum = same(x);
    await pg.allReduce(x, 'avg');
    results.allReduce_avg = same(x);
    const rs = L.zeros([n], { device: 'cuda' });
    await pg.reduceScatter(rs, x, 'sum');
    results.reduceScatter = same(rs);
    const ag = L.zeros([n], { device: 'cuda' });
    await pg.allGather(ag, x);
    results.allGather = same(ag);
    await pg.broadcast(x, 0);
    results.broadcast = same(x);
    await pg.barrier();
    results.barrier = true;
    const host = L.tensor([1.5, 2.5]); // a host tensor travels through a cuda copy
    await pg.allReduce(host, 'sum');
    results.host_tensor = Array.from(host.toArray()).join(',') === '1.5,2.5';
    const ok = Object.values(results).every(Boolean);
    console.log(JSON.stringify({ bench: 'nccl-round-trip', ranks: 1, elements: n, init_seconds: initSeconds, collectives_seconds: (performance.now() - t1) / 1000, results, ok }));
    if (!ok) process.exitCode = 1;
  } finally {
    pg.destroy();
  }
}

switch (what) {
  case 'matmul': matmulBench(rest.length ? rest.map(Number) : [1024, 2048, 4096, 8192]); break;
  case 'mmdit': mmditBench(rest[0] === 'bf16' ? 'bf16' : 'fp32'); break;
  case 'parity': parity(rest[0] ?? 'cuda'); break;
  case 'webgpu-info': webgpuInfo(); break;
  case 'webgpu-matmul': webgpuMatmul(rest.length ? rest.map(Number) : [1024, 2048, 4096]); break;
  case 'nccl': await ncclRoundTrip(); break;
  case 'elementwise': elementwiseBench(Number(rest[0] ?? 26), rest[1] ?? 'cuda'); break;
  case 'check': check(); break;
  default: throw new Error(`bench/gpu/bench: unknown '${what}' (matmul, mmdit, parity, elementwise, webgpu-info, webgpu-matmul, nccl, check)`);
}

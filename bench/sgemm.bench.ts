/**
 * Quick sgemm benchmark: `node dist/bench/sgemm.bench.js [sizes] [threads...]`,
 * e.g. `node dist/bench/sgemm.bench.js 256,512,1024 1,2`. Prints the median GFLOP/s (mitata `measure`).
 * LAVENDER_SGEMM=simd forces the plain-SIMD (non-FMA) kernels. `--batched` adds the batched products of a DiT step.
 */
import { measure } from 'mitata';
import { setTimeout as sleep } from 'node:timers/promises';
import { sgemm, sgemmBatched, sgemmInfo, sgemmSetOptions, _sgemmStats } from '../src/backends/cpu/fast/sgemm.js';

const sizes = (process.argv[2] ?? '256,512,1024').split(',').map(Number);
const threadCounts = (process.argv[3] ?? `1,${sgemmInfo().threads}`).split(',').map(Number);

function rand(n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.random() * 2 - 1;
  return x;
}

for (const threads of [...new Set(threadCounts)]) {
  sgemmSetOptions({ threads });
  // Let the workers start (they are spawned lazily by the first large call).
  const w = rand(512 * 512), wc = new Float32Array(512 * 512);
  for (let i = 0; i < 5; i++) sgemm(512, 512, 512, w, 0, 512, 1, w, 0, 512, 1, wc, 0, 512);
  await sleep(200);
  const info = sgemmInfo();
  for (const n of sizes) {
    const A = rand(n * n), B = rand(n * n), C = new Float32Array(n * n);
    const s = await measure(() => {
      if (!sgemm(n, n, n, A, 0, n, 1, B, 0, n, 1, C, 0, n)) throw new Error('sgemm fast path unavailable');
    }, { min_cpu_time: 1e9, warmup_samples: 3 });
    const gflops = (2 * n ** 3) / s.p50; // ns -> GFLOP/s
    console.log(`sgemm ${n}x${n}x${n} threads=${info.threads} relaxed=${info.relaxed}: ${gflops.toFixed(1)} GFLOP/s (p50 ${(s.p50 / 1e6).toFixed(2)} ms) ${JSON.stringify(_sgemmStats())}`);
  }
}

// Batched products of a DiT-MNIST training step at batch 64 (attention: 256 = batch x heads items; a conv
// input gradient: a shared [800, 32] weight against 64 items): one item per sgemm call vs one sgemmBatched call.
if (process.argv.includes('--batched')) {
  const cases: { name: string; batch: number; M: number; N: number; K: number; aBs: number; ars: number; acs: number; bBs: number; brs: number; bcs: number }[] = [
    { name: 'q @ k^T  256 x [256x16]@[16x256]', batch: 256, M: 256, N: 256, K: 16, aBs: 4096, ars: 16, acs: 1, bBs: 4096, brs: 1, bcs: 16 },
    { name: 'p @ v    256 x [256x256]@[256x16]', batch: 256, M: 256, N: 16, K: 256, aBs: 65536, ars: 256, acs: 1, bBs: 4096, brs: 16, bcs: 1 },
    { name: 'p^T @ g  256 x [256x256]^T@[256x16]', batch: 256, M: 256, N: 16, K: 256, aBs: 65536, ars: 1, acs: 256, bBs: 4096, brs: 16, bcs: 1 },
    { name: 'W^T @ g  64 x [800x32]@[32x1024], W shared', batch: 64, M: 800, N: 1024, K: 32, aBs: 0, ars: 1, acs: 800, bBs: 32768, brs: 1024, bcs: 1 },
  ];
  for (const threads of [...new Set(threadCounts)]) {
    sgemmSetOptions({ threads });
    for (const c of cases) {
      const A = rand(Math.max(1, c.aBs * c.batch, c.M * c.K)), B = rand(Math.max(1, c.bBs * c.batch, c.K * c.N)), C = new Float32Array(c.batch * c.M * c.N);
      const per = await measure(() => {
        for (let p = 0; p < c.batch; p++) sgemm(c.M, c.N, c.K, A, p * c.aBs, c.ars, c.acs, B, p * c.bBs, c.brs, c.bcs, C, p * c.M * c.N, c.N);
      }, { min_cpu_time: 5e8, warmup_samples: 2 });
      const bat = await measure(() => {
        sgemmBatched(c.batch, c.M, c.N, c.K, A, 0, c.aBs, c.ars, c.acs, B, 0, c.bBs, c.brs, c.bcs, C, 0, c.M * c.N, c.N);
      }, { min_cpu_time: 5e8, warmup_samples: 2 });
      console.log(`${c.name} threads=${sgemmInfo().threads}: per item ${(per.p50 / 1e6).toFixed(2)} ms, batched ${(bat.p50 / 1e6).toFixed(2)} ms`);
    }
  }
}

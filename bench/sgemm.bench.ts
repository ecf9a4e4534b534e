/**
 * Quick sgemm benchmark: `node dist/bench/sgemm.bench.js [sizes] [threads...]`,
 * e.g. `node dist/bench/sgemm.bench.js 256,512,1024 1,2`. Prints the median GFLOP/s (mitata `measure`).
 * LAVENDER_SGEMM=simd forces the plain-SIMD (non-FMA) kernels.
 */
import { measure } from 'mitata';
import { setTimeout as sleep } from 'node:timers/promises';
import { sgemm, sgemmInfo, sgemmSetOptions, _sgemmStats } from '../src/backends/cpu/fast/sgemm.js';

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

// `lavender bench matmul`: median time of an N x N x N float32 matmul on a backend, as GFLOP/s.
import * as L from '../index.js';
import { sgemmInfo } from '../backends/cpu/fast/sgemm.js';

export interface MatmulBenchResult {
  op: 'matmul';
  size: number;
  backend: string;
  dtype: 'float32';
  gflops: number;
  median_ms: number;
  runs: number;
  threads?: number;
  kernel?: string;
}

export function benchMatmul(size: number, backend: string, runs: number): MatmulBenchResult {
  return L.scope(() => {
    const gen = new L.Generator(0);
    const a = L.randn([size, size], { device: backend, generator: gen });
    const b = L.randn([size, size], { device: backend, generator: gen });
    const once = () => L.scope(() => { L.matmul(a, b).toArray(); });
    const deadline = performance.now() + 500;
    do once(); while (performance.now() < deadline && size <= 256); // warm-up: JIT, pools, worker start
    once();
    const be = L.getBackend(backend);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      be.synchronize?.();
      const t0 = performance.now();
      L.scope(() => { L.matmul(a, b); });
      be.synchronize?.(); // asynchronous devices: time the work, not its enqueueing
      times.push(performance.now() - t0);
    }
    times.sort((x, y) => x - y);
    const median = times[Math.floor(times.length / 2)]!;
    const result: MatmulBenchResult = { op: 'matmul', size, backend, dtype: 'float32', gflops: (2 * size ** 3) / (median * 1e6), median_ms: median, runs };
    if (backend === 'cpu') {
      const info = sgemmInfo();
      result.threads = info.threads;
      result.kernel = info.simd ? `wasm-simd${info.relaxed ? '-fma' : ''}` : 'reference';
    }
    return result;
  });
}

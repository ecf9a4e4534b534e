// Kernel micro-benchmarks with mitata: cpu fast paths against the reference, and the hot ops of a training
// step. Run: `npm run build && node dist/bench/kernels.bench.js` (add --filter NAME to pick some).
import { bench, group, run, do_not_optimize } from 'mitata';
import * as L from '../src/index.js';
import { cpuReferenceBackend } from '../src/backends/cpu/index.js';

L.registerBackendInstance(cpuReferenceBackend);
const gen = new L.Generator(0);
const filter = process.argv.includes('--filter') ? new RegExp(process.argv[process.argv.indexOf('--filter') + 1]!) : undefined;

function timed(name: string, make: () => L.Tensor) {
  bench(name, () => L.scope(() => do_not_optimize(make().size)));
}

for (const n of [128, 512]) {
  const a = L.keep(L.randn([n, n], { generator: gen })), b = L.keep(L.randn([n, n], { generator: gen }));
  group(`matmul ${n}x${n}x${n} float32`, () => {
    timed('cpu (wasm simd + threads)', () => L.matmul(a, b));
    if (n <= 128) {
      const ar = L.keep(a.to('cpu-reference')), br = L.keep(b.to('cpu-reference'));
      timed('cpu-reference (typescript loops)', () => L.matmul(ar, br));
    }
  });
}

const x = L.keep(L.randn([64, 1024], { generator: gen }));
const w = L.keep(L.ones([1024])), bias = L.keep(L.zeros([1024]));
group('row ops 64x1024', () => {
  timed('softmax (fused cpu kernel)', () => L.softmax(x, -1));
  timed('layerNorm (fused cpu kernel)', () => L.layerNorm(x, [1024], w, bias));
  timed('gelu', () => L.gelu(x));
});

const img = L.keep(L.randn([8, 16, 32, 32], { generator: gen }));
const k = L.keep(L.randn([32, 16, 3, 3], { generator: gen }));
group('conv2d 8x16x32x32 * 32x16x3x3, padding 1', () => {
  timed('forward (unfold + wasm matmul)', () => L.conv2d(img, k, null, { padding: 1 }));
});

await run({ filter });

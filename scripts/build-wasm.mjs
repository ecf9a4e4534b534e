#!/usr/bin/env node
// Compiles the AssemblyScript kernels in kernels/wasm/ into dist/kernels/*.wasm with the AssemblyScript
// compiler from node_modules (works offline). Run by `npm run build:wasm`.
//
// cpu.ts (the cpu backend's kernels: gemm, elementwise, rows, optimizers, attention) is built in four
// variants: {relaxed-simd FMA, plain SIMD} x {shared memory (the heap of every cpu tensor, worker threads),
// non-shared memory (single-thread fallback, e.g. a browser page without cross-origin isolation)}.
// src/backends/cpu/fast/kernels.ts picks the best one that validates at run time.
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'kernels', 'wasm');
const outDir = path.join(root, 'dist', 'kernels');

let asc;
try {
  asc = (await import('assemblyscript/asc')).default;
} catch (e) {
  console.error(`build-wasm: cannot load the AssemblyScript compiler (run \`npm install\`): ${e.message}`);
  process.exit(1);
}

const common = ['-O3', '--noAssert', '--runtime', 'stub', '--importMemory', '--initialMemory', '1'];
// 65536 pages = 4 GiB, the wasm32 limit; the host grows the memory on demand.
const shared = ['--sharedMemory', '--maximumMemory', '65536'];

/** [source file, output name, extra asc flags] */
const targets = [
  ['cpu.ts', 'cpu-relaxed.wasm', ['--enable', 'simd,relaxed-simd,threads', ...shared]],
  ['cpu.ts', 'cpu-simd.wasm', ['--enable', 'simd,threads', ...shared]],
  ['cpu.ts', 'cpu-relaxed-st.wasm', ['--enable', 'simd,relaxed-simd']],
  ['cpu.ts', 'cpu-simd-st.wasm', ['--enable', 'simd']],
];

await mkdir(outDir, { recursive: true });
let failed = false;
for (const [src, out, flags] of targets) {
  const t0 = performance.now();
  let binary = null;
  const errLines = [];
  const { error } = await asc.main([path.join(srcDir, src), '--outFile', out, ...common, ...flags], {
    readFile: (name, baseDir) => readFile(path.resolve(baseDir, name), 'utf8').catch(() => null),
    writeFile: (name, contents) => { if (name === out) binary = contents; },
    listFiles: () => [],
    stdout: { write: (s) => { errLines.push(String(s)); } },
    stderr: { write: (s) => { errLines.push(String(s)); } },
  });
  if (error || !binary) {
    failed = true;
    console.error(`build-wasm: ${src} -> ${out} FAILED: ${error ? error.message : 'no output'}\n${errLines.join('')}`);
    continue;
  }
  await writeFile(path.join(outDir, out), binary);
  const ms = (performance.now() - t0).toFixed(0);
  console.log(`build-wasm: kernels/wasm/${src} -> dist/kernels/${out} (${binary.length} bytes, ${ms} ms)`);
}
if (failed) process.exit(1);

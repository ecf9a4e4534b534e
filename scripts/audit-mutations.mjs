#!/usr/bin/env node
// Re-runs the mutation audit of issue 16: each hand-made bug below is applied to a scratch copy of the
// project, the copy is rebuilt, the named test files run, and the tests that fail are reported, so the
// table in docs/testing.md can be regenerated and checked. A mutation that no test catches is an error.
//
//   node scripts/audit-mutations.mjs            # all of them (a few minutes; tsc runs once per mutation)
//   node scripts/audit-mutations.mjs flow-sign  # one, by id
//
// The working tree is never touched: the copy lives in a temporary directory (tracked files + dist/kernels,
// node_modules linked) and is deleted at the end.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** id, what the bug is, file, exact text and its replacement, the test files to run, what must be rebuilt. */
const MUTATIONS = [
  { id: 'flow-sign', what: 'rectified-flow target sign flipped (x - z1 instead of z1 - x)', file: 'src/flow/rectified-flow.ts',
    from: 'square(sub(sub(z1, x), v))', to: 'square(sub(sub(x, z1), v))', tests: ['flow', 'train', 't2i'] },
  { id: 't2i-stride', what: 't2i batch packing stride c[b*n+i] (n = this sample\'s cut length) instead of c[b*T*D+i]', file: 'src/data/t2i.ts',
    from: 'c[b * T * D + i] =', to: 'c[b * n + i] =', tests: ['t2i', 'data'] },
  { id: 'softmax-bwd-scale', what: 'fused cpu softmax backward (TypeScript) drops its scale', file: 'src/backends/cpu/fused.ts',
    from: 'O[oi + j] = scale * Y[yi + j]! * (G[gi + j]! - dot);', to: 'O[oi + j] = Y[yi + j]! * (G[gi + j]! - dot);',
    tests: ['gradcheck', 'backends', 'cpu-kernels', 'torch-fixtures', 'dit-parity'] },
  { id: 'softmax-bwd-scale-wasm', what: 'fused cpu softmax backward (wasm SIMD kernel) drops its scale', file: 'kernels/wasm/rows.ts',
    from: 'const vd = splat(dot), vs = splat(scale);', to: 'const vd = splat(dot), vs = splat(<f32>1);', wasm: true,
    tests: ['gradcheck', 'backends', 'cpu-kernels', 'torch-fixtures', 'dit-parity'] },
  { id: 'sgemm-tile', what: 'wasm sgemm micro-kernel stores the first row\'s two column blocks swapped', file: 'kernels/wasm/gemm.ts',
    from: 'v128.store(c, c00, 0); v128.store(c, c01, 16);', to: 'v128.store(c, c01, 0); v128.store(c, c00, 16);', wasm: true,
    tests: ['backends', 'gradcheck'] },
  { id: 'zero-sum', what: 'ZeRO reduce-scatter sums instead of averaging', file: 'src/distributed/zero.ts',
    from: "pg.reduceScatter(g, flat, 'avg');", to: "pg.reduceScatter(g, flat, 'sum');", tests: ['dist'] },
  { id: 'adam-bias-step', what: 'Adam bias correction from the optimizer\'s step count instead of the parameter\'s (composed step)', file: 'src/optim/adamw.ts',
    from: 'const biasCorrection1 = 1 - beta1 ** st.step;\n    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** st.step);',
    to: 'const biasCorrection1 = 1 - beta1 ** this.steps;\n    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** this.steps);', tests: ['optim'] },
  { id: 'adam-bias-step-fused', what: 'the same, in the step count the fused step is given (float32 on cpu)', file: 'src/optim/adamw.ts',
    from: 'm: st.m.view(), v: st.v.view(), step: st.step };', to: 'm: st.m.view(), v: st.v.view(), step: this.steps };', tests: ['optim'] },
  { id: 'uint8-256', what: 'uint8 embedding dequantisation x/256 instead of x/255', file: 'src/data/t2i.ts',
    from: 'emb[i]! / 255', to: 'emb[i]! / 256', tests: ['t2i', 'data', 'mds'] },
];

function scratchCopy() {
  const dir = mkdtempSync(join(tmpdir(), 'lav-audit-'));
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(root, f), join(dir, f));
  }
  cpSync(join(root, 'dist', 'kernels'), join(dir, 'dist', 'kernels'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 28 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function build(dir, wasm) {
  if (wasm) {
    const w = run(process.execPath, ['scripts/build-wasm.mjs'], dir);
    if (w.status !== 0) throw new Error(`build-wasm failed:\n${w.out}`);
  }
  const t = run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], dir);
  if (t.status !== 0) throw new Error(`tsc failed:\n${t.out}`);
}

const details = {};

/** The names of the failing top-level tests, per file (node's TAP output). */
function failingTests(dir, tests) {
  const out = {};
  for (const t of tests) {
    const r = run(process.execPath, ['--test', '--test-reporter=tap', `dist/test/${t}.test.js`], dir);
    out[t] = [...r.out.matchAll(/^not ok \d+ - (.*)$/gm)].map((m) => m[1]).filter((n) => !n.endsWith('.test.js'));
    details[t] = r.out.split('\n').filter((l) => /^not ok|error:|Got error|differs/.test(l)).slice(0, 12).join('\n');
    if (r.status !== 0 && out[t].length === 0) out[t] = [`(the file failed to run: ${r.out.trim().split('\n').slice(-3).join(' / ')})`];
  }
  return out;
}

const only = process.argv.slice(2);
const chosen = only.length ? MUTATIONS.filter((m) => only.includes(m.id)) : MUTATIONS;
if (chosen.length === 0) throw new Error(`unknown mutation id(s) ${only.join(', ')}; known: ${MUTATIONS.map((m) => m.id).join(', ')}`);
const dir = scratchCopy();
const rows = [];
let uncaught = 0;
try {
  build(dir, false);
  const baseline = failingTests(dir, [...new Set(chosen.flatMap((m) => m.tests))]);
  const already = Object.entries(baseline).filter(([, f]) => f.length);
  if (already.length) throw new Error(`tests fail before any mutation: ${JSON.stringify(already)}\n${already.map(([f]) => details[f]).join('\n')}`);
  for (const m of chosen) {
    const path = join(dir, m.file);
    const original = readFileSync(path, 'utf8');
    const count = original.split(m.from).length - 1;
    if (count !== 1) throw new Error(`${m.id}: expected the text exactly once in ${m.file}, found it ${count} times (the code moved: update this script)`);
    writeFileSync(path, original.replace(m.from, m.to));
    process.stderr.write(`[audit] ${m.id}: ${m.what}\n`);
    try {
      build(dir, m.wasm);
      const failed = failingTests(dir, m.tests);
      const caught = Object.entries(failed).filter(([, f]) => f.length);
      if (!caught.length) uncaught++;
      rows.push({ m, caught });
      for (const [file, names] of caught) for (const n of names) process.stderr.write(`[audit]   ${file}.test: ${n}\n`);
      if (!caught.length) process.stderr.write('[audit]   NOT CAUGHT\n');
    } finally {
      writeFileSync(path, original);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log('| change made on purpose | file | failing tests (file: test) |');
console.log('|---|---|---|');
for (const { m, caught } of rows) {
  const cell = caught.length ? caught.map(([f, names]) => names.map((n) => `\`${f}\`: ${n}`).join('<br>')).join('<br>') : '**not caught**';
  console.log(`| ${m.what} | \`${m.file}\` | ${cell} |`);
}
if (uncaught) {
  console.error(`${uncaught} mutation(s) not caught`);
  process.exit(1);
}

#!/usr/bin/env node
// Is lavender usable from outside its clone? `npm pack`, then check what the tarball holds (the build output
// and what the install script needs; no tests, fixtures or benchmarks), install it into a new project in a
// temporary folder and there run `npx lavender info --json`, import the package and its subpath exports,
// and type-check a TypeScript file against the installed types. Run by .ci/run; `npm run check:pack`.
// --no-build packs the dist/ already built (npm pack otherwise runs the prepare script: a full build).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const noBuild = process.argv.includes('--no-build');
const tmp = mkdtempSync(join(tmpdir(), 'lavender-pack-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (cmd, args, cwd, env = {}) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
const fail = (msg) => {
  console.error(`check-pack: ${msg}`);
  process.exit(1);
};

try {
  // 1. pack
  // the prepare script's build output shares stdout with npm's JSON: parse from the line that opens the array
  const out = run(npm, ['pack', '--json', '--pack-destination', tmp, ...(noBuild ? ['--ignore-scripts'] : [])], root);
  const packed = JSON.parse(out.slice(Math.max(0, out.search(/^\[/m))))[0];
  const files = packed.files.map((f) => f.path);
  const tarball = join(tmp, packed.filename);
  console.log(`packed ${packed.filename}: ${files.length} files, ${(packed.size / 2 ** 20).toFixed(2)} MiB (${(packed.unpackedSize / 2 ** 20).toFixed(2)} MiB unpacked)`);

  // 2. contents: everything the exports, the bin and the install script need; nothing of the test suite
  const needed = ['bin/lavender.js', 'scripts/build-native.mjs', 'CMakeLists.txt', 'dist/src/cli/main.js', 'dist/kernels/cpu-simd.wasm', 'dist/kernels/cpu-simd-st.wasm', 'dist/src/backends/webgpu/wgsl.generated.js', 'README.md', 'package.json'];
  for (const target of Object.values(pkg.exports)) {
    if (typeof target === 'string') needed.push(target.replace(/^\.\//, ''));
    else for (const p of Object.values(target)) needed.push(p.replace(/^\.\//, ''));
  }
  const missing = needed.filter((f) => !files.includes(f));
  if (missing.length) fail(`the tarball lacks ${missing.join(', ')}`);
  const unwanted = files.filter((f) => /^(test|dist\/test|dist\/bench|dist\/examples|bench|examples|node_modules|build)\//.test(f) || f.includes('fixtures/'));
  if (unwanted.length) fail(`the tarball ships ${unwanted.length} files that users do not need, e.g. ${unwanted.slice(0, 5).join(', ')}`);
  if (packed.unpackedSize > 20 * 2 ** 20) fail(`the tarball unpacks to ${(packed.unpackedSize / 2 ** 20).toFixed(1)} MiB (limit 20 MiB)`);

  // 3. install into a fresh project (no dev tools: the build output is in the tarball; the install script
  // skips the CUDA addon without nvcc)
  const app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'lavender-pack-check', private: true, type: 'module' }));
  const install = run(npm, ['install', tarball, '--no-audit', '--no-fund', '--foreground-scripts'], app);
  // the install script's record: 'skipped' without nvcc/cmake, else the addon build's outcome (never fatal)
  let native = 'no record (the install script did not run)';
  try {
    const rec = JSON.parse(readFileSync(join(app, 'node_modules', 'lavender', 'build', 'native', 'lavender-build.json'), 'utf8'));
    native = `${rec.status}${rec.reason ? ` (${rec.reason})` : ''}`;
  } catch { /* no record */ }
  console.log(`installed into a new project; the cuda addon: ${native}`);

  // 4. the command
  const info = JSON.parse(run('npx', ['--no-install', 'lavender', 'info', '--json'], app));
  if (info.version !== pkg.version) fail(`npx lavender info --json says version ${info.version}, package.json ${pkg.version}`);
  if (!info.backends.some((b) => b.name === 'cpu' && b.available)) fail('npx lavender info --json: the cpu backend is not available');
  console.log(`npx lavender info --json: version ${info.version}, backends ${info.backends.map((b) => `${b.name}=${b.available}`).join(' ')}`);

  // 5. imports: the root and every subpath export, used a little
  const script = `
    import * as L from 'lavender';
    import { sampleEuler } from 'lavender/flow';
    import { DiT, MMDIT_PRESETS } from 'lavender/models';
    import { saveSafetensors, loadSafetensors, encodePng } from 'lavender/io';
    import { DataLoader } from 'lavender/data';
    import { AdamW, readModelSpec } from 'lavender/optim';
    import { Linear } from 'lavender/nn';
    import { matmul } from 'lavender/ops';
    import { trainDiT, checkRunDir } from 'lavender/train';
    import { initProcessGroup } from 'lavender/distributed';
    import { initWebGpu } from 'lavender/webgpu';
    const x = L.randn([2, 3]);
    if (matmul(x, L.ones([3, 1])).shape.join() !== '2,1') throw new Error('matmul');
    const m = new DiT({ in_channels: 1, input_size: 8, dim: 64, n_layers: 1, n_heads: 2, multiple_of: 32 });
    const f = ${JSON.stringify(join(tmp, 'w.safetensors'))};
    saveSafetensors(f, m.stateDict());
    new DiT(m.config).loadStateDict(loadSafetensors(f).tensors);
    for (const v of [sampleEuler, encodePng, DataLoader, AdamW, readModelSpec, Linear, trainDiT, checkRunDir, initProcessGroup, initWebGpu]) if (typeof v !== 'function') throw new Error('missing export');
    if (!MMDIT_PRESETS['mmdit-tiny'] || typeof L.optim.AdamW !== 'function') throw new Error('missing export');
    console.log('imports: lavender and its ' + ${Object.keys(pkg.exports).filter((k) => k.startsWith('./') && k !== './package.json').length} + ' subpath exports work');`;
  writeFileSync(join(app, 'check.mjs'), script);
  console.log(run(process.execPath, ['check.mjs'], app).trim());

  // 6. types: a TypeScript user's view of the same imports
  writeFileSync(join(app, 'check.ts'), `import * as L from 'lavender';
import { trainDiT, type TrainDiTOptions } from 'lavender/train';
import { MMDiT, type MMDiTConfig } from 'lavender/models';
import { flowLoss } from 'lavender/flow';
import type { ImageDataset } from 'lavender/data';
const t: L.Tensor = L.zeros([2]);
const c: MMDiTConfig = { dim: 64, n_layers: 1, n_heads: 2, global_conddim: 64, max_seq: 16 };
const o: Partial<TrainDiTOptions> = { steps: 1 };
const d: ImageDataset | undefined = undefined;
export { t, c, o, d, trainDiT, MMDiT, flowLoss };
`);
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--typeRoots', join(root, 'node_modules', '@types'), 'check.ts'], app);
  console.log('types: check.ts type-checks against the installed package');
  console.log('check-pack: ok');
} catch (e) {
  fail(`${e.message}${e.stdout ? `\n${e.stdout}` : ''}${e.stderr ? `\n${e.stderr}` : ''}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

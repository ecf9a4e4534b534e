#!/usr/bin/env node
// Builds the cuda backend's native addon (CMakeLists.txt: bindings/ + kernels/cuda/) with cmake-js into
// build/native/, from `npm install` (package.json "install") or `npm run build:native`.
// Where nvcc, cmake or cmake-js is missing it prints one line and skips: the rest of lavender works.
// A failed build also does not fail the install (unless LAVENDER_NATIVE_STRICT=1); it is recorded, and
// test/cuda.test.ts fails on a machine that has nvcc but a failed build.
// Writes build/native/lavender-build.json: status, reason, nvcc, archs, the prototype-check report.
//
// Environment: LAVENDER_SKIP_NATIVE=1 skips; LAVENDER_CUDA_ARCHS (default "80-real;90");
// CUDACXX / CUDA_HOME / CUDA_PATH locate nvcc; LAVENDER_CUDA_INCLUDE_PATH (colon separated) adds
// directories searched for cublas_api.h / nccl.h for the prototype check; LAVENDER_NATIVE_STRICT=1
// makes a failed build fail the command.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'native');
const recordPath = join(out, 'lavender-build.json');
const addonFile = join(out, 'Release', 'lavender_cuda.node');
const strict = process.env.LAVENDER_NATIVE_STRICT === '1';
const started = Date.now();

function record(rec) {
  mkdirSync(out, { recursive: true });
  writeFileSync(recordPath, JSON.stringify({ ...rec, date: new Date().toISOString() }, null, 2) + '\n');
}

function skip(reason) {
  record({ status: 'skipped', reason });
  console.log(`lavender: skipping the cuda addon: ${reason} (the cpu backend and everything else work)`);
  process.exit(0);
}

const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 20000, ...opts });

/** The real nvcc (CMake needs the toolkit's own binary, not a wrapper script on PATH). */
function findNvcc() {
  const cands = [];
  if (process.env.CUDACXX) cands.push(process.env.CUDACXX);
  for (const v of ['CUDA_HOME', 'CUDA_PATH']) if (process.env[v]) cands.push(join(process.env[v], 'bin', 'nvcc'));
  cands.push('/usr/local/cuda/bin/nvcc');
  try {
    const versions = readdirSync('/usr/local').filter((d) => /^cuda-\d+(\.\d+)?$/.test(d)).sort((a, b) => parseFloat(b.slice(5)) - parseFloat(a.slice(5)));
    for (const d of versions) cands.push(join('/usr/local', d, 'bin', 'nvcc'));
  } catch { /* no /usr/local */ }
  const which = run('sh', ['-c', 'command -v nvcc']);
  const onPath = which.status === 0 ? which.stdout.trim() : '';
  if (onPath) {
    // a wrapper script such as `exec /usr/local/cuda-13.0/bin/nvcc "$@"`: take its target
    try {
      const text = readFileSync(onPath, 'utf8');
      const m = /exec\s+(\/\S+\/nvcc)\b/.exec(text.slice(0, 4096));
      if (m) cands.push(m[1]);
    } catch { /* binary */ }
    cands.push(onPath);
  }
  for (const c of cands) {
    if (!c || !existsSync(c)) continue;
    const v = run(c, ['--version']);
    if (v.status === 0) return { path: c, version: (/release ([\d.]+)/.exec(v.stdout) ?? [])[1] ?? 'unknown' };
  }
  return null;
}

/** Where cublas_api.h / nccl.h may be: the environment's list and the nvidia-* Python wheels. */
function headerSearch() {
  const dirs = (process.env.LAVENDER_CUDA_INCLUDE_PATH ?? '').split(':').filter(Boolean);
  const py = run('python3', ['-c', 'import site,sys; print("\\n".join(site.getsitepackages()+[site.getusersitepackages()]+sys.path))'], { timeout: 10000 });
  const sites = py.status === 0 ? py.stdout.split('\n').map((s) => s.trim()).filter(Boolean) : [];
  for (const s of sites) {
    for (const sub of ['nvidia/cu13/include', 'nvidia/cu12/include', 'nvidia/cublas/include', 'nvidia/nccl/include']) {
      const d = join(s, sub);
      if (existsSync(d) && !dirs.includes(d)) dirs.push(d);
    }
  }
  return dirs;
}

if (process.env.LAVENDER_SKIP_NATIVE === '1') skip('LAVENDER_SKIP_NATIVE=1');
const nvcc = findNvcc();
if (!nvcc) skip('no CUDA compiler (nvcc) found');
if (run('cmake', ['--version']).status !== 0) skip('cmake not found');
let cmakeJs;
try {
  cmakeJs = join(dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  createRequire(import.meta.url).resolve('node-addon-api');
} catch {
  skip('cmake-js or node-addon-api is not installed');
}

const archs = process.env.LAVENDER_CUDA_ARCHS || '80-real;90';
const search = headerSearch();
const defs = [`--CDCMAKE_CUDA_COMPILER=${nvcc.path}`, `--CDLAVENDER_CUDA_ARCHS=${archs}`, `--CDLAVENDER_HEADER_SEARCH=${search.join(';')}`];
console.log(`lavender: building the cuda addon with nvcc ${nvcc.version} (${nvcc.path}), archs ${archs}...`);
mkdirSync(out, { recursive: true });
// configure every time (a few seconds): `cmake-js build` alone keeps the first configure's cache, so a
// changed LAVENDER_CUDA_INCLUDE_PATH or LAVENDER_CUDA_ARCHS would be ignored; the build stays incremental
const opts = { cwd: root, encoding: 'utf8', timeout: 30 * 60 * 1000, maxBuffer: 64 << 20 };
let r = spawnSync(process.execPath, [cmakeJs, 'configure', '-O', out, ...defs], opts);
let log = `${r.stdout ?? ''}${r.stderr ?? ''}`;
if (r.status === 0) {
  r = spawnSync(process.execPath, [cmakeJs, 'build', '-O', out, '-p', String(Math.max(1, cpus().length)), ...defs], opts);
  log += `${r.stdout ?? ''}${r.stderr ?? ''}`;
}
writeFileSync(join(out, 'build.log'), log);
if (r.status !== 0 || !existsSync(addonFile)) {
  const reason = `the build failed (exit ${r.status ?? r.signal}); see build/native/build.log`;
  record({ status: 'failed', reason, nvcc: nvcc.version, archs, headerSearch: search });
  console.log(log.split('\n').filter((l) => /error|FAILED/i.test(l)).slice(-20).join('\n'));
  console.log(`lavender: the cuda addon failed to build: ${reason} (everything else works)`);
  process.exit(strict ? 1 : 0);
}
// read the prototype-check report compiled into the addon (loading needs no GPU: cudart is static)
const info = run(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(addonFile)}).buildInfo()))`]);
let protoCheck = null;
try {
  protoCheck = JSON.parse(info.stdout).protoCheck;
} catch {
  record({ status: 'failed', reason: `the addon was built but does not load: ${info.stderr.trim().split('\n').slice(-3).join(' ')}`, nvcc: nvcc.version, archs });
  console.log(`lavender: the cuda addon was built but does not load (everything else works): ${info.stderr.trim()}`);
  process.exit(strict ? 1 : 0);
}
const seconds = Math.round((Date.now() - started) / 100) / 10;
record({ status: 'built', addon: addonFile, nvcc: nvcc.version, archs, seconds, protoCheck, headerSearch: search });
console.log(`lavender: built the cuda addon in ${seconds}s; prototype check: cuBLAS ${protoCheck.cublas.split(':')[0]}, NCCL ${protoCheck.nccl.split(':')[0]}`);

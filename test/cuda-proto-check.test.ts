// The compile-time check of the dlopen'ed cuBLAS prototypes (kernels/cuda/host/proto_check.cpp), compiled
// here with the host C++ compiler against a stand-in cublas_api.h that overloads cublasGemmStridedBatchedEx
// in C++ as CUDA 13's header does (the GPU machine's rebuild failed on exactly that with `decltype(&fn)`).
// Needs only g++ and the CUDA runtime headers (cuda_runtime_api.h, library_types.h); skipped without them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const host = join(root, 'kernels', 'cuda', 'host');
const mock = join(root, 'test', 'fixtures', 'cuda-headers', 'cublas_api.h');
const cudaInclude = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']
  .filter((d): d is string => !!d).map((d) => join(d, 'include')).find((d) => existsSync(join(d, 'cuda_runtime_api.h')));
const cxx = spawnSync('g++', ['--version']).status === 0 ? 'g++' : null;
const skip = !cxx ? 'no g++' : !cudaInclude ? 'no CUDA runtime headers (cuda_runtime_api.h)' : false;

const compile = (file: string) => spawnSync(cxx!, ['-std=c++17', '-fsyntax-only', `-I${cudaInclude}`, `-DLAV_CUBLAS_HEADER=${mock}`, file],
  { encoding: 'utf8', timeout: 60_000 });

test('proto_check.cpp accepts a cublas_api.h whose gemm entry point is overloaded in C++', { skip }, () => {
  const r = compile(join(host, 'proto_check.cpp'));
  assert.equal(r.status, 0, r.stderr);
});

test('proto_check.cpp rejects a wrong prototype or enum size, naming the function', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lav-proto-'));
  try {
    for (const f of ['proto_check.cpp', 'nccl_proto.h']) copyFileSync(join(host, f), join(dir, f));
    const proto = readFileSync(join(host, 'cublas_proto.h'), 'utf8');
    const cases: [string, string, RegExp][] = [
      ['long long int strideA', 'int strideA', /cublasGemmStridedBatchedEx/],  // a parameter of another width
      ['enum Math : int', 'enum Math : long long', /cublasSetMathMode: prototype in cublas_proto.h differs/],  // enum size
      ['(*pfn_cublasGetVersion_v2)(Handle handle, int* version)', '(*pfn_cublasGetVersion_v2)(Handle handle, const int* version)', /cublasGetVersion_v2/],
    ];
    for (const [from, to, re] of cases) {
      assert.ok(proto.includes(from), `cublas_proto.h contains '${from}'`);
      writeFileSync(join(dir, 'cublas_proto.h'), proto.replace(from, to));
      const r = compile(join(dir, 'proto_check.cpp'));
      assert.notEqual(r.status, 0, `'${to}' must fail the check`);
      assert.match(r.stderr, re);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A stand-in for the cuda addon (build/native/Release/lavender_cuda.node) that computes nothing but checks
// every call the TypeScript side makes against the protocol bindings/addon.cc reads: descriptor layouts
// (consumed exactly), op codes, elementwise paths, and that every strided operand stays inside a live
// allocation; a VEC path must be contiguous and 16-byte aligned, a STRIDED32 one must fit int32. Reads
// return zeros. Load it with LAVENDER_CUDA_ADDON=<this file> (test/cuda-fake-addon.test.ts): the cuda
// backend's TypeScript then runs whole training steps on a machine without a GPU.
'use strict';

const BYTES = [4, 8, 4, 8, 2, 2, 1];  // kernels/cuda/lav.h LavDType order
const UNARY = 23, BINARY = 18, REDUCE = 6;
const live = new Map();  // ptr -> bytes
let next = 1 << 20, inUse = 0, peak = 0;
const calls = {};
const count = (name) => (calls[name] = (calls[name] ?? 0) + 1);
const fail = (what, msg) => { throw new Error(`fake cuda addon: ${what}: ${msg}`); };

class Reader {
  constructor(what, d) {
    if (!(d instanceof Float64Array)) fail(what, 'expected a Float64Array descriptor');
    this.what = what; this.d = d; this.i = 0;
  }
  next() { if (this.i >= this.d.length) fail(this.what, 'descriptor too short'); return this.d[this.i++]; }
  int() { const v = this.next(); if (!Number.isInteger(v)) fail(this.what, `non-integer ${v} at ${this.i - 1}`); return v; }
  shape() {
    const n = this.int();
    if (n < 0 || n > 8) fail(this.what, `shape with ${n} dims`);
    const dims = [];
    for (let k = 0; k < n; k++) { const d = this.int(); if (d < 1) fail(this.what, `dim ${d} (coalescing drops size-1 and empty shapes skip the call)`); dims.push(d); }
    return dims;
  }
  arg(ndim) {
    const ptr = this.int(), dtype = this.int(), offset = this.int(), strides = [];
    for (let k = 0; k < ndim; k++) strides.push(this.int());
    if (!(dtype >= 0 && dtype < 7)) fail(this.what, `dtype code ${dtype}`);
    return { ptr, dtype, offset, strides };
  }
  end() { if (this.i !== this.d.length) fail(this.what, `${this.d.length - this.i} unread descriptor entries`); }
}

/** The operand's elements reached over dims stay inside its allocation. */
function inBounds(what, a, dims) {
  const size = live.get(a.ptr);
  if (size === undefined) fail(what, `pointer ${a.ptr} is not a live allocation`);
  let lo = a.offset, hi = a.offset;
  dims.forEach((d, k) => { const r = (d - 1) * a.strides[k]; if (r > 0) hi += r; else lo += r; });
  if (lo < 0 || (hi + 1) * BYTES[a.dtype] > size) fail(what, `elements ${lo}..${hi} of a ${size}-byte allocation (dtype ${a.dtype})`);
}

function elementwise(what, desc, nargs) {
  count(what);
  const r = new Reader(what, desc);
  const path = r.int();
  if (![0, 1, 2].includes(path)) fail(what, `path ${path}`);
  const dims = r.shape();
  const args = [];
  for (let k = 0; k < nargs; k++) args.push(r.arg(dims.length));
  r.end();
  const n = dims.reduce((a, b) => a * b, 1);
  for (const a of args) {
    inBounds(what, a, dims);
    if (path === 0) {
      if (dims.length > 1 || (dims.length === 1 && a.strides[0] !== 1)) fail(what, 'VEC path over non-contiguous operands');
      if ((a.ptr + a.offset * BYTES[a.dtype]) % 16) fail(what, 'VEC path over an operand not on a 16-byte boundary');
    }
    if (path === 1) {
      let reach = 0;
      dims.forEach((d, k) => (reach += (d - 1) * Math.abs(a.strides[k])));
      if (n > 0x7fffffff || reach > 0x7fffffff) fail(what, 'STRIDED32 path past int32');
    }
  }
  calls[`${what}.path${path}`] = (calls[`${what}.path${path}`] ?? 0) + 1;
  return args;
}

function rowsArgs(what, desc, head, nargs) {
  count(what);
  const r = new Reader(what, desc);
  const nums = [];
  for (let k = 0; k < head; k++) nums.push(r.int());
  const args = [];
  for (let k = 0; k < nargs; k++) args.push(r.arg(0));
  r.end();
  return { nums, args };
}

const opCode = (what, op, n) => { if (!Number.isInteger(op) || op < 0 || op >= n) fail(what, `op code ${op}`); };
const num = (what, v) => { if (typeof v !== 'number') fail(what, `expected a number, got ${typeof v}`); };

module.exports = {
  probe: () => ({ code: 0, name: 'cudaSuccess', message: 'no error', count: 1, driverVersion: 13000, runtimeVersion: 13000 }),
  init: () => ({ index: 0, name: 'Fake GPU (test/harness/fake-cuda-addon.cjs)', major: 9, minor: 0, sms: 132, totalMem: 2 ** 40, cublasPath: 'none', cublasVersion: 0 }),
  alloc(bytes) {
    count('alloc');
    if (!Number.isSafeInteger(bytes) || bytes < 0) fail('alloc', `bytes ${bytes}`);
    const p = next;
    next += Math.max(512, Math.ceil(bytes / 512) * 512);
    live.set(p, bytes);
    inUse += bytes;
    peak = Math.max(peak, inUse);
    return p;
  },
  free(ptr) {
    count('free');
    const bytes = live.get(ptr);
    if (bytes === undefined) fail('free', `pointer ${ptr} is not live`);
    live.delete(ptr);
    inUse -= bytes;
  },
  // bytes requested (no size-class rounding): peak is what the program held at once
  memStats: () => ({ inUse, cached: 0, reserved: 0, peak, hits: 0, misses: 0, liveBlocks: live.size }),
  emptyCache() {},
  write(ptr, byteOffset, data) {
    count('write');
    const size = live.get(ptr);
    if (size === undefined || byteOffset + data.byteLength > size) fail('write', `${data.byteLength} bytes at ${byteOffset} into ${size}`);
  },
  read(ptr, byteOffset, bytes) {
    count('read');
    const size = live.get(ptr);
    if (size === undefined || byteOffset + bytes > size) fail('read', `${bytes} bytes at ${byteOffset} of ${size}`);
    return new ArrayBuffer(bytes);
  },
  synchronize() { count('synchronize'); },
  fill(desc, value) { num('fill', value); elementwise('fill', desc, 1); },
  copy(desc, acc) { if (acc !== 0 && acc !== 1) fail('copy', `accumulate ${acc}`); elementwise('copy', desc, 2); },
  unary(op, desc) { opCode('unary', op, UNARY); elementwise('unary', desc, 2); },
  binary(op, desc) { opCode('binary', op, BINARY); elementwise('binary', desc, 3); },
  binaryScalar(op, desc, s) { opCode('binaryScalar', op, BINARY); num('binaryScalar', s); elementwise('binaryScalar', desc, 2); },
  where(desc) { elementwise('where', desc, 4); },
  siluBackward(desc) { elementwise('siluBackward', desc, 3); },
  swiglu(desc) { elementwise('swiglu', desc, 3); },
  modulate(desc) { elementwise('modulate', desc, 4); },
  gatedAdd(desc) { elementwise('gatedAdd', desc, 4); },
  swigluBackward(desc, hasDa, hasDb) { elementwise('swigluBackward', desc, 5); if (!hasDa && !hasDb) fail('swigluBackward', 'neither da nor db'); },
  reduce(op, desc) {
    opCode('reduce', op, REDUCE);
    count('reduce');
    const r = new Reader('reduce', desc);
    const outer = r.shape(), inner = r.shape();
    const x = r.arg(outer.length), xin = r.arg(inner.length), o = r.arg(outer.length);
    r.end();
    inBounds('reduce', o, outer);
    inBounds('reduce', { ...x, strides: [...x.strides, ...xin.strides] }, [...outer, ...inner]);
  },
  gather(desc, stride, size) { this.indexed('gather', desc, stride, size); },
  scatterAdd(desc, stride, size) { this.indexed('scatterAdd', desc, stride, size); },
  indexed(what, desc, stride, size) {
    count(what);
    const r = new Reader(what, desc);
    const dims = r.shape();
    const base = r.arg(dims.length), idx = r.arg(dims.length), other = r.arg(dims.length);
    r.end();
    inBounds(what, idx, dims);
    inBounds(what, other, dims);
    inBounds(what, { ...base, strides: [...base.strides, stride] }, [...dims, size]);
  },
  random(desc, dist, seed, offset) {
    count('random');
    const r = new Reader('random', desc);
    const dims = r.shape();
    const o = r.arg(dims.length);
    r.end();
    inBounds('random', o, dims);
    if (![0, 1].includes(dist) || !Number.isSafeInteger(seed) || !Number.isSafeInteger(offset)) fail('random', `dist ${dist} seed ${seed} offset ${offset}`);
  },
  gemm(desc) {
    count('gemm');
    const r = new Reader('gemm', desc);
    const [ta, tb, m, n, k] = [r.int(), r.int(), r.int(), r.int(), r.int()];
    const A = r.int(), lda = r.int(), sA = r.int(), B = r.int(), ldb = r.int(), sB = r.int(), C = r.int(), ldc = r.int(), sC = r.int();
    const batch = r.int(), dtype = r.int(), tf32 = r.int();
    r.end();
    if (![0, 1].includes(ta) || ![0, 1].includes(tb) || ![0, 1].includes(tf32) || ![0, 1, 4, 5].includes(dtype)) fail('gemm', `trans ${ta}/${tb} dtype ${dtype}`);
    if (m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff || lda < 1 || ldb < 1 || ldc < m) fail('gemm', `m ${m} n ${n} k ${k} ld ${lda}/${ldb}/${ldc}`);
    // each operand's last element lies inside the allocation that holds its first (pointers may be interior)
    const within = (p, elems, what) => {
      const base = [...live.keys()].filter((q) => q <= p).reduce((a, b) => Math.max(a, b), -1);
      if (base < 0 || p + elems * BYTES[dtype] > base + live.get(base)) fail('gemm', `${what} spans past its allocation`);
    };
    const extent = (rows, cols, ld, trans) => (trans ? (rows - 1) * ld + cols : (cols - 1) * ld + rows);
    within(A, (batch - 1) * sA + extent(m, k, lda, ta), 'A');
    within(B, (batch - 1) * sB + extent(k, n, ldb, tb), 'B');
    within(C, (batch - 1) * sC + extent(m, n, ldc, 0), 'C');
  },
  rotary(desc, inverse) {
    if (![0, 1].includes(inverse)) fail('rotary', `inverse ${inverse}`);
    const { args, nums } = rowsArgs('rotary', desc, 4, 4);
    const [rows, H, T, hd] = nums;
    if (hd % 2 || rows % (H * T)) fail('rotary', `rows ${rows} H ${H} T ${T} hd ${hd}`);
    for (const k of [0, 3]) inBounds('rotary', { ...args[k], strides: [1] }, [rows * hd]);
    for (const k of [1, 2]) inBounds('rotary', { ...args[k], strides: [1] }, [T * hd / 2]);
  },
  softmax(desc, log, scale) { num('softmax', scale); const { args, nums } = rowsArgs('softmax', desc, 2, 2); args.forEach((a) => inBounds('softmax', { ...a, strides: [1] }, [nums[0] * nums[1]])); },
  softmaxBackward(desc, scale) { num('softmaxBackward', scale); const { args, nums } = rowsArgs('softmaxBackward', desc, 2, 3); args.forEach((a) => inBounds('softmaxBackward', { ...a, strides: [1] }, [nums[0] * nums[1]])); },
  layerNorm(desc, eps) { num('layerNorm', eps); const { args, nums } = rowsArgs('layerNorm', desc, 4, 6); inBounds('layerNorm', { ...args[0], strides: [1] }, [nums[0] * nums[1]]); },
  layerNormBackward(desc) {
    const { args, nums } = rowsArgs('layerNormBackward', desc, 6, 8);
    const [rows, cols, , , , hasMean] = nums;
    if (![0, 1].includes(hasMean)) fail('layerNormBackward', `hasMean ${hasMean}`);
    if (!hasMean) count('layerNormBackward.fromOutput');
    for (const k of [0, 4, 5]) inBounds('layerNormBackward', { ...args[k], strides: [1] }, [rows * cols]);
    for (const k of hasMean ? [1, 2] : [2]) inBounds('layerNormBackward', { ...args[k], strides: [1] }, [rows]);
  },
  attention(desc, scale, causal) {
    count('attention');
    const r = new Reader('attention', desc);
    for (let k = 0; k < 6; k++) r.int();
    for (let k = 0; k < 4; k++) r.arg(3);
    r.arg(0);
    r.end();
    num('attention', scale);
  },
  attentionBackward(desc, scale, causal) {
    count('attentionBackward');
    const r = new Reader('attentionBackward', desc);
    for (let k = 0; k < 5; k++) r.int();
    for (let k = 0; k < 4; k++) r.arg(3);
    r.arg(0);
    for (let k = 0; k < 4; k++) r.arg(3);
    const delta = r.arg(0);
    r.end();
    if (delta.dtype !== 0) fail('attentionBackward', 'delta scratch must be float32');
    num('attentionBackward', scale);
  },
  adamwMulti(desc, ...hp) {
    count('adamwMulti');
    hp.forEach((v) => num('adamwMulti', v));
    if (hp.length !== 6) fail('adamwMulti', `${hp.length} hyperparameters`);
    const r = new Reader('adamwMulti', desc);
    const n = r.int(), low = r.int();
    if (n < 1 || n > 48 || ![0, 1].includes(low)) fail('adamwMulti', `count ${n} low ${low}`);
    for (let k = 0; k < n; k++) {
      const ptrs = [r.int(), r.int(), r.int(), r.int(), r.int()], elems = r.int(), bc1 = r.next(), bc2 = r.next();
      if (!(bc1 > 0 && bc1 <= 1 && bc2 > 0 && bc2 <= 1)) fail('adamwMulti', `bias corrections ${bc1}, ${bc2}`);
      ptrs.forEach((p, i) => {
        if (i === 4 && !low) { if (p !== 0) fail('adamwMulti', 'a low pointer without hasLow'); return; }
        const base = [...live.keys()].filter((q) => q <= p).reduce((a, b) => Math.max(a, b), -1);
        const bytes = i === 4 ? 2 : 4;
        if (base < 0 || p + elems * bytes > base + live.get(base)) fail('adamwMulti', `tensor ${k} operand ${i} spans past its allocation`);
      });
    }
    r.end();
  },
  adamw(desc, ...hp) {
    hp.forEach((v) => num('adamw', v));
    if (hp.length !== 8) fail('adamw', `${hp.length} hyperparameters`);
    const { nums, args } = rowsArgs('adamw', desc, 2, 5);
    args.slice(0, 4).forEach((a) => inBounds('adamw', { ...a, strides: [1] }, [nums[0]]));
  },
  buildInfo: () => ({ kernels: 'fake', cudartVersion: 13000, archs: 'none', protoCheck: { cublas: 'skipped: fake', nccl: 'skipped: fake' } }),
  selfTest: () => '',
  ncclLoad() { fail('ncclLoad', 'no NCCL in the fake addon'); },
  /** For tests: the calls made so far, by entry point (and elementwise path). */
  fakeCalls: () => ({ ...calls }),
  fakeLive: () => live.size,
  /** Start the peak over from what is held now (memStats().peak then covers what follows only). */
  fakeResetPeak: () => { peak = inUse; },
};

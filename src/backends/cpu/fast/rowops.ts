/**
 * Fast float32 row kernels for the `cpu` backend: WebAssembly SIMD (kernels/wasm/rowops.ts, built into
 * dist/kernels/rowops-simd.wasm) for softmax, softmax backward, layer norm, silu backward and the
 * exp-based unary ops (exp, sigmoid, silu).
 *
 * The wasm module has its own small (non-shared) memory, buffers above 65536 + 1024. Rows are streamed through it in chunks that
 * stay in L2: copy a chunk in (a memcpy), run the kernel, copy the result out. Every entry point
 * returns false (doing nothing) when wasm SIMD is unavailable or the problem is too small to pay; the
 * caller then runs its TypeScript loop. float32 only: float64 keeps the exact Math functions.
 */

type Bytes = Uint8Array<ArrayBuffer>;

interface RowExports {
  softmax(x: number, o: number, rows: number, cols: number, scale: number, log: number): void;
  softmaxBackward(y: number, g: number, o: number, rows: number, cols: number, scale: number): void;
  layerNorm(x: number, w: number, b: number, o: number, mean: number, rstd: number, rows: number, cols: number, eps: number): void;
  siluBackward(x: number, g: number, o: number, n: number): void;
  unary(op: number, x: number, o: number, n: number): void;
  expf32(x: number): number;
  initConstants(): void;
  binary(op: number, a: number, as: number, b: number, bs: number, o: number, n: number): void;
}

interface State {
  ex: RowExports;
  memory: WebAssembly.Memory;
  f32: Float32Array;
}

const isNode = typeof process !== 'undefined' && !!(process as { versions?: { node?: string } }).versions?.node;
const fsMod: typeof import('node:fs') | null = isNode ? await import('node:fs').catch(() => null) : null;

let state: State | null = null;
let initFailed = false;
let browserLoad: Promise<void> | null = null;

const PAGE = 65536;
/** Floats per operand per chunk (64 KiB: a few operands stay in L2). */
const CHUNK = 16384;
/** Below: the module's data (Math.log tables) and its constants (see kernels/wasm/rowops.ts). */
const BASE = 65536 + 1024;
/** Below this many elements the TypeScript loop is as fast (no call/copy overhead worth paying). */
let minElems = 256;
/** Shortest row worth streaming through wasm for a binary op (three memcpys per chunk). */
let minBinary = 1024;

function kernelUrl(): URL {
  return new URL('../../../../kernels/rowops-simd.wasm', import.meta.url);
}

function instantiate(bytes: Bytes | null, module?: WebAssembly.Module): State | null {
  try {
    if (!module) {
      if (!bytes || !WebAssembly.validate(bytes)) return null;
      module = new WebAssembly.Module(bytes);
    }
    const memory = new WebAssembly.Memory({ initial: 8, maximum: 65536 });
    const inst = new WebAssembly.Instance(module, { env: { memory, abort: () => { throw new Error('rowops: wasm abort'); } } });
    const ex = inst.exports as unknown as RowExports;
    ex.initConstants();
    return { ex, memory, f32: new Float32Array(memory.buffer) };
  } catch {
    return null;
  }
}

function getState(): State | null {
  if (state || initFailed) return state;
  if (isNode && process.env.LAVENDER_CPU_REFERENCE) { initFailed = true; return null; }
  if (typeof WebAssembly === 'undefined') { initFailed = true; return null; }
  if (!fsMod) {
    if (!browserLoad) browserLoad = (async () => {
      try {
        const res = await fetch(kernelUrl());
        const bytes = new Uint8Array(await res.arrayBuffer());
        state = instantiate(bytes);
      } catch { /* stay on the TypeScript loops */ }
      if (!state) initFailed = true;
    })();
    return null;
  }
  let bytes: Bytes | null = null;
  try { bytes = fsMod.readFileSync(kernelUrl()) as Uint8Array as Bytes; } catch { bytes = null; }
  state = instantiate(bytes);
  if (!state) initFailed = true;
  return state;
}

/** Ensures `floats` floats from BASE fit; returns the (possibly new) Float32Array view. */
function heap(s: State, floats: number): Float32Array | null {
  const bytes = BASE + floats * 4 + 64;
  const cur = s.memory.buffer.byteLength;
  if (bytes > cur) {
    try { s.memory.grow(Math.ceil((bytes - cur) / PAGE)); } catch { return null; }
  }
  if (s.f32.buffer !== s.memory.buffer) s.f32 = new Float32Array(s.memory.buffer);
  return s.f32;
}

/** Rows per chunk and the chunk's floats per operand (at least one whole row). */
function chunkRows(rows: number, cols: number): [number, number] {
  const rc = Math.max(1, Math.min(rows, Math.floor(CHUNK / Math.max(1, cols))));
  return [rc, align16(rc * cols)];
}
const align16 = (n: number): number => (n + 15) & ~15;

/** Test knob. @internal */
export function rowopsSetOptions(o: { minElems?: number; minBinary?: number }): void {
  if (o.minElems !== undefined) minElems = o.minElems;
  if (o.minBinary !== undefined) minBinary = o.minBinary;
}

/** Whether the wasm row kernels are in use (for tests and `lavender info`). */
export function rowopsAvailable(): boolean {
  return getState() !== null;
}

/** Softmax / log-softmax of scale * x over rows of `cols` contiguous floats. */
export function fastSoftmax(X: Float32Array, xo: number, O: Float32Array, oo: number, rows: number, cols: number, scale: number, log: boolean): boolean {
  if (rows * cols < minElems || cols === 0) return false;
  const s = getState();
  if (!s) return false;
  const [rc, cf] = chunkRows(rows, cols);
  const f = heap(s, 2 * cf);
  if (!f) return false;
  const xp = BASE, op = BASE + cf * 4;
  for (let r = 0; r < rows; r += rc) {
    const nr = Math.min(rc, rows - r), n = nr * cols, off = r * cols;
    f.set(X.subarray(xo + off, xo + off + n), xp >> 2);
    s.ex.softmax(xp, op, nr, cols, scale, log ? 1 : 0);
    O.set(f.subarray(op >> 2, (op >> 2) + n), oo + off);
  }
  return true;
}

/** out = scale * y * (g - rowsum(g * y)). */
export function fastSoftmaxBackward(Y: Float32Array, yo: number, G: Float32Array, go: number, O: Float32Array, oo: number,
  rows: number, cols: number, scale: number): boolean {
  if (rows * cols < minElems || cols === 0) return false;
  const s = getState();
  if (!s) return false;
  const [rc, cf] = chunkRows(rows, cols);
  const f = heap(s, 3 * cf);
  if (!f) return false;
  const yp = BASE, gp = yp + cf * 4, op = gp + cf * 4;
  for (let r = 0; r < rows; r += rc) {
    const nr = Math.min(rc, rows - r), n = nr * cols, off = r * cols;
    f.set(Y.subarray(yo + off, yo + off + n), yp >> 2);
    f.set(G.subarray(go + off, go + off + n), gp >> 2);
    s.ex.softmaxBackward(yp, gp, op, nr, cols, scale);
    O.set(f.subarray(op >> 2, (op >> 2) + n), oo + off);
  }
  return true;
}

/** Layer norm over rows; writes mean/rstd (contiguous, one per row). */
export function fastLayerNorm(X: Float32Array, xo: number, W: Float32Array | null, wo: number, B: Float32Array | null, bo: number,
  O: Float32Array, oo: number, Mu: Float32Array, muo: number, Rs: Float32Array, rso: number, rows: number, cols: number, eps: number): boolean {
  if (rows * cols < minElems || cols === 0) return false;
  const s = getState();
  if (!s) return false;
  const [rc, cf] = chunkRows(rows, cols);
  const cw = align16(cols), rr = align16(rc);
  const f = heap(s, 2 * cf + 2 * cw + 2 * rr);
  if (!f) return false;
  const xp = BASE, op = xp + cf * 4, wp = op + cf * 4, bp = wp + cw * 4, mp = bp + cw * 4, rp = mp + rr * 4;
  if (W) f.set(W.subarray(wo, wo + cols), wp >> 2);
  if (B) f.set(B.subarray(bo, bo + cols), bp >> 2);
  for (let r = 0; r < rows; r += rc) {
    const nr = Math.min(rc, rows - r), n = nr * cols, off = r * cols;
    f.set(X.subarray(xo + off, xo + off + n), xp >> 2);
    s.ex.layerNorm(xp, W ? wp : 0, B ? bp : 0, op, mp, rp, nr, cols, eps);
    O.set(f.subarray(op >> 2, (op >> 2) + n), oo + off);
    Mu.set(f.subarray(mp >> 2, (mp >> 2) + nr), muo + r);
    Rs.set(f.subarray(rp >> 2, (rp >> 2) + nr), rso + r);
  }
  return true;
}

/** out = g * s * (1 + x * (1 - s)), s = sigmoid(x), over n contiguous floats. */
export function fastSiluBackward(X: Float32Array, xo: number, G: Float32Array, go: number, O: Float32Array, oo: number, n: number): boolean {
  if (n < minElems) return false;
  const s = getState();
  if (!s) return false;
  const f = heap(s, 3 * CHUNK);
  if (!f) return false;
  const xp = BASE, gp = xp + CHUNK * 4, op = gp + CHUNK * 4;
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    f.set(X.subarray(xo + i, xo + i + m), xp >> 2);
    f.set(G.subarray(go + i, go + i + m), gp >> 2);
    s.ex.siluBackward(xp, gp, op, m);
    O.set(f.subarray(op >> 2, (op >> 2) + m), oo + i);
  }
  return true;
}

const UNARY_CODE: Record<string, number> = { exp: 0, sigmoid: 1, silu: 2 };

/** Whether `fastUnary` handles op. */
export function fastUnaryOp(op: string): boolean {
  return op in UNARY_CODE;
}

/** exp / sigmoid / silu over n contiguous floats. */
export function fastUnary(op: string, X: Float32Array, xo: number, O: Float32Array, oo: number, n: number): boolean {
  const code = UNARY_CODE[op];
  if (code === undefined || n < minElems) return false;
  const s = getState();
  if (!s) return false;
  const f = heap(s, 2 * CHUNK);
  if (!f) return false;
  const xp = BASE, op2 = xp + CHUNK * 4;
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    f.set(X.subarray(xo + i, xo + i + m), xp >> 2);
    s.ex.unary(code, xp, op2, m);
    O.set(f.subarray(op2 >> 2, (op2 >> 2) + m), oo + i);
  }
  return true;
}

/** The kernel's scalar exp (for accuracy tests). @internal */
export function _expf32(x: number): number | null {
  const s = getState();
  return s ? s.ex.expf32(x) : null;
}

/**
 * o[i] = a[i*as] op b[i*bs] for op 0 add, 1 sub, 2 mul, 3 div over n floats, as/bs in {0, 1} (not both
 * 0). IEEE float32 arithmetic: the same bits as the reference's double op rounded to float32.
 */
export function fastBinary(op: number, A: Float32Array, a: number, as: number, B: Float32Array, b: number, bs: number,
  O: Float32Array, o: number, n: number): boolean {
  if (n < minBinary || (as | bs) !== 1 || as < 0 || bs < 0) return false;
  const s = getState();
  if (!s) return false;
  const f = heap(s, 3 * CHUNK);
  if (!f) return false;
  const ap = BASE, bp = ap + CHUNK * 4, op2 = bp + CHUNK * 4;
  if (as === 0) f[ap >> 2] = A[a]!;
  if (bs === 0) f[bp >> 2] = B[b]!;
  for (let i = 0; i < n; i += CHUNK) {
    const m = Math.min(CHUNK, n - i);
    if (as) f.set(A.subarray(a + i, a + i + m), ap >> 2);
    if (bs) f.set(B.subarray(b + i, b + i + m), bp >> 2);
    s.ex.binary(op, ap, as, bp, bs, op2, m);
    O.set(f.subarray(op2 >> 2, (op2 >> 2) + m), o + i);
  }
  return true;
}

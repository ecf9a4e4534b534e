// The webgpu backend: every primitive of the seam as a WGSL kernel (kernels/wgsl), run through Dawn in
// Node (the `webgpu` package, in a worker thread behind a synchronous bridge) or through navigator.gpu
// in a browser. Storage: float32 as f32, float16 as f16 (adapters with shader-f16), int32 and int64 as
// i32 (int64 values are range-checked on write), bool as u32; float64 and bfloat16 are refused.
// See docs/backends.md, "webgpu".
import type { AdamWHyper, AdamWParam, Backend, BackendBuffer, BinaryOp, FusedKernels, ReduceOp, UnaryOp, View } from '../backend.js';
import type { DType, TypedArray } from '../../tensor/dtype.js';
import type { Distribution } from '../../tensor/random.js';
import {
  BINARY, INT_EXACT, UNARY, adamwWgsl, attentionWgsl, collapse, elementwiseMeta, elementwiseWgsl, f32Word, gatherWgsl, randomWgsl, reduceWgsl,
  rowsWgsl, scatterAddWgsl, u32, wbytes, wtype, type ElementwiseSpec, type WType,
} from './codegen.js';
import { matmulGroups, matmulWgsl, planKey, planMatmul, type MatmulPlan } from './matmul.js';
import { Engine, openDevice } from './engine.js';
import { CTL_HEADER_BYTES, CTL_LEN, CTL_MESSAGE_BYTES, CTL_STATE, type Command, type DeviceInfo, type Request } from './protocol.js';

const NAME = 'webgpu';
const STATUS = -1; // binding id of the engine's status word buffer

export class WebGpuBuffer implements BackendBuffer {
  readonly backend = NAME;
  freed = false;
  constructor(readonly dtype: DType, readonly size: number, readonly id: number) {}
  /** Bytes of the elements, rounded up to the 4 bytes copies and writes move. */
  get dataBytes(): number { return Math.ceil((this.size * (this.dtype === 'float16' ? 2 : 4)) / 4) * 4; }
  /** Bytes allocated: rounded up to 16, so the buffer can also be bound as an array of vec4. */
  get bytes(): number { return Math.max(16, Math.ceil(this.dataBytes / 16) * 16); }
}

/** Carries commands to an engine and answers requests: synchronously (Node worker) or not (browser). */
export interface Transport {
  readonly info: DeviceInfo;
  send(cmd: Command): void;
  /** Blocks until the request has run; throws its error. Not available in a browser's main thread. */
  call(req: Request): { text: string; data?: Uint8Array };
  callAsync(req: Request): Promise<{ text: string; data?: Uint8Array }>;
  close(): void;
}

const timeoutMs = (): number => Number((globalThis as any).process?.env?.LAVENDER_WEBGPU_TIMEOUT_MS) || 120_000;

/** Node: the engine lives in a worker thread; the main thread blocks on Atomics.wait for answers. */
class WorkerTransport implements Transport {
  readonly info: DeviceInfo;
  private worker: any;
  private ctl: Int32Array;
  private msg: Uint8Array;
  private pending: Command[] = [];
  private transfer: ArrayBuffer[] = [];
  private scheduled = false;

  constructor(flags: string[]) {
    const getBuiltin = (globalThis as any).process?.getBuiltinModule;
    if (typeof getBuiltin !== 'function') throw new Error('webgpu: needs Node >= 20.16 (process.getBuiltinModule) or a browser');
    const { Worker } = getBuiltin('node:worker_threads');
    const sab = new SharedArrayBuffer(CTL_HEADER_BYTES + CTL_MESSAGE_BYTES);
    this.ctl = new Int32Array(sab, 0, 4);
    this.msg = new Uint8Array(sab, CTL_HEADER_BYTES, CTL_MESSAGE_BYTES);
    const f16 = (globalThis as any).process?.env?.LAVENDER_WEBGPU_F16 !== '0';
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { ctl: sab, flags, f16 } });
    this.worker.unref();
    this.worker.on('error', () => {}); // failures are reported through the control block
    const text = this.wait('initialising the device');
    this.info = JSON.parse(text) as DeviceInfo;
    // Let the worker finish what it was sent before the process tears it down: terminating it inside a
    // Dawn call aborts the process ("FATAL ERROR: napi_throw").
    (globalThis as any).process.on('exit', () => this.drain());
  }

  private closed = false;

  /** Wait (bounded) until the worker is idle; for process exit. */
  private drain(): void {
    if (this.closed) return;
    try {
      Atomics.store(this.ctl, CTL_STATE, 0);
      this.flush({ r: 'sync' });
      Atomics.wait(this.ctl, CTL_STATE, 0, 30_000);
    } catch { /* exiting anyway */ }
  }

  private wait(what: string): string {
    const t = timeoutMs();
    const r = Atomics.wait(this.ctl, CTL_STATE, 0, t);
    if (r === 'timed-out') throw new Error(`webgpu: no answer from the device thread within ${t} ms while ${what} (hung driver or lost device; LAVENDER_WEBGPU_TIMEOUT_MS raises the limit)`);
    const state = Atomics.load(this.ctl, CTL_STATE);
    const text = new TextDecoder().decode(this.msg.slice(0, Atomics.load(this.ctl, CTL_LEN)));
    Atomics.store(this.ctl, CTL_STATE, 0);
    if (state !== 1) throw new Error(`webgpu: ${text}`);
    return text;
  }

  send(cmd: Command): void {
    this.pending.push(cmd);
    if (cmd.t === 'write') this.transfer.push(cmd.data);
    if (this.pending.length >= 256) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.flush(); });
    }
  }

  private flush(req?: Request): void {
    if (!this.pending.length && !req) return;
    this.worker.postMessage({ cmds: this.pending, req }, this.transfer);
    this.pending = [];
    this.transfer = [];
  }

  call(req: Request): { text: string; data?: Uint8Array } {
    let sab: SharedArrayBuffer | null = null;
    if (req.r === 'read') req = { ...req, sab: (sab = new SharedArrayBuffer(req.bytes)) };
    Atomics.store(this.ctl, CTL_STATE, 0);
    this.flush(req);
    const text = this.wait(req.r === 'read' ? `reading a buffer of ${req.bytes} bytes` : `running '${req.r}'`);
    return { text, data: sab ? new Uint8Array(sab) : undefined };
  }

  async callAsync(req: Request): Promise<{ text: string; data?: Uint8Array }> {
    return this.call(req);
  }

  close(): void {
    this.drain();
    this.closed = true;
    void this.worker.terminate();
  }
}

/** Browser (or any thread that owns the device): the engine runs here; only async requests. */
class DirectTransport implements Transport {
  private pending: Command[] = [];
  private scheduled = false;
  constructor(private readonly engine: Engine) {}
  get info(): DeviceInfo { return this.engine.info; }
  send(cmd: Command): void {
    this.pending.push(cmd);
    if (this.pending.length >= 256) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setTimeout(() => { this.scheduled = false; this.flush(); }, 0);
    }
  }
  private flush(): void {
    if (!this.pending.length) return;
    const cmds = this.pending;
    this.pending = [];
    this.engine.exec(cmds);
  }
  call(req: Request): never {
    throw new Error(`webgpu: a synchronous ${req.r} is not possible in this thread (browser WebGPU is asynchronous): use await backend.readAsync(buf), or read tensors with await webgpuToArray(t)`);
  }
  async callAsync(req: Request): Promise<{ text: string; data?: Uint8Array }> {
    this.flush();
    try {
      const r = await this.engine.request(req);
      return { text: r.text ?? '', data: r.data ? new Uint8Array(r.data) : undefined };
    } catch (e) {
      throw new Error(`webgpu: ${(e as Error).message}`);
    }
  }
  close(): void {}
}

function groups1d(n: number, perGroup: number, maxDim: number): [number, number, number] {
  const g = Math.ceil(n / perGroup);
  const x = Math.min(g, maxDim);
  const y = Math.ceil(g / x);
  if (y > maxDim) throw new Error(`webgpu: ${n} elements need more than ${maxDim}^2 workgroups`);
  return [x, y, 1];
}

export class WebGpuBackend implements Backend {
  readonly name = NAME;
  readonly available = true;
  readonly fused: Partial<FusedKernels>;
  private nextId = 1;
  private live = 0;
  private kernels = new Map<string, { kid: number; layout: string }>();
  private lostReason: string | null = null;
  /** Wait for the GPU after every op (like CUDA_LAUNCH_BLOCKING): for timing and debugging. */
  blocking = (globalThis as any).process?.env?.LAVENDER_WEBGPU_SYNC === '1';
  /**
   * Kernel profile: 'software' (no workgroup barriers where avoidable: direct matmul, one invocation per
   * row or reduced output) for adapters that run invocations on CPU threads, 'gpu' otherwise. Chosen from
   * the adapter; LAVENDER_WEBGPU_PROFILE or setProfile() override it (tests run both on lavapipe).
   */
  private software: boolean;
  /** Matmul kernel override: 'auto', 'direct', a tile name or BMxBNxBK/TMxTN (see matmul.ts). */
  private matmulConfig: string = (globalThis as any).process?.env?.LAVENDER_WEBGPU_MATMUL || 'auto';

  constructor(private readonly transport: Transport) {
    const env = (globalThis as any).process?.env?.LAVENDER_WEBGPU_PROFILE;
    this.software = env === 'software' ? true : env === 'gpu' ? false : transport.info.software;
    const self = this;
    this.fused = {
      softmax(x, out, log, scale) { self.rows('softmax', x, null, out, [x.offset, out.offset, f32Word(scale), log ? 1 : 0]); },
      softmaxBackward(y, g, out, scale) { self.rows('softmax_backward', y, g, out, [y.offset, g.offset, out.offset, f32Word(scale)]); },
      siluBackward(x, g, out) {
        self.elementwise('siluBackward', { ins: ['f32', 'f32'], out: 'f32', expr: 'b * sigmoid_(a) * (1.0 + a * (1.0 - sigmoid_(a)))', mode: 'f32' }, [x, g], out);
      },
      layerNorm(x, w, b, eps, out, mean, rstd) { self.layerNorm(x, w, b, eps, out, mean, rstd); },
      attention(q, k, v, out, scale, lse, causal) { return self.attention(q, k, v, out, scale, lse, causal); },
      adamw(params: readonly AdamWParam[], hp: AdamWHyper) {
        // the kernel implements decoupled decay only; Adam's L2 penalty is decomposed by ops/
        if (!hp.decoupled && hp.weightDecay !== 0) return false;
        for (const e of params) self.adamw(e.p, e.g, e.m, e.v, { ...hp, step: e.step }, e.pLow ?? null);
        return true;
      },
    };
  }

  /**
   * Force a matmul kernel (benchmarks, tests): 'auto' (the planner), 'direct', 'direct4', a tile name
   * (large, wide, medium, small) or BMxBNxBK/TMxTN. Checked against the device limits at the next matmul.
   */
  setMatmulConfig(config: string): void { this.matmulConfig = config; }

  /** The kernel profile in use: 'software' on adapters that run invocations on CPU threads, else 'gpu'. */
  get profile(): 'gpu' | 'software' { return this.software ? 'software' : 'gpu'; }

  /**
   * Override the kernel profile: 'software' (no workgroup barriers where one can be avoided), 'gpu' (tiled
   * matmuls, cooperative reductions), or 'auto' (the adapter's). Tests run the 'gpu' kernels on lavapipe.
   */
  setProfile(p: 'gpu' | 'software' | 'auto'): void {
    if (p !== 'gpu' && p !== 'software' && p !== 'auto') throw new Error(`webgpu setProfile: '${String(p)}' is not gpu, software or auto`);
    this.software = p === 'auto' ? this.transport.info.software : p === 'software';
  }

  /** The plan the next matmul of this shape would use (for tests and benchmarks). */
  matmulPlan(a: View, b: View, outDtype: DType = a.buf.dtype, outOffset = 0): MatmulPlan {
    const [batch, M, K] = a.shape as [number, number, number];
    return planMatmul({ batch, M, K, N: b.shape[2]!, a, b, outOffset }, { ...this.transport.info, software: this.software },
      { a: wtype(a.buf.dtype), b: wtype(b.buf.dtype), out: wtype(outDtype) }, this.matmulConfig);
  }

  /** Adapter description and the limits the backend checks against. */
  get device(): DeviceInfo { return this.transport.info; }

  // ---- memory ------------------------------------------------------------------------------------------
  private buf(b: BackendBuffer, op: string): WebGpuBuffer {
    if (b.backend !== NAME) throw new Error(`webgpu ${op}: buffer belongs to backend '${b.backend}'`);
    const w = b as WebGpuBuffer;
    if (w.freed) throw new Error(`webgpu ${op}: use of a freed ${w.dtype} buffer of ${w.size} elements`);
    this.checkLost(op);
    return w;
  }

  private checkLost(op: string): void {
    if (this.lostReason) throw new Error(`webgpu ${op}: the device was lost (${this.lostReason}); create a new webgpu backend`);
  }

  alloc(dtype: DType, size: number): BackendBuffer {
    this.checkLost('alloc');
    if (wtype(dtype) === 'f16' && !this.transport.info.f16) {
      throw new Error(`webgpu alloc: float16 needs an adapter with the 'shader-f16' feature, which ${this.transport.info.adapter} does not offer (or LAVENDER_WEBGPU_F16=0 turned it off); use float32`);
    }
    const b = new WebGpuBuffer(dtype, size, this.nextId++);
    const bytes = b.bytes;
    const lim = this.transport.info.maxStorageBufferBindingSize;
    if (bytes > lim || bytes > this.transport.info.maxBufferSize) {
      this.nextId--;
      throw new Error(`webgpu alloc: a ${dtype} buffer of ${size} elements (${bytes} bytes) exceeds this device's maxStorageBufferBindingSize of ${lim} bytes (maxBufferSize ${this.transport.info.maxBufferSize})`);
    }
    this.transport.send({ t: 'alloc', id: b.id, bytes });
    this.live++;
    return b;
  }

  free(b: BackendBuffer): void {
    const w = b as WebGpuBuffer;
    if (b.backend !== NAME) throw new Error(`webgpu free: buffer belongs to backend '${b.backend}'`);
    if (w.freed) throw new Error(`webgpu: double free of a ${w.dtype} buffer of ${w.size} elements`);
    w.freed = true;
    this.live--;
    if (!this.lostReason) this.transport.send({ t: 'free', id: w.id });
  }

  write(b: BackendBuffer, data: ArrayLike<number>, offset = 0): void {
    const w = this.buf(b, 'write');
    if (offset + data.length > w.size) throw new Error(`webgpu write: ${data.length} elements at offset ${offset} overflow a buffer of ${w.size}`);
    if (!data.length) return;
    if (w.dtype === 'float16') return this.writeHalf(w, data, offset);
    let arr: Float32Array | Int32Array | Uint32Array;
    switch (w.dtype) {
      case 'float32': arr = Float32Array.from(data); break;
      case 'bool': arr = Uint32Array.from(data as ArrayLike<number>, (v) => (v ? 1 : 0)); break;
      default: {
        arr = new Int32Array(data.length);
        for (let i = 0; i < data.length; i++) {
          const v = data[i]!;
          if (w.dtype === 'int64' && !(v >= -2147483648 && v <= 2147483647)) {
            throw new Error(`webgpu write: int64 value ${v} does not fit: the webgpu backend stores int64 as int32 (range ±2^31)`);
          }
          arr[i] = v;
        }
      }
    }
    this.transport.send({ t: 'write', id: w.id, byteOffset: offset * 4, data: arr.buffer as ArrayBuffer });
    this.sync();
  }

  /**
   * float16 data arrive as raw half bits (as the cpu backend stores them). writeBuffer moves whole 4-byte
   * words, so an odd offset or length goes through a temporary buffer and a copy kernel instead.
   */
  private writeHalf(w: WebGpuBuffer, data: ArrayLike<number>, offset: number): void {
    const words = new Uint16Array(data.length + (data.length & 1));
    for (let i = 0; i < data.length; i++) words[i] = data[i]!;
    if (offset % 2 === 0 && (data.length % 2 === 0 || offset + data.length === w.size)) {
      this.transport.send({ t: 'write', id: w.id, byteOffset: offset * 2, data: words.buffer as ArrayBuffer });
      return this.sync();
    }
    const tmp = this.alloc('float16', data.length) as WebGpuBuffer;
    this.transport.send({ t: 'write', id: tmp.id, byteOffset: 0, data: words.buffer as ArrayBuffer });
    const view = (buf: WebGpuBuffer, off: number): View => ({ buf, shape: [data.length], strides: [1], offset: off });
    this.elementwise('write', { ins: ['f16'], out: 'f16', expr: 'a', mode: 'raw' }, [view(tmp, 0)], view(w, offset));
    this.free(tmp);
  }

  private decode(w: WebGpuBuffer, bytes: Uint8Array | undefined): TypedArray {
    // copy out of the SharedArrayBuffer into an ordinary one
    const copy = new Uint8Array(w.dataBytes);
    if (bytes && w.size) copy.set(bytes.subarray(0, w.dataBytes));
    const raw = copy.buffer;
    switch (w.dtype) {
      case 'float32': return new Float32Array(raw);
      case 'float16': return new Uint16Array(raw, 0, w.size);
      case 'int32': return new Int32Array(raw);
      case 'int64': return Float64Array.from(new Int32Array(raw));
      default: return Uint8Array.from(new Uint32Array(raw));
    }
  }

  read(b: BackendBuffer): TypedArray {
    const w = this.buf(b, 'read');
    return this.decode(w, this.request({ r: 'read', id: w.id, bytes: w.dataBytes, sab: null }, 'read').data);
  }

  /** The asynchronous read, for browsers (in Node it is the synchronous one). */
  async readAsync(b: BackendBuffer): Promise<TypedArray> {
    const w = this.buf(b, 'readAsync');
    try {
      const r = await this.transport.callAsync({ r: 'read', id: w.id, bytes: w.dataBytes, sab: null });
      return this.decode(w, r.data);
    } catch (e) {
      this.noteLost(e as Error);
      throw e;
    }
  }

  private request(req: Request, op: string): { text: string; data?: Uint8Array } {
    this.checkLost(op);
    try {
      return this.transport.call(req);
    } catch (e) {
      this.noteLost(e as Error);
      throw e;
    }
  }

  private noteLost(e: Error): void {
    const m = /device lost \((.*)\)/.exec(e.message) ?? /no answer from the device thread/.exec(e.message);
    if (m) this.lostReason = m[1] ?? e.message;
  }

  /** Wait until every command so far has run on the GPU; throws the first device error since the last wait. */
  sync(): void {
    if (this.blocking) this.request({ r: 'sync' }, 'sync');
  }

  /** Wait for the GPU unconditionally (for benchmarks). */
  finish(): void {
    this.request({ r: 'sync' }, 'sync');
  }

  /** Backend.synchronize: the same unconditional wait. */
  synchronize(): void {
    this.finish();
  }

  async finishAsync(): Promise<void> {
    await this.transport.callAsync({ r: 'sync' });
  }

  /** Test hook: destroy the device, as a driver reset would. */
  loseDevice(): void {
    try { this.transport.call({ r: 'lose' }); } catch { /* reported below */ }
    this.lostReason = 'destroyed';
  }

  /** Release pooled (free) GPU memory to the driver. */
  trim(): void { this.request({ r: 'trim' }, 'trim'); }

  poolStats(): { pooledBytes: number; buffers: number } { return JSON.parse(this.request({ r: 'stats' }, 'stats').text); }

  liveBuffers(): number { return this.live; }

  close(): void { this.transport.close(); }

  // ---- dispatch ----------------------------------------------------------------------------------------
  private kernel(key: string, layout: string, code: () => string): number {
    let k = this.kernels.get(key);
    if (!k) {
      k = { kid: this.kernels.size + 1, layout };
      this.kernels.set(key, k);
      this.transport.send({ t: 'kernel', kid: k.kid, code: code(), layout, label: `lavender ${key}` });
    }
    return k.kid;
  }

  /** Run a kernel; `ids` are the bindings after the metadata, `writes` the ones it writes. */
  private run(op: string, key: string, layout: string, code: () => string, bufs: (WebGpuBuffer | typeof STATUS)[], meta: Uint32Array, groups: [number, number, number]): void {
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
    // a buffer written by a dispatch may not also be bound for reading: read a snapshot instead
    const written = new Set(bufs.filter((b, i) => layout[i] === 'w' && b !== STATUS).map((b) => (b as WebGpuBuffer).id));
    const temps: WebGpuBuffer[] = [];
    const ids = bufs.map((b, i) => {
      if (b === STATUS) return STATUS;
      if (layout[i] === 'r' && written.has(b.id)) {
        const t = this.alloc(b.dtype, b.size) as WebGpuBuffer;
        this.transport.send({ t: 'copyBuffer', src: b.id, dst: t.id, bytes: b.bytes });
        temps.push(t);
        return t.id;
      }
      return b.id;
    });
    const kid = this.kernel(key, layout, code);
    this.transport.send({ t: 'run', kid, ids, meta: meta.buffer as ArrayBuffer, groups });
    for (const t of temps) this.free(t);
    void op;
    this.sync();
  }

  private elementwise(op: string, spec: ElementwiseSpec, ins: View[], out: View, extra: number[] = []): void {
    const bufs = ins.map((v) => this.buf(v.buf, op));
    const o = this.buf(out.buf, op);
    const n = out.shape.reduce((a, b) => a * b, 1);
    if (n === 0) return;
    const maxDim = this.transport.info.maxComputeWorkgroupsPerDimension;
    const { meta, kind, groups } = elementwiseMeta(out.shape, [...ins, out], extra, maxDim);
    const key = `ew${kind[0]}:${spec.mode}:${spec.accumulate ? 'acc' : ''}:${spec.ins.join(',')}>${spec.out}:${spec.expr}`;
    this.run(op, key, 'w' + 'r'.repeat(ins.length), () => elementwiseWgsl(spec, kind), [o, ...bufs], meta, groups ?? groups1d(n, 256, maxDim));
  }

  fill(dst: View, value: number): void {
    const t = wtype(this.buf(dst.buf, 'fill').dtype);
    const word = t === 'f32' || t === 'f16' ? f32Word(value) : t === 'i32' ? Math.trunc(value) : value !== 0 ? 1 : 0;
    if (t === 'f16') return this.elementwise('fill', { ins: [], out: t, expr: 'mf(scalars)', mode: 'f32' }, [], dst, [word]);
    const expr = t === 'f32' ? 'mf(scalars)' : t === 'i32' ? 'mi(scalars)' : 'md[scalars]';
    this.elementwise('fill', { ins: [], out: t, expr, mode: 'raw' }, [], dst, [word]);
  }

  copy(src: View, dst: View, accumulate: boolean): void {
    const ts = wtype(this.buf(src.buf, 'copy').dtype), td = wtype(this.buf(dst.buf, 'copy').dtype);
    if (!accumulate && ts === td) return this.elementwise('copy', { ins: [ts], out: td, expr: 'a', mode: 'raw' }, [src], dst);
    this.elementwise('copy', { ins: [ts], out: td, expr: 'a', mode: 'f32', accumulate }, [src], dst);
  }

  unary(op: UnaryOp, x: View, out: View): void {
    const tx = wtype(this.buf(x.buf, op).dtype), to = wtype(this.buf(out.buf, op).dtype);
    if (tx === 'i32' && to === 'i32' && INT_EXACT.has(op)) return this.elementwise(op, { ins: [tx], out: to, expr: UNARY[op], mode: 'raw' }, [x], out);
    this.elementwise(op, { ins: [tx], out: to, expr: UNARY[op], mode: 'f32' }, [x], out);
  }

  binary(op: BinaryOp, a: View, b: View, out: View): void {
    const ta = wtype(this.buf(a.buf, op).dtype), tb = wtype(this.buf(b.buf, op).dtype), to = wtype(this.buf(out.buf, op).dtype);
    if (ta === 'i32' && tb === 'i32' && to === 'i32' && INT_EXACT.has(op)) return this.elementwise(op, { ins: [ta, tb], out: to, expr: BINARY[op], mode: 'raw' }, [a, b], out);
    this.elementwise(op, { ins: [ta, tb], out: to, expr: BINARY[op], mode: 'f32' }, [a, b], out);
  }

  where(cond: View, a: View, b: View, out: View): void {
    const tc = wtype(this.buf(cond.buf, 'where').dtype), ta = wtype(this.buf(a.buf, 'where').dtype), tb = wtype(this.buf(b.buf, 'where').dtype);
    const to = wtype(this.buf(out.buf, 'where').dtype);
    const c = tc === 'f32' ? 'a != 0.0' : tc === 'i32' ? 'a != 0' : 'a != 0u';
    if (ta === to && tb === to) return this.elementwise('where', { ins: [tc, ta, tb], out: to, expr: `select(c, b, ${c})`, mode: 'raw' }, [cond, a, b], out);
    this.elementwise('where', { ins: [tc, ta, tb], out: to, expr: 'select(c, b, a != 0.0)', mode: 'f32' }, [cond, a, b], out);
  }

  reduce(op: ReduceOp, x: View, axes: readonly number[], out: View): void {
    const X = this.buf(x.buf, op), O = this.buf(out.buf, op);
    const tx = wtype(X.dtype), to = wtype(O.dtype);
    const rank = x.shape.length;
    const kept = [...Array(rank).keys()].filter((d) => !axes.includes(d));
    const nOut = kept.reduce((a, d) => a * x.shape[d]!, 1);
    if (nOut === 0) return;
    const words = [nOut, kept.length, axes.length, x.offset, out.offset,
      ...kept.map((d) => x.shape[d]!), ...kept.map((d) => x.strides[d]!), ...kept.map((d) => out.strides[d]!),
      ...axes.map((d) => x.shape[d]!), ...axes.map((d) => x.strides[d]!)];
    // one invocation per output where there are many outputs over short extents, or barriers are dear
    const inner = axes.reduce((a, d) => a * x.shape[d]!, 1);
    const serial = this.software || inner <= 16 || (nOut >= 1024 && inner <= 256);
    this.run(op, `reduce${serial ? 's' : ''}:${op}:${tx}>${to}`, 'wr', () => reduceWgsl(op, tx, to, serial), [O, X], u32(words),
      groups1d(nOut, serial ? 64 : 1, this.transport.info.maxComputeWorkgroupsPerDimension));
  }

  matmul(a: View, b: View, out: View): void {
    const A = this.buf(a.buf, 'matmul'), B = this.buf(b.buf, 'matmul'), O = this.buf(out.buf, 'matmul');
    for (const t of [A, B, O]) if (t.dtype !== 'float32' && t.dtype !== 'float16') throw new Error(`webgpu matmul: dtype ${t.dtype} is not supported (float32, float16)`);
    const [batch, M, K] = a.shape as [number, number, number];
    const N = b.shape[2]!;
    if (batch * M * N === 0) return;
    if (K === 0) return this.fill(out, 0);
    const types = { a: wtype(A.dtype), b: wtype(B.dtype), out: wtype(O.dtype) };
    const info = this.transport.info;
    const plan = this.matmulPlan(a, b, O.dtype, out.offset); // out is contiguous [batch, M, N] (its view may be 2-D)
    const [gx, gy] = matmulGroups(plan, M, N, 1);
    if (gx > info.maxComputeWorkgroupsPerDimension || gy > info.maxComputeWorkgroupsPerDimension) {
      throw new Error(`webgpu matmul: [${M}, ${K}] x [${K}, ${N}] needs ${gx} x ${gy} workgroups, more than this device's ${info.maxComputeWorkgroupsPerDimension} per dimension`);
    }
    const key = planKey(plan, types);
    const maxDim = info.maxComputeWorkgroupsPerDimension;
    for (let p0 = 0; p0 < batch; p0 += maxDim) {
      const nb = Math.min(maxDim, batch - p0);
      const words = [M, K, N, a.offset + p0 * a.strides[0]!, a.strides[0]!, a.strides[1]!, a.strides[2]!,
        b.offset + p0 * b.strides[0]!, b.strides[0]!, b.strides[1]!, b.strides[2]!, out.offset + p0 * M * N, M * N, N, 1];
      this.run('matmul', key, 'wrr', () => matmulWgsl(plan, types), [O, A, B], u32(words), matmulGroups(plan, M, N, nb));
    }
  }

  gather(x: View, axis: number, index: View, out: View): void {
    const X = this.buf(x.buf, 'gather'), I = this.buf(index.buf, 'gather'), O = this.buf(out.buf, 'gather');
    const tx = wtype(X.dtype);
    if (wtype(I.dtype) !== 'i32') throw new Error(`webgpu gather: index dtype ${I.dtype} must be int32 or int64`);
    const n = index.shape.reduce((p, q) => p * q, 1);
    if (n === 0) return;
    const shape = index.shape;
    const words = [n, shape.length, ...shape, x.offset, ...x.strides.map((s, d) => (d === axis ? 0 : s)), index.offset, ...index.strides,
      out.offset, ...out.strides, x.shape[axis]!, x.strides[axis]!];
    this.run('gather', `gather:${tx}`, 'wrrw', () => gatherWgsl(tx), [O, X, I, STATUS], u32(words),
      groups1d(n, 256, this.transport.info.maxComputeWorkgroupsPerDimension));
  }

  scatterAdd(dst: View, axis: number, index: View, src: View): void {
    const D = this.buf(dst.buf, 'scatterAdd'), I = this.buf(index.buf, 'scatterAdd'), S = this.buf(src.buf, 'scatterAdd');
    if (D.dtype !== 'float32' || S.dtype !== 'float32') throw new Error(`webgpu scatterAdd: dtype ${D.dtype} is not supported (float32 only)`);
    if (wtype(I.dtype) !== 'i32') throw new Error(`webgpu scatterAdd: index dtype ${I.dtype} must be int32 or int64`);
    const n = dst.shape.reduce((p, q) => p * q, 1);
    if (n === 0 || index.shape.reduce((p, q) => p * q, 1) === 0) return;
    const words = [n, dst.shape.length, ...dst.shape, dst.offset, ...dst.strides, ...index.shape, index.offset, ...index.strides,
      src.offset, ...src.strides, axis];
    this.run('scatterAdd', 'scatterAdd', 'wrrw', scatterAddWgsl, [D, I, S, STATUS], u32(words),
      groups1d(n, 256, this.transport.info.maxComputeWorkgroupsPerDimension));
  }

  random(out: View, dist: Distribution, seed: number, offset: number): void {
    const O = this.buf(out.buf, 'random');
    const to = wtype(O.dtype);
    const n = out.shape.reduce((p, q) => p * q, 1);
    if (n === 0) return;
    const c = collapse(out.shape, [out.strides]); // a dense output is rank 1: no index arithmetic per draw
    const words = [n, c.shape.length, ...c.shape, out.offset, ...c.strides[0]!,
      seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0, offset >>> 0, Math.floor(offset / 2 ** 32) >>> 0, dist === 'normal' ? 1 : 0];
    this.run('random', `random:${to}`, 'w', () => randomWgsl(to), [O], u32(words), groups1d(n, 256, this.transport.info.maxComputeWorkgroupsPerDimension));
  }

  // ---- fused row kernels -----------------------------------------------------------------------------
  private floatType(b: WebGpuBuffer, op: string): WType {
    const t = wtype(b.dtype);
    if (t !== 'f32' && t !== 'f16') throw new Error(`webgpu ${op}: expected float32 or float16, got ${b.dtype}`);
    return t;
  }

  /** Row kernels: a workgroup per row on GPUs, an invocation per row on software adapters. */
  private rowGroups(rows: number): [number, number, number] {
    const software = this.software;
    return groups1d(rows, software ? 64 : 1, this.transport.info.maxComputeWorkgroupsPerDimension);
  }

  private rows(entry: 'softmax' | 'softmax_backward', x: View, g: View | null, out: View, words: number[]): void {
    const X = this.buf(x.buf, entry), O = this.buf(out.buf, entry), G = g ? this.buf(g.buf, entry) : null;
    const cols = x.shape[x.shape.length - 1] ?? 1;
    const n = x.shape.reduce((p, q) => p * q, 1);
    const rows = cols === 0 ? 0 : n / cols;
    if (rows === 0) return;
    const tx = this.floatType(X, entry), to = this.floatType(O, entry), tg = G ? this.floatType(G, entry) : tx;
    const types = { out: to, x: tx, g: tg, w: tx, b: tx, stat: tx };
    const coop = !this.software;
    // bindings an entry point does not use may be left out of its layout
    const [layout, bufs]: [string, WebGpuBuffer[]] = G ? ['wrr', [O, X, G]] : ['wr', [O, X]];
    this.run(entry, `rows${coop ? '' : 's'}:${entry}:${to},${tx},${tg}`, layout, () => rowsWgsl(entry, types, coop), bufs, u32([rows, cols, ...words]),
      this.rowGroups(rows));
  }

  private layerNorm(x: View, w: View | null, b: View | null, eps: number, out: View, mean: View, rstd: View): void {
    const X = this.buf(x.buf, 'layerNorm'), O = this.buf(out.buf, 'layerNorm');
    const W = w ? this.buf(w.buf, 'layerNorm') : X, B = b ? this.buf(b.buf, 'layerNorm') : X;
    const Mu = this.buf(mean.buf, 'layerNorm'), Rs = this.buf(rstd.buf, 'layerNorm');
    const cols = x.shape[x.shape.length - 1] ?? 1;
    const n = x.shape.reduce((p, q) => p * q, 1);
    const rows = cols === 0 ? 0 : n / cols;
    if (rows === 0) return;
    const tx = this.floatType(X, 'layerNorm');
    const types = { out: this.floatType(O, 'layerNorm'), x: tx, g: tx, w: this.floatType(W, 'layerNorm'), b: this.floatType(B, 'layerNorm'), stat: this.floatType(Mu, 'layerNorm') };
    if (wtype(Rs.dtype) !== types.stat) throw new Error(`webgpu layerNorm: mean (${Mu.dtype}) and rstd (${Rs.dtype}) must share a dtype`);
    const coop = !this.software;
    const words = [rows, cols, x.offset, out.offset, w ? w.offset : 0, b ? b.offset : 0, w ? 1 : 0, b ? 1 : 0, f32Word(eps), mean.offset, rstd.offset];
    this.run('layerNorm', `rows${coop ? '' : 's'}:layer_norm:${Object.values(types).join(',')}`, 'wrrrrww', () => rowsWgsl('layer_norm', types, coop),
      [O, X, X, W, B, Mu, Rs], u32(words), this.rowGroups(rows));
  }

  /**
   * Fused attention forward (FusedKernels.attention): q [B, H, Tq, D], k and v [B, H, Tk, D], out like q,
   * each with unit stride on D; lse [B, H, Tq] float32 when given. Returns false (doing nothing) for a
   * case the kernel does not take: other ranks, D > 256, mixed float dtypes.
   */
  private attention(q: View, k: View, v: View, out: View, scale: number, lse: View | null, causal: boolean): boolean {
    const vs = [q, k, v, out];
    if (vs.some((t) => t.shape.length !== 4 || (t.strides[3] !== 1 && t.shape[3] !== 1))) return false;
    const [B, H, Tq, D] = q.shape as [number, number, number, number];
    const Tk = k.shape[2]!;
    if (D < 1 || D > 256 || k.shape[3] !== D || v.shape[3] !== D || v.shape[2] !== Tk || k.shape[0] !== B || k.shape[1] !== H) return false;
    const [Q, K, V, O] = vs.map((t) => this.buf(t.buf, 'attention'));
    const types = { q: wtype(Q!.dtype), k: wtype(K!.dtype), v: wtype(V!.dtype), out: wtype(O!.dtype) };
    if (Object.values(types).some((t) => t !== 'f32' && t !== 'f16')) return false;
    const L = lse ? this.buf(lse.buf, 'attention') : null;
    if (L && L.dtype !== 'float32') return false;
    const info = this.transport.info;
    if (B * H * Tq === 0) return true;
    if (B > info.maxComputeWorkgroupsPerDimension || H > info.maxComputeWorkgroupsPerDimension) return false;
    const wg = this.software ? 16 : 64;
    const bkv = Math.max(1, Math.min(64, Math.floor(info.maxComputeWorkgroupStorageSize / (8 * D))));
    const gx = Math.ceil(Tq / wg);
    if (gx > info.maxComputeWorkgroupsPerDimension) return false;
    const words = [B, H, Tq, Tk, f32Word(scale), causal ? 1 : 0, L ? 1 : 0];
    for (const t of vs) words.push(t.offset, t.strides[0]!, t.strides[1]!, t.strides[2]!);
    words.push(lse ? lse.offset : 0);
    const key = `attention:${D}:${wg}:${bkv}:${Object.values(types).join(',')}`;
    this.run('attention', key, 'wrrrw', () => attentionWgsl(types, D, wg, bkv), [O!, Q!, K!, V!, L ?? STATUS], u32(words), [gx, H, B]);
    return true;
  }

  /** Fused AdamW step (FusedKernels.adamw) over contiguous views of equal size; moments float32. */
  private adamw(p: View, g: View, m: View, v: View, s: AdamWHyper & { step: number }, pLow: View | null): void {
    const P = this.buf(p.buf, 'adamw'), G = this.buf(g.buf, 'adamw'), Mo = this.buf(m.buf, 'adamw'), Vo = this.buf(v.buf, 'adamw');
    const Lo = pLow ? this.buf(pLow.buf, 'adamw') : null;
    if (Mo.dtype !== 'float32' || Vo.dtype !== 'float32') throw new Error(`webgpu adamw: moments must be float32, got ${Mo.dtype} and ${Vo.dtype}`);
    const types = { p: this.floatType(P, 'adamw'), g: this.floatType(G, 'adamw'), low: Lo ? this.floatType(Lo, 'adamw') : 'f32' as WType };
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (n === 0) return;
    const bc1 = 1 - s.beta1 ** s.step, bc2sqrt = Math.sqrt(1 - s.beta2 ** s.step);
    const words = [n, p.offset, g.offset, m.offset, v.offset, pLow ? pLow.offset : 0, Lo ? 1 : 0,
      ...[1 - s.lr * s.weightDecay, s.beta1, s.beta2, s.eps, s.lr / bc1, bc2sqrt, s.gradScale ?? 1, 1 - s.beta1, 1 - s.beta2].map(f32Word)];
    this.run('adamw', `adamw:${types.p},${types.g},${types.low}`, 'wrwww', () => adamwWgsl(types), [P, G, Mo, Vo, Lo ?? STATUS], u32(words),
      groups1d(n, 256, this.transport.info.maxComputeWorkgroupsPerDimension));
  }
}

// ---- construction ----------------------------------------------------------------------------------------

const isNode = (): boolean => typeof (globalThis as any).process?.versions?.node === 'string';

/**
 * Node: a backend whose device lives in a worker thread (synchronous reads through Atomics.wait).
 * `flags` are Dawn toggles for the `webgpu` package's create() (e.g. 'backend=vulkan').
 */
export function createWebGpuBackend(flags: string[] = defaultFlags()): WebGpuBackend {
  if (!isNode()) throw new Error('webgpu: in a browser call `await initWebGpu()` (WebGPU device creation is asynchronous there)');
  return new WebGpuBackend(new WorkerTransport(flags));
}

function defaultFlags(): string[] {
  const env = (globalThis as any).process?.env?.LAVENDER_WEBGPU_FLAGS as string | undefined;
  return env ? env.split(/\s+/).filter(Boolean) : [];
}

/** Any environment with a GPU object (navigator.gpu): the engine runs in this thread; reads are async. */
export async function createWebGpuBackendAsync(gpu: any = (globalThis as any).navigator?.gpu, opts: { f16?: boolean } = {}): Promise<WebGpuBackend> {
  if (!gpu) throw new Error('webgpu: navigator.gpu is not available in this browser (WebGPU disabled or unsupported)');
  let opened: Awaited<ReturnType<typeof openDevice>>;
  try {
    opened = await openDevice(gpu, opts);
  } catch (e) {
    throw new Error(`webgpu: ${(e as Error).message}`);
  }
  const { device, info } = opened;
  return new WebGpuBackend(new DirectTransport(new Engine(device, info)));
}

let shared: WebGpuBackend | null = null;
let sharedError: Error | null = null;

/** The process-wide webgpu backend (Node), created on first use; the error is remembered. */
export function sharedWebGpuBackend(): WebGpuBackend {
  if (shared) return shared;
  if (sharedError) throw sharedError;
  const env = (globalThis as any).process?.env?.LAVENDER_WEBGPU;
  if (env === '0') throw (sharedError = new Error('webgpu: disabled by LAVENDER_WEBGPU=0'));
  try {
    shared = createWebGpuBackend();
    return shared;
  } catch (e) {
    sharedError = new Error((e as Error).message.startsWith('webgpu') ? (e as Error).message : `webgpu: ${(e as Error).message}`);
    throw sharedError;
  }
}

/** The registry entry: probe() tries to open the device once (in Node) and reports why not. */
export const webgpuEntry = {
  name: NAME,
  built: true,
  create: (): Backend => sharedWebGpuBackend(),
  probe: (): { available: boolean; reason?: string } => {
    if (!isNode()) return { available: false, reason: 'in a browser, call `await initWebGpu()` first' };
    try {
      sharedWebGpuBackend();
      return { available: true };
    } catch (e) {
      return { available: false, reason: (e as Error).message };
    }
  },
};

/** Browser entry point: open navigator.gpu and register the backend as device 'webgpu'. */
export async function initWebGpu(gpu?: any): Promise<WebGpuBackend> {
  const { registerBackendInstance } = await import('../registry.js');
  const b = await createWebGpuBackendAsync(gpu);
  registerBackendInstance(b);
  return b;
}

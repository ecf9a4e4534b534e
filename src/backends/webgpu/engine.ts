// The engine: executes the command stream (protocol.ts) on a GPUDevice. Buffers are pooled by byte
// size and recycled on `free` (never by the garbage collector); dispatches are recorded into one compute
// pass per batch with all their metadata in one buffer, and submitted when the batch ends or a write
// must be ordered after them. Validation errors are collected through error scopes and reported at the
// next request (read / sync), as is a lost device. No Node APIs here: the browser uses this file as is.
import type { Command, DeviceInfo, Request } from './protocol.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type GPUDevice = any;
type GPUBuffer = any;

const STORAGE = 0x80, COPY_SRC = 0x04, COPY_DST = 0x08, MAP_READ = 0x01, MAP_MODE_READ = 0x1;
const MAX_POOLED_BYTES = 1 << 30;

interface Kernel { pipeline: any; bgl: any }
interface Dispatch { kernel: Kernel; bufs: GPUBuffer[]; status: boolean; meta: Uint8Array; groups: [number, number, number] }

export class Engine {
  private buffers = new Map<number, { buf: GPUBuffer; bytes: number }>();
  private pool = new Map<number, GPUBuffer[]>();
  private pooledBytes = 0;
  private staging = new Map<number, GPUBuffer[]>();
  private kernels = new Map<number, Kernel>();
  private layouts = new Map<string, any>();
  private recorded: Dispatch[] = [];
  private errors: string[] = [];
  private scopes: Promise<void>[] = [];
  private status: GPUBuffer;
  private statusDirty = false;
  lost: string | null = null;
  readonly align: number;

  constructor(readonly device: GPUDevice, readonly info: DeviceInfo) {
    this.align = Math.max(256, info.minStorageBufferOffsetAlignment);
    device.lost?.then((l: any) => { this.lost = `${l?.reason ?? 'unknown'}${l?.message ? `: ${l.message}` : ''}`; });
    device.addEventListener?.('uncapturederror', (e: any) => this.errors.push(String(e?.error?.message ?? e)));
    this.status = device.createBuffer({ size: 16, usage: STORAGE | COPY_SRC | COPY_DST, label: 'lavender status' });
  }

  /** The device's status word buffer (gather/scatterAdd raise bits for out-of-range indices). */
  get statusBuffer(): GPUBuffer { return this.status; }

  exec(cmds: Command[]): void {
    for (const c of cmds) {
      try {
        this.one(c);
      } catch (e) {
        this.errors.push(`${c.t}: ${(e as Error).message}`);
      }
    }
    this.submit();
  }

  private one(c: Command): void {
    switch (c.t) {
      case 'alloc': {
        const list = this.pool.get(c.bytes);
        let buf = list?.pop();
        if (buf) this.pooledBytes -= c.bytes;
        else buf = this.device.createBuffer({ size: c.bytes, usage: STORAGE | COPY_SRC | COPY_DST });
        this.buffers.set(c.id, { buf, bytes: c.bytes });
        return;
      }
      case 'free': {
        const b = this.take(c.id);
        this.buffers.delete(c.id);
        if (this.pooledBytes + b.bytes > MAX_POOLED_BYTES) {
          this.submit();
          b.buf.destroy();
          return;
        }
        let list = this.pool.get(b.bytes);
        if (!list) this.pool.set(b.bytes, (list = []));
        list.push(b.buf);
        this.pooledBytes += b.bytes;
        return;
      }
      case 'write':
        this.submit(); // the write must land after the dispatches recorded so far
        this.device.queue.writeBuffer(this.take(c.id).buf, c.byteOffset, c.data);
        return;
      case 'copyBuffer': {
        this.submit();
        const enc = this.device.createCommandEncoder();
        enc.copyBufferToBuffer(this.take(c.src).buf, 0, this.take(c.dst).buf, 0, c.bytes);
        this.device.queue.submit([enc.finish()]);
        return;
      }
      case 'kernel': {
        let bgl = this.layouts.get(c.layout);
        if (!bgl) {
          const entries = [{ binding: 0, visibility: 4, buffer: { type: 'read-only-storage' } }];
          [...c.layout].forEach((a, i) => entries.push({ binding: i + 1, visibility: 4, buffer: { type: a === 'w' ? 'storage' : 'read-only-storage' } }));
          bgl = this.device.createBindGroupLayout({ entries });
          this.layouts.set(c.layout, bgl);
        }
        const module = this.device.createShaderModule({ code: c.code, label: c.label });
        const pipeline = this.device.createComputePipeline({
          label: c.label,
          layout: this.device.createPipelineLayout({ bindGroupLayouts: [bgl] }),
          compute: { module, entryPoint: 'main' },
        });
        this.kernels.set(c.kid, { pipeline, bgl });
        return;
      }
      case 'run': {
        const kernel = this.kernels.get(c.kid);
        if (!kernel) throw new Error(`unknown kernel ${c.kid}`);
        // resolve buffers now: a buffer may be freed (back to the pool) before the batch is submitted
        const bufs = c.ids.map((id) => (id === -1 ? this.status : this.take(id).buf));
        this.recorded.push({ kernel, bufs, status: c.ids.includes(-1), meta: new Uint8Array(c.meta), groups: c.groups });
        if (this.recorded.length >= 512) this.submit();
        return;
      }
    }
  }

  private take(id: number): { buf: GPUBuffer; bytes: number } {
    const b = this.buffers.get(id);
    if (!b) throw new Error(`unknown or freed buffer #${id}`);
    return b;
  }

  /** Encode and submit the recorded dispatches: one metadata buffer, one compute pass. */
  private submit(): void {
    if (!this.recorded.length) return;
    const list = this.recorded;
    this.recorded = [];
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let total = 0;
    const at = list.map((d) => { const o = total; total += Math.ceil(Math.max(d.meta.byteLength, 4) / this.align) * this.align; return o; });
    const metaBuf = this.device.createBuffer({ size: total, usage: STORAGE | COPY_DST, mappedAtCreation: true });
    const bytes = new Uint8Array(metaBuf.getMappedRange());
    list.forEach((d, i) => bytes.set(d.meta, at[i]!));
    metaBuf.unmap();
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    list.forEach((d, i) => {
      const entries = [{ binding: 0, resource: { buffer: metaBuf, offset: at[i]!, size: Math.max(d.meta.byteLength, 4) } }];
      d.bufs.forEach((buffer, k) => entries.push({ binding: k + 1, resource: { buffer } as any }));
      pass.setPipeline(d.kernel.pipeline);
      pass.setBindGroup(0, this.device.createBindGroup({ layout: d.kernel.bgl, entries }));
      pass.dispatchWorkgroups(...d.groups);
      if (d.status) this.statusDirty = true;
    });
    pass.end();
    this.device.queue.submit([enc.finish()]);
    metaBuf.destroy(); // destruction waits for the submitted work
    for (const kind of ['validation', 'out-of-memory']) {
      this.scopes.push(this.device.popErrorScope().then((e: any) => { if (e) this.errors.push(`${kind} error: ${e.message}`); }, () => {}));
    }
  }

  private stagingBuffer(bytes: number): GPUBuffer {
    return this.staging.get(bytes)?.pop() ?? this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
  }

  /** Run a request after everything before it; throws (with the reason) on a device error. */
  async request(req: Request): Promise<{ text?: string; data?: ArrayBuffer }> {
    this.submit();
    if (req.r === 'lose') {
      this.device.destroy();
      await new Promise((r) => setTimeout(r, 10));
      return {};
    }
    this.check();
    if (req.r === 'trim') {
      for (const list of this.pool.values()) for (const b of list) b.destroy();
      this.pool.clear();
      this.pooledBytes = 0;
      return {};
    }
    if (req.r === 'stats') return { text: JSON.stringify({ pooledBytes: this.pooledBytes, buffers: this.buffers.size }) };
    let data: ArrayBuffer | undefined;
    const enc = this.device.createCommandEncoder();
    let st: GPUBuffer | null = null, rb: GPUBuffer | null = null;
    if (this.statusDirty) {
      st = this.stagingBuffer(16);
      enc.copyBufferToBuffer(this.status, 0, st, 0, 16);
    }
    if (req.r === 'read' && req.bytes > 0) {
      rb = this.stagingBuffer(req.bytes);
      enc.copyBufferToBuffer(this.take(req.id).buf, 0, rb, 0, req.bytes);
    }
    this.device.queue.submit([enc.finish()]);
    try {
      if (st) {
        await st.mapAsync(MAP_MODE_READ);
        const flags = new Uint32Array(st.getMappedRange())[0]!;
        st.unmap();
        this.staging.get(16)?.push(st) ?? this.staging.set(16, [st]);
        this.statusDirty = false;
        if (flags) {
          this.device.queue.writeBuffer(this.status, 0, new Uint32Array(4));
          if (rb) rb.destroy();
          throw new Error(`${flags & 1 ? 'gather' : 'scatterAdd'}: an index was out of range for its axis`);
        }
      }
      if (rb) {
        await rb.mapAsync(MAP_MODE_READ);
        const src = new Uint8Array(rb.getMappedRange());
        if (req.r === 'read' && req.sab) new Uint8Array(req.sab).set(src);
        else data = src.slice().buffer;
        rb.unmap();
        const bytes = (req as { bytes: number }).bytes;
        const list = this.staging.get(bytes);
        if (list) list.push(rb); else this.staging.set(bytes, [rb]);
      } else {
        await this.device.queue.onSubmittedWorkDone();
      }
    } catch (e) {
      this.check();
      throw e;
    }
    await Promise.all(this.scopes.splice(0));
    this.check();
    return { data };
  }

  private check(): void {
    if (this.lost) throw new Error(`device lost (${this.lost})`);
    if (this.errors.length) {
      const e = this.errors.splice(0);
      throw new Error(e.length > 1 ? `${e[0]} (and ${e.length - 1} more errors)` : e[0]);
    }
  }
}

/** Names by which software adapters identify themselves (they run workgroups on CPU threads). */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|software|microsoft basic/i;

/**
 * Request an adapter and a device with the largest buffer and workgroup limits the adapter allows, and
 * 'shader-f16' when the adapter has it (LAVENDER_WEBGPU_F16=0, or `{ f16: false }`, leaves it off).
 */
export async function openDevice(gpu: any, opts: { f16?: boolean } = {}): Promise<{ device: GPUDevice; info: DeviceInfo }> {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new Error('no WebGPU adapter found (no GPU driver answered; on a machine without a GPU install a software Vulkan driver: Mesa lavapipe >= 23, see the README, "webgpu backend")');
  }
  const lim = adapter.limits;
  const f16 = opts.f16 !== false && !!adapter.features?.has?.('shader-f16');
  const device = await adapter.requestDevice({
    requiredFeatures: f16 ? ['shader-f16'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
      maxBufferSize: lim.maxBufferSize,
      maxStorageBuffersPerShaderStage: Math.min(lim.maxStorageBuffersPerShaderStage, 10),
      maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: lim.maxComputeWorkgroupSizeY,
    },
  });
  const ai = adapter.info ?? {};
  const name = [ai.vendor, ai.architecture, ai.device, ai.description].filter(Boolean).join(' / ') || 'unknown adapter';
  const info: DeviceInfo = {
    adapter: name,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxBufferSize: device.limits.maxBufferSize,
    maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
    minStorageBufferOffsetAlignment: device.limits.minStorageBufferOffsetAlignment,
    maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
    f16,
    software: SOFTWARE_ADAPTER.test(name) || !!(ai.isFallbackAdapter ?? adapter.isFallbackAdapter),
  };
  return { device, info };
}

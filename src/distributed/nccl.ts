// The NCCL process group. It is written against NcclApi, the interface below, and `loadNcclApi()` (the
// ADAPTER POINT) maps the CUDA backend's wrapper (src/backends/cuda/nccl.ts: NcclComm.uniqueId / initRank /
// allReduce / reduceScatter / allGather / broadcast on views, collectives enqueued on the backend's stream)
// onto it. The rendezvous that hands out the unique id, the configuration checks and ZeRO are shared with the
// CPU path and tested there; this file has not run on a GPU yet (bench/gpu/run.sh runs it on one).
//
// Failures (a dead or stalled peer ends every rank with a named error within the timeout, never a hang):
//  - a collective is enqueued, then a stream marker (an event) after it is polled without blocking the
//    thread, with ncclCommGetAsyncError alongside; on the deadline, an asynchronous NCCL error, or news
//    from the control mesh, the communicator is aborted (ncclCommAbort: returns even while the kernel waits
//    on a dead peer) and the collective throws; every later one throws too.
//  - the control mesh: the ranks also keep the CPU transport's TCP mesh (no tensor traffic), which tells
//    at once when a peer's process dies (its connection closes) and carries each rank's collective number,
//    so a timeout names the ranks that never reached the collective; a failing rank tells the others why
//    over it, so they abort too instead of waiting out their own timeouts.
// Messages match the CPU transport's: "allReduce #12 on rank 0 timed out after 60 s waiting for rank(s) 1",
// "rank 1 closed its connection (the process died or exited)".
//
// Not handled: a peer dying inside ncclCommInitRank (the rendezvous just before it makes this unlikely);
// one process per GPU (CUDA_VISIBLE_DEVICES, e.g. srun --gpus-per-task=1).
//
// Rendezvous: rank 0 calls getUniqueId() and publishes the 128 bytes (hex) as its member info on the store,
// with every rank's mesh address; every rank then calls commInitRank(worldSize, id, rank).
import type { Tensor } from '../tensor/tensor.js';
import { toDevice } from '../ops/movement.js';
import { scope } from '../tensor/scope.js';
import { meshHost, type DistEnv, type ProcessGroup, type ReduceOp } from './process-group.js';
import { CpuTransport, listenMesh, type MeshAddress } from './cpu-transport.js';
import { rendezvous } from './store.js';

/** The NCCL calls the process group needs. Buffers are device tensors (contiguous). */
export interface NcclApi {
  /** The device whose tensors the collectives take (default 'cuda'; a test double may use 'cpu'). */
  device?: string;
  /** ncclGetUniqueId: 128 opaque bytes. */
  getUniqueId(): Uint8Array;
  /** ncclCommInitRank on the current device (select it with setDevice first). */
  commInitRank(nranks: number, id: Uint8Array, rank: number): unknown;
  setDevice?(index: number): void;
  /** ncclAllReduce (ncclSum or ncclAvg) of send into recv (may be the same tensor). */
  allReduce(comm: unknown, send: Tensor, recv: Tensor, op: ReduceOp): void;
  /** ncclReduceScatter: recv.size elements per rank. */
  reduceScatter(comm: unknown, send: Tensor, recv: Tensor, op: ReduceOp): void;
  /** ncclAllGather: send.size elements per rank. */
  allGather(comm: unknown, send: Tensor, recv: Tensor): void;
  broadcast(comm: unknown, send: Tensor, recv: Tensor, root: number): void;
  /** Resolve when the communicator's stream has finished the enqueued work (the fallback without fence/query). */
  synchronize(comm: unknown): Promise<void>;
  /** A marker after the work enqueued so far (a CUDA event on the stream). */
  fence?(comm: unknown): unknown;
  /** Whether the work before the marker has finished; never blocks. */
  query?(comm: unknown, fence: unknown): boolean;
  releaseFence?(fence: unknown): void;
  /** ncclCommGetAsyncError: null, or the error NCCL's threads found (a remote failure). */
  asyncError?(comm: unknown): string | null;
  /** ncclCommAbort: frees the communicator even while a collective waits for a dead peer. */
  commAbort?(comm: unknown): void;
  commDestroy(comm: unknown): void;
}

/** ADAPTER POINT: return the CUDA backend's NCCL bindings as an NcclApi, or throw why they are unavailable. */
export async function loadNcclApi(): Promise<NcclApi> {
  const { getBackend } = await import('../backends/registry.js');
  let NcclComm: typeof import('../backends/cuda/nccl.js').NcclComm;
  try {
    ({ NcclComm } = await import('../backends/cuda/nccl.js'));
    const probe = getBackend('cuda');
    if (!probe.available) throw new Error('the cuda backend is not available');
  } catch (e) {
    throw new Error(`distributed: the NCCL process group needs the cuda backend: ${(e as Error).message}; use --dist-backend cpu`);
  }
  type Comm = import('../backends/cuda/nccl.js').NcclComm;
  const { streamMarker } = await import('../backends/cuda/nccl.js');
  type Marker = ReturnType<typeof streamMarker>;
  const sync = () => (getBackend('cuda') as unknown as { synchronize(): void }).synchronize();
  return {
    getUniqueId: () => new Uint8Array(NcclComm.uniqueId()),
    commInitRank: (n, id, rank) => NcclComm.initRank(n, Buffer.from(id), rank),
    allReduce: (c, s, r, op) => (c as Comm).allReduce(s.view('nccl allReduce'), r.view('nccl allReduce'), op),
    reduceScatter: (c, s, r, op) => (c as Comm).reduceScatter(s.view('nccl reduceScatter'), r.view('nccl reduceScatter'), op),
    allGather: (c, s, r) => (c as Comm).allGather(s.view('nccl allGather'), r.view('nccl allGather')),
    broadcast: (c, s, r, root) => (c as Comm).broadcast(s.view('nccl broadcast'), r.view('nccl broadcast'), root),
    synchronize: async () => sync(),
    fence: () => streamMarker(),
    query: (_c, f) => (f as Marker).done(),
    releaseFence: (f) => (f as Marker).release(),
    asyncError: (c) => (c as Comm).asyncError(),
    commAbort: (c) => (c as Comm).abort(),
    commDestroy: (c) => (c as Comm).destroy(),
  };
}

/** Run a collective on device copies of tensors that live elsewhere (e.g. the host scalars of the training loop). */
async function onDevice(device: string, ts: Tensor[], fn: (cs: Tensor[]) => Promise<void>): Promise<void> {
  if (ts.every((t) => t.device === device && t.isContiguous())) return fn(ts);
  const cs = ts.map((t) => toDevice(t.isContiguous() ? t : t.alias(), device));
  try {
    await fn(cs);
    scope(() => ts.forEach((t, i) => t.assign(t.device === device ? cs[i]! : toDevice(cs[i]!, t.device))));
  } finally {
    for (const c of cs) c.dispose();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NcclProcessGroup implements ProcessGroup {
  readonly backend = 'nccl' as const;
  private broken: Error | null = null;
  /** What the control mesh reported: a peer's death, or another rank's abort. */
  private news: Error | null = null;
  private seq = 0;
  private aborted = false;
  private readonly device: string;
  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly api: NcclApi,
    private readonly comm: unknown,
    private readonly timeoutMs: number,
    private readonly control: CpuTransport | null = null,
  ) {
    this.device = api.device ?? 'cuda';
    if (control) {
      control.onPeerLost = (_r, e) => (this.news ??= e);
      control.onAbort = (e) => (this.news ??= e);
    }
  }

  /** Abort the communicator (once) and tell the other ranks why over the control mesh. */
  private abortWith(err: Error): void {
    this.broken ??= err;
    if (!this.aborted) {
      this.aborted = true;
      try {
        this.api.commAbort?.(this.comm);
      } catch { /* the communicator may already be gone */ }
    }
    this.control?.fail(err);
  }

  private async run(name: string, enqueue: () => void): Promise<void> {
    if (this.broken) throw new Error(`lavender dist: ${name} on rank ${this.rank}: the process group was aborted earlier: ${this.broken.message}`);
    const seq = ++this.seq;
    const named = (why: string) => new Error(`lavender dist: ${name} #${seq} on rank ${this.rank} ${why}; the NCCL communicator was aborted`);
    this.control?.announce(seq);
    let fence: unknown = null;
    try {
      enqueue();
      if (this.api.fence && this.api.query) fence = this.api.fence(this.comm);
      if (fence === null) {
        // no markers: wait for the stream (a blocking synchronize cannot be interrupted by the timer)
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            this.api.synchronize(this.comm),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(named(`timed out after ${this.timeoutMs / 1000} s (a rank is stuck or dead; LAVENDER_DIST_TIMEOUT sets the limit)`)), this.timeoutMs);
            }),
          ]);
        } finally {
          clearTimeout(timer);
        }
        return;
      }
      // the deadline counts from when this rank is free to wait (a collective started from a gradient hook
      // returns here only once the rest of the backward has been enqueued)
      await null;
      const deadline = Date.now() + this.timeoutMs;
      for (let wait = 0.25; ; wait = Math.min(2 * wait, 10)) {
        if (this.news) throw named(`failed: ${this.news.message}`);
        const err = this.api.asyncError?.(this.comm);
        if (err) throw named(`failed: NCCL reported ${err} (a peer failed or the network did)`);
        if (this.api.query!(this.comm, fence)) return;
        if (Date.now() >= deadline) {
          const behind = this.control?.ranksBehind(seq) ?? [];
          const who = behind.length ? `rank(s) ${behind.join(', ')}` : 'the other ranks';
          throw named(`timed out after ${this.timeoutMs / 1000} s waiting for ${who} (stuck or dead; LAVENDER_DIST_TIMEOUT sets the limit)`);
        }
        await sleep(wait);
      }
    } catch (e) {
      const err = e instanceof Error && e.message.startsWith('lavender dist:') ? e : named(`failed: ${(e as Error).message}`);
      this.abortWith(err);
      throw err;
    } finally {
      if (fence !== null) this.api.releaseFence?.(fence);
    }
  }

  allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    return onDevice(this.device, [t], ([c]) => this.run('allReduce', () => this.api.allReduce(this.comm, c!, c!, op)));
  }
  reduceScatter(output: Tensor, input: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    return onDevice(this.device, [output, input], ([o, i]) => this.run('reduceScatter', () => this.api.reduceScatter(this.comm, i!, o!, op)));
  }
  allGather(output: Tensor, input: Tensor): Promise<void> {
    return onDevice(this.device, [output, input], ([o, i]) => this.run('allGather', () => this.api.allGather(this.comm, i!, o!)));
  }
  broadcast(t: Tensor, root = 0): Promise<void> {
    return onDevice(this.device, [t], ([c]) => this.run('broadcast', () => this.api.broadcast(this.comm, c!, c!, root)));
  }
  /** Over the control mesh: a cross-rank barrier with the CPU transport's timeout and failure naming. */
  async barrier(): Promise<void> {
    if (this.control) {
      try {
        await this.control.barrier();
      } catch (e) {
        this.abortWith(e as Error);
        throw e;
      }
      return;
    }
    return this.run('barrier', () => {});
  }
  destroy(): void {
    if (!this.broken) this.broken = new Error('destroyed');
    if (!this.aborted) this.api.commDestroy(this.comm);
    this.aborted = true;
    this.control?.destroy();
  }
}

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export async function initNcclProcessGroup(env: DistEnv, config: Record<string, unknown>, hash: string, timeoutMs: number, api?: NcclApi): Promise<ProcessGroup> {
  const nccl = api ?? (await loadNcclApi());
  nccl.setDevice?.(env.localRank);
  const mesh = env.worldSize > 1 ? await listenMesh(meshHost(env.masterAddr)) : null;
  const info = { ...(env.rank === 0 ? { nccl_id: toHex(nccl.getUniqueId()) } : {}), ...(mesh ? mesh.address : {}) };
  let rdv;
  try {
    rdv = await rendezvous(env.masterAddr, env.masterPort, { rank: env.rank, worldSize: env.worldSize, configHash: hash, config, info }, timeoutMs);
  } catch (e) {
    mesh?.server.close();
    throw e;
  }
  let control: CpuTransport | null = null;
  try {
    if (mesh) control = await CpuTransport.connect(env.rank, rdv.members as unknown as MeshAddress[], mesh.server, hash, timeoutMs);
    const id = Uint8Array.from(Buffer.from(String(rdv.members[0]!.nccl_id), 'hex'));
    const comm = nccl.commInitRank(env.worldSize, id, env.rank);
    return new NcclProcessGroup(env.rank, env.worldSize, nccl, comm, timeoutMs, control);
  } catch (e) {
    control?.destroy();
    throw e;
  } finally {
    rdv.close();
  }
}

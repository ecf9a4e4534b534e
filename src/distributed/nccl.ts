// The NCCL process group. It is written against NcclApi, the interface below, and `loadNcclApi()` (the
// ADAPTER POINT) maps the CUDA backend's wrapper (src/backends/cuda/nccl.ts: NcclComm.uniqueId / initRank /
// allReduce / reduceScatter / allGather / broadcast on views, collectives enqueued on the backend's stream)
// onto it. The rendezvous that hands out the unique id, the configuration checks and ZeRO are shared with the
// CPU path and tested there; this file has not run on a GPU yet.
//
// Limits of the wrapper as it stands: the backend's synchronize() blocks the thread, so the collective
// timeout cannot fire while a dead peer keeps NCCL waiting (that needs ncclCommAbort and an asynchronous
// error query in the addon: NcclApi.commAbort is the hook), and there is no per-process device selection:
// start one process per GPU with CUDA_VISIBLE_DEVICES (e.g. srun --gpus-per-task=1).
//
// Rendezvous: rank 0 calls getUniqueId() and publishes the 128 bytes (hex) as its member info on the store;
// every rank then calls commInitRank(worldSize, id, rank) on the device LOCAL_RANK.
import type { Tensor } from '../tensor/tensor.js';
import { toDevice } from '../ops/movement.js';
import { scope } from '../tensor/scope.js';
import type { DistEnv, ProcessGroup, ReduceOp } from './process-group.js';
import { rendezvous } from './store.js';

/** The NCCL calls the process group needs. Buffers are device tensors (contiguous). */
export interface NcclApi {
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
  /** Resolve when the communicator's stream has finished the enqueued work. */
  synchronize(comm: unknown): Promise<void>;
  /** ncclCommAbort: used when a collective times out (so a dead peer cannot hang this rank). */
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
  const sync = () => (getBackend('cuda') as unknown as { synchronize(): void }).synchronize();
  return {
    getUniqueId: () => new Uint8Array(NcclComm.uniqueId()),
    commInitRank: (n, id, rank) => NcclComm.initRank(n, Buffer.from(id), rank),
    allReduce: (c, s, r, op) => (c as Comm).allReduce(s.view('nccl allReduce'), r.view('nccl allReduce'), op),
    reduceScatter: (c, s, r, op) => (c as Comm).reduceScatter(s.view('nccl reduceScatter'), r.view('nccl reduceScatter'), op),
    allGather: (c, s, r) => (c as Comm).allGather(s.view('nccl allGather'), r.view('nccl allGather')),
    broadcast: (c, s, r, root) => (c as Comm).broadcast(s.view('nccl broadcast'), r.view('nccl broadcast'), root),
    synchronize: async () => sync(),
    commDestroy: (c) => (c as Comm).destroy(),
  };
}

/** Run a collective on cuda copies of tensors that live elsewhere (e.g. the host scalars of the training loop). */
async function onCuda(ts: Tensor[], fn: (cs: Tensor[]) => Promise<void>): Promise<void> {
  if (ts.every((t) => t.device === 'cuda' && t.isContiguous())) return fn(ts);
  const cs = ts.map((t) => toDevice(t.isContiguous() ? t : t.alias(), 'cuda'));
  try {
    await fn(cs);
    scope(() => ts.forEach((t, i) => t.assign(t.device === 'cuda' ? cs[i]! : toDevice(cs[i]!, t.device))));
  } finally {
    for (const c of cs) c.dispose();
  }
}

export class NcclProcessGroup implements ProcessGroup {
  readonly backend = 'nccl' as const;
  private broken: Error | null = null;
  constructor(readonly rank: number, readonly worldSize: number, private readonly api: NcclApi, private readonly comm: unknown, private readonly timeoutMs: number) {}

  private async run(name: string, enqueue: () => void): Promise<void> {
    if (this.broken) throw new Error(`lavender dist: ${name} on rank ${this.rank}: the process group was aborted earlier: ${this.broken.message}`);
    enqueue();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.api.synchronize(this.comm),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`lavender dist: NCCL ${name} on rank ${this.rank} timed out after ${this.timeoutMs / 1000} s (a rank is stuck or dead; LAVENDER_DIST_TIMEOUT sets the limit)`)), this.timeoutMs);
        }),
      ]);
    } catch (e) {
      this.broken = e as Error;
      this.api.commAbort?.(this.comm);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    return onCuda([t], ([c]) => this.run('allReduce', () => this.api.allReduce(this.comm, c!, c!, op)));
  }
  reduceScatter(output: Tensor, input: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    return onCuda([output, input], ([o, i]) => this.run('reduceScatter', () => this.api.reduceScatter(this.comm, i!, o!, op)));
  }
  allGather(output: Tensor, input: Tensor): Promise<void> {
    return onCuda([output, input], ([o, i]) => this.run('allGather', () => this.api.allGather(this.comm, i!, o!)));
  }
  broadcast(t: Tensor, root = 0): Promise<void> {
    return onCuda([t], ([c]) => this.run('broadcast', () => this.api.broadcast(this.comm, c!, c!, root)));
  }
  barrier(): Promise<void> {
    return this.run('barrier', () => this.api.synchronize(this.comm));
  }
  destroy(): void {
    if (!this.broken) this.broken = new Error('destroyed');
    this.api.commDestroy(this.comm);
  }
}

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export async function initNcclProcessGroup(env: DistEnv, config: Record<string, unknown>, hash: string, timeoutMs: number, api?: NcclApi): Promise<ProcessGroup> {
  const nccl = api ?? (await loadNcclApi());
  nccl.setDevice?.(env.localRank);
  const info = env.rank === 0 ? { nccl_id: toHex(nccl.getUniqueId()) } : {};
  const rdv = await rendezvous(env.masterAddr, env.masterPort, { rank: env.rank, worldSize: env.worldSize, configHash: hash, config, info }, timeoutMs);
  try {
    const id = Uint8Array.from(Buffer.from(String(rdv.members[0]!.nccl_id), 'hex'));
    const comm = nccl.commInitRank(env.worldSize, id, env.rank);
    return new NcclProcessGroup(env.rank, env.worldSize, nccl, comm, timeoutMs);
  } finally {
    rdv.close();
  }
}

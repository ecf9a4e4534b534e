// Process groups: one API for collectives on tensors (allReduce, reduceScatter, allGather, broadcast,
// barrier; ops sum and avg), with two implementations: 'cpu' (CpuTransport, a TCP mesh, deterministic)
// and 'nccl' (NcclProcessGroup over the NCCL bindings of the CUDA backend). initProcessGroup() reads the
// launcher's environment (torchrun's contract, or SLURM's under srun), runs the rendezvous on
// MASTER_ADDR:MASTER_PORT (checking world size and configuration on every rank) and connects the group.
import { networkInterfaces } from 'node:os';
import { tensor } from '../ops/creation.js';
import { cast } from '../ops/movement.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { CpuTransport, defaultTimeoutMs, listenMesh, type HostArray, type MeshAddress, type ReduceOp } from './cpu-transport.js';
import { configHash, rendezvous } from './store.js';

export type { ReduceOp } from './cpu-transport.js';

export interface ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: 'cpu' | 'nccl';
  /** In place: t becomes the sum (or mean) of every rank's t. */
  allReduce(t: Tensor, op?: ReduceOp): Promise<void>;
  /** input holds worldSize * output.size elements (flattened); output becomes chunk `rank` reduced over ranks. */
  reduceScatter(output: Tensor, input: Tensor, op?: ReduceOp): Promise<void>;
  /** output (worldSize * input.size elements) becomes every rank's input concatenated in rank order. */
  allGather(output: Tensor, input: Tensor): Promise<void>;
  /** In place: t becomes root's t. */
  broadcast(t: Tensor, root?: number): Promise<void>;
  barrier(): Promise<void>;
  /** Close connections; idempotent. After an error, the group is aborted and every collective throws. */
  destroy(): void;
}

/** Where this process sits in the job, from the launcher's environment. */
export interface DistEnv {
  rank: number;
  localRank: number;
  worldSize: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Which contract supplied the values. */
  source: 'torchrun' | 'slurm' | 'none';
}

function envInt(env: NodeJS.ProcessEnv, name: string, min: number, fallback?: number): number {
  const v = env[name];
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`distributed: environment variable ${name} is not set`);
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`distributed: environment variable ${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}

/** '4(x2),3' (SLURM's tasks-per-node syntax): the count of the first node group. */
function slurmFirstCount(v: string | undefined): number | undefined {
  const m = /^(\d+)/.exec(v ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * The distributed environment: torchrun's variables (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT) when WORLD_SIZE is set, else SLURM's (SLURM_PROCID, SLURM_LOCALID,
 * SLURM_STEP_NUM_TASKS or SLURM_NTASKS, SLURM_STEP_TASKS_PER_NODE or SLURM_NTASKS_PER_NODE) when
 * SLURM_PROCID is set (srun), else a single process.
 */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv {
  const port = () => envInt(env, 'MASTER_PORT', 1, 29500);
  if (env.WORLD_SIZE !== undefined && env.WORLD_SIZE !== '') {
    const worldSize = envInt(env, 'WORLD_SIZE', 1);
    const rank = envInt(env, 'RANK', 0);
    if (rank >= worldSize) throw new Error(`distributed: RANK ${rank} is not below WORLD_SIZE ${worldSize}`);
    const localWorldSize = envInt(env, 'LOCAL_WORLD_SIZE', 1, worldSize);
    const localRank = envInt(env, 'LOCAL_RANK', 0, rank % localWorldSize);
    const p = port();
    if (p > 65535) throw new Error(`distributed: MASTER_PORT ${p} is not a TCP port`);
    return { rank, localRank, worldSize, localWorldSize, masterAddr: env.MASTER_ADDR || '127.0.0.1', masterPort: p, source: 'torchrun' };
  }
  if (env.SLURM_PROCID !== undefined && env.SLURM_PROCID !== '') {
    const worldSize = envInt(env, env.SLURM_STEP_NUM_TASKS ? 'SLURM_STEP_NUM_TASKS' : 'SLURM_NTASKS', 1, 1);
    const rank = envInt(env, 'SLURM_PROCID', 0);
    if (rank >= worldSize) throw new Error(`distributed: SLURM_PROCID ${rank} is not below the task count ${worldSize}`);
    const localWorldSize = slurmFirstCount(env.SLURM_STEP_TASKS_PER_NODE ?? env.SLURM_NTASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE) ?? worldSize;
    const localRank = envInt(env, 'SLURM_LOCALID', 0, rank % localWorldSize);
    const nodes = Number(env.SLURM_STEP_NUM_NODES ?? env.SLURM_NNODES ?? '1');
    if (nodes > 1 && !env.MASTER_ADDR) {
      throw new Error('distributed: under srun over several nodes, set MASTER_ADDR to the first node (e.g. export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1))');
    }
    const jobPort = env.SLURM_JOB_ID ? 20000 + (Number(env.SLURM_JOB_ID) % 20000) : 29500;
    return { rank, localRank, worldSize, localWorldSize, masterAddr: env.MASTER_ADDR || '127.0.0.1', masterPort: envInt(env, 'MASTER_PORT', 1, jobPort), source: 'slurm' };
  }
  return { rank: 0, localRank: 0, worldSize: 1, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: 29500, source: 'none' };
}

export function isLoopback(addr: string): boolean {
  return addr === 'localhost' || addr === '::1' || /^127\./.test(addr);
}

/** The address other ranks reach this one at: loopback for a local job, else LAVENDER_DIST_HOST or the first external IPv4. */
export function meshHost(masterAddr: string): string {
  if (process.env.LAVENDER_DIST_HOST) return process.env.LAVENDER_DIST_HOST;
  if (isLoopback(masterAddr)) return '127.0.0.1';
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

/** Host copy of a tensor as float32 (float64 stays float64). */
export function hostArray(t: Tensor): HostArray {
  const a = t.toArray();
  if (a instanceof Float32Array || a instanceof Float64Array) return a;
  throw new Error(`distributed: collectives take floating-point tensors, got ${t.describe()}`);
}

/** Write host values into t in place (any float dtype, any layout). */
export function writeHost(t: Tensor, a: ArrayLike<number>): void {
  if (a.length !== t.size) throw new Error(`distributed: ${a.length} values for ${t.describe()}`);
  if ((t.dtype === 'float32' || t.dtype === 'float64') && t.isContiguous()) {
    t.backend.write(t.storage.buf, a, t.offset);
    return;
  }
  scope(() => {
    const src = tensor(a, { shape: t.shape, dtype: 'float32', device: t.device });
    t.assign(t.dtype === 'float32' ? src : cast(src, t.dtype));
  });
}

/** The CPU process group: collectives through host copies and the TCP mesh. */
export class CpuProcessGroup implements ProcessGroup {
  readonly backend = 'cpu' as const;
  constructor(readonly transport: CpuTransport) {}
  get rank(): number {
    return this.transport.rank;
  }
  get worldSize(): number {
    return this.transport.worldSize;
  }
  async allReduce(t: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    writeHost(t, await this.transport.allReduce(hostArray(t), op));
  }
  async reduceScatter(output: Tensor, input: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    if (input.size !== output.size * this.worldSize) throw new Error(`reduceScatter: input has ${input.size} elements, expected worldSize (${this.worldSize}) x output (${output.size})`);
    writeHost(output, await this.transport.reduceScatter(hostArray(input), op));
  }
  async allGather(output: Tensor, input: Tensor): Promise<void> {
    if (output.size !== input.size * this.worldSize) throw new Error(`allGather: output has ${output.size} elements, expected worldSize (${this.worldSize}) x input (${input.size})`);
    writeHost(output, await this.transport.allGather(hostArray(input)));
  }
  async broadcast(t: Tensor, root = 0): Promise<void> {
    writeHost(t, await this.transport.broadcast(hostArray(t), root));
  }
  barrier(): Promise<void> {
    return this.transport.barrier();
  }
  destroy(): void {
    this.transport.destroy();
  }
}

export interface InitOptions {
  backend?: 'cpu' | 'nccl';
  /** Default: readDistEnv(). */
  env?: DistEnv;
  /** The run's configuration: every rank must pass the same one (checked at rendezvous, differences named). */
  config?: Record<string, unknown>;
  /** Collective and rendezvous timeout; default LAVENDER_DIST_TIMEOUT seconds or 60 s. */
  timeoutMs?: number;
}

/** Rendezvous and connect; a world of one gets a group without sockets. */
export async function initProcessGroup(o: InitOptions = {}): Promise<ProcessGroup> {
  const env = o.env ?? readDistEnv();
  const backend = o.backend ?? 'cpu';
  const timeoutMs = o.timeoutMs ?? defaultTimeoutMs();
  const config = { ...(o.config ?? {}), backend, run_id: process.env.LAVENDER_RUN_ID ?? null };
  const hash = configHash(config);
  if (backend === 'nccl') {
    const { initNcclProcessGroup } = await import('./nccl.js');
    return initNcclProcessGroup(env, config, hash, timeoutMs);
  }
  if (env.worldSize === 1) return new CpuProcessGroup(CpuTransport.single());
  const { server, address } = await listenMesh(meshHost(env.masterAddr));
  let rdv;
  try {
    rdv = await rendezvous(env.masterAddr, env.masterPort, { rank: env.rank, worldSize: env.worldSize, configHash: hash, config, info: { ...address } }, timeoutMs);
  } catch (e) {
    server.close();
    throw e;
  }
  try {
    const transport = await CpuTransport.connect(env.rank, rdv.members as unknown as MeshAddress[], server, hash, timeoutMs);
    return new CpuProcessGroup(transport);
  } finally {
    rdv.close();
  }
}

/** Sum or mean of plain numbers over the ranks (float64), identical on every rank. */
export async function allReduceNumbers(pg: ProcessGroup, values: readonly number[], op: ReduceOp = 'sum'): Promise<number[]> {
  if (pg.worldSize === 1) return [...values];
  const t = tensor(Float64Array.from(values), { dtype: 'float64', device: 'cpu' });
  try {
    await pg.allReduce(t, op);
    return Array.from(t.toArray());
  } finally {
    t.dispose();
  }
}

/** Every rank's values concatenated in rank order (each rank passes the same count). */
export async function allGatherNumbers(pg: ProcessGroup, values: readonly number[]): Promise<number[]> {
  if (pg.worldSize === 1) return [...values];
  const inp = tensor(Float64Array.from(values), { dtype: 'float64', device: 'cpu' });
  const out = tensor(new Float64Array(values.length * pg.worldSize), { dtype: 'float64', device: 'cpu' });
  try {
    await pg.allGather(out, inp);
    return Array.from(out.toArray());
  } finally {
    inp.dispose();
    out.dispose();
  }
}

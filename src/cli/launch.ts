// `lavender launch`: start N copies of a command on this node with torchrun's environment contract
// (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), supervise them, and stop
// every rank when one fails. Under srun with one launcher per node, --nnodes and --node-rank default to
// SLURM's SLURM_STEP_NUM_NODES (or SLURM_NNODES) and SLURM_NODEID.
// Also `lavender consolidate`: join a ZeRO checkpoint's shards into one file.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { consolidate } from '../distributed/checkpoint.js';
import { isLoopback } from '../distributed/process-group.js';
import { stringFlag, type Parsed } from './args.js';
import { prepareOutputFile } from '../io/output-path.js';

export interface LaunchOptions {
  nproc: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** argv of the command each rank runs. */
  command: string[];
  /** Extra environment for the children. */
  env?: NodeJS.ProcessEnv;
  /** Seconds between SIGTERM and SIGKILL when stopping the other ranks (default 5). */
  killGraceSeconds?: number;
  log?: (line: string) => void;
}

export const LAUNCH_USAGE = `usage: lavender launch --nproc N [--nnodes M --node-rank R] [--master-addr A] [--master-port P] [--] <command...>
  Runs N copies of <command> on this node with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and
  MASTER_PORT set (torchrun's contract); if one exits non-zero the others are stopped and launch exits non-zero.
  Under srun (one task per node) --nnodes and --node-rank default to SLURM_STEP_NUM_NODES / SLURM_NODEID.
`;

/** Fail early and clearly if rank 0 could not host the rendezvous store on host:port. */
export function checkPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new Error(`launch: MASTER_PORT ${port} on ${host} is already in use (another run or program holds it); choose another with --master-port`));
      else if (e.code === 'EADDRNOTAVAIL') reject(new Error(`launch: --master-addr ${host} is not an address of this machine (node rank 0 hosts the rendezvous there)`));
      else reject(new Error(`launch: cannot use ${host}:${port}: ${e.message}`));
    });
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve()));
  });
}

/** Run the ranks of this node; resolves with the exit code (0 when every rank exited 0). */
export async function launch(o: LaunchOptions): Promise<number> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const env = o.env ?? process.env;
  const slurm = env.SLURM_PROCID !== undefined && env.SLURM_STEP_NUM_NODES !== undefined;
  const nnodes = o.nnodes ?? (slurm ? Number(env.SLURM_STEP_NUM_NODES) : 1);
  const nodeRank = o.nodeRank ?? (slurm ? Number(env.SLURM_NODEID ?? 0) : 0);
  const masterAddr = o.masterAddr ?? env.MASTER_ADDR ?? '127.0.0.1';
  const masterPort = o.masterPort ?? Number(env.MASTER_PORT ?? 29500);
  const { nproc } = o;
  if (!(Number.isInteger(nproc) && nproc >= 1)) throw new Error(`launch: --nproc must be a positive integer, got ${nproc}`);
  if (!(Number.isInteger(nnodes) && nnodes >= 1)) throw new Error(`launch: --nnodes must be a positive integer, got ${nnodes}`);
  if (!(Number.isInteger(nodeRank) && nodeRank >= 0 && nodeRank < nnodes)) throw new Error(`launch: --node-rank ${nodeRank} is not in [0, ${nnodes})`);
  if (!(Number.isInteger(masterPort) && masterPort >= 1 && masterPort <= 65535)) throw new Error(`launch: --master-port must be a TCP port, got ${masterPort}`);
  if (nnodes > 1 && isLoopback(masterAddr)) throw new Error(`launch: with --nnodes ${nnodes}, --master-addr must be node 0's address reachable from every node, not ${masterAddr}`);
  if (o.command.length === 0) throw new Error(`launch: no command given\n${LAUNCH_USAGE}`);
  if (nodeRank === 0) await checkPortFree(masterAddr, masterPort);
  const worldSize = nnodes * nproc;
  // a run id shared by this node's ranks guards against joining a foreign run on the same port
  const runId = env.LAVENDER_RUN_ID ?? (nnodes === 1 ? randomBytes(8).toString('hex') : env.SLURM_JOB_ID);
  const children: ChildProcess[] = [];
  let failure: { rank: number; code: number | null; signal: NodeJS.Signals | null } | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const stopAll = (signal: NodeJS.Signals) => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    if (!killTimer) {
      killTimer = setTimeout(() => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }, (o.killGraceSeconds ?? 5) * 1000);
      killTimer.unref();
    }
  };
  const onSignal = (sig: NodeJS.Signals) => {
    failure ??= { rank: -1, code: null, signal: sig };
    stopAll(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const exits = [];
    for (let local = 0; local < nproc; local++) {
      const rank = nodeRank * nproc + local;
      const childEnv: NodeJS.ProcessEnv = {
        ...env,
        RANK: String(rank), LOCAL_RANK: String(local), WORLD_SIZE: String(worldSize), LOCAL_WORLD_SIZE: String(nproc),
        GROUP_RANK: String(nodeRank), MASTER_ADDR: masterAddr, MASTER_PORT: String(masterPort),
        ...(runId ? { LAVENDER_RUN_ID: runId } : {}),
      };
      const c = spawn(o.command[0]!, o.command.slice(1), { env: childEnv, stdio: 'inherit' });
      children.push(c);
      exits.push(new Promise<void>((resolve) => {
        c.once('error', (e) => {
          log(`launch: rank ${rank} could not start '${o.command[0]}': ${e.message}`);
          failure ??= { rank, code: 127, signal: null };
          stopAll('SIGTERM');
          resolve();
        });
        c.once('exit', (code, signal) => {
          if ((code !== 0 || signal) && !failure) {
            failure = { rank, code, signal };
            log(`launch: rank ${rank} (pid ${c.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}; stopping the other ranks`);
            stopAll('SIGTERM');
          }
          resolve();
        });
      }));
    }
    await Promise.all(exits);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (killTimer) clearTimeout(killTimer);
  }
  const f = failure as { rank: number; code: number | null; signal: NodeJS.Signals | null } | null;
  if (!f) return 0;
  return f.code && f.code > 0 ? f.code : 1;
}

/** `lavender launch ...`: flags up to the first non-flag argument (or `--`), then the command. */
export async function launchCommand(argv: readonly string[]): Promise<number> {
  const o: Partial<LaunchOptions> = {};
  let i = 0;
  const int = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n)) throw new Error(`launch: ${name} expects an integer, got ${v === undefined ? 'nothing' : `'${v}'`}`);
    return n;
  };
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('--')) break;
    const [name, inline] = a.split('=', 2) as [string, string | undefined];
    const value = () => inline ?? argv[++i];
    switch (name) {
      case '--nproc': case '--nproc-per-node': case '--nproc_per_node': o.nproc = int(name, value()); break;
      case '--nnodes': o.nnodes = int(name, value()); break;
      case '--node-rank': case '--node_rank': o.nodeRank = int(name, value()); break;
      case '--master-addr': case '--master_addr': o.masterAddr = value(); break;
      case '--master-port': case '--master_port': o.masterPort = int(name, value()); break;
      case '--help': process.stdout.write(LAUNCH_USAGE); return 0;
      default: throw new Error(`launch: unknown option ${name}\n${LAUNCH_USAGE}`);
    }
  }
  if (o.nproc === undefined) throw new Error(`launch: --nproc N is required\n${LAUNCH_USAGE}`);
  return launch({ ...(o as LaunchOptions), command: argv.slice(i) });
}

/** `lavender consolidate CKPT [--out FILE]`. */
export function consolidateCommand(p: Parsed): number {
  const ckpt = p.positionals[1];
  if (!ckpt) throw new Error('consolidate: usage: lavender consolidate CHECKPOINT.safetensors [--out FILE]');
  const out = stringFlag(p, 'out', ckpt.replace(/\.safetensors$/, '') + '.consolidated.safetensors');
  prepareOutputFile(out);
  const r = consolidate(ckpt, out);
  process.stderr.write(`consolidated ${r.worldSize} ZeRO stage ${r.stage} shards of step ${r.step} into ${out} (loads at any world size)\n`);
  return 0;
}

// The rendezvous store: rank 0 hosts a TCP server on MASTER_ADDR:MASTER_PORT; every rank (rank 0 too,
// through the same protocol) joins with its rank, world size, a hash of its run configuration and the
// information the others need from it (its CPU-transport address, or on rank 0 the NCCL unique id).
// When all ranks have joined and agree, each gets the table of every rank's information. A disagreement
// (world size, configuration, duplicate rank) fails the rendezvous for every rank with one message naming
// the ranks involved; a rank that disconnects or never arrives fails it too (with a timeout), never a hang.
//
// Wire format: one JSON object per line. Client -> server: {op: 'join', rank, worldSize, configHash,
// config, info}. Server -> client: {ok: true, members: [info of rank 0, 1, ...]} or {ok: false, error}.
import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';

export type MemberInfo = Record<string, unknown>;

export interface JoinRequest {
  rank: number;
  worldSize: number;
  configHash: string;
  /** The configuration itself (flat JSON), used to name the fields that differ. */
  config: Record<string, unknown>;
  info: MemberInfo;
}

/** sha256 of a canonical JSON rendering (keys sorted), first 16 hex digits. */
export function configHash(config: Record<string, unknown>): string {
  return createHash('sha256').update(canonical(config)).digest('hex').slice(0, 16);
}

function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

function diffKeys(a: Record<string, unknown>, b: Record<string, unknown>): string {
  const keys = [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])].sort();
  const diffs = keys.filter((k) => canonical(a?.[k]) !== canonical(b?.[k])).map((k) => `${k}: ${canonical(b?.[k])} vs ${canonical(a?.[k])}`);
  return diffs.length ? diffs.join(', ') : 'no visible field differs (a different lavender build?)';
}

/** Read newline-delimited JSON from a socket. */
function onLines(socket: Socket, fn: (msg: Record<string, unknown>) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        socket.destroy();
        return;
      }
      fn(msg);
    }
  });
}

const send = (s: Socket, msg: unknown) => {
  if (!s.destroyed) s.write(`${JSON.stringify(msg)}\n`);
};

/** The server rank 0 hosts. It checks every join against rank 0's world size and configuration. */
export class RendezvousServer {
  private readonly joined = new Map<number, { socket: Socket; req: JoinRequest }>();
  private failure: string | null = null;
  private done = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, readonly host: string, readonly port: number, private readonly expect: JoinRequest, timeoutMs: number) {
    this.timer = setTimeout(() => {
      const missing = [...Array(expect.worldSize).keys()].filter((r) => !this.joined.has(r));
      this.fail(`rendezvous at ${host}:${port} timed out after ${timeoutMs / 1000} s: ${this.joined.size} of ${expect.worldSize} ranks joined; missing rank(s) ${missing.join(', ')} (were they started? same MASTER_ADDR/MASTER_PORT?)`);
    }, timeoutMs);
    this.timer.unref();
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        this.sockets.delete(socket);
        for (const [r, j] of this.joined) {
          if (j.socket === socket && !this.done) this.fail(`rank ${r} disconnected during the rendezvous (it exited or crashed)`);
        }
      });
      onLines(socket, (msg) => this.onJoin(socket, msg as unknown as JoinRequest));
    });
  }

  /** Listen on host:port; a port in use is a clear error. */
  static listen(host: string, port: number, expect: JoinRequest, timeoutMs: number): Promise<RendezvousServer> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE') reject(new Error(`rendezvous: MASTER_PORT ${port} on ${host} is already in use (another run or program holds it); choose another with --master-port or MASTER_PORT`));
        else if (e.code === 'EADDRNOTAVAIL') reject(new Error(`rendezvous: MASTER_ADDR ${host} is not an address of this machine, so rank 0 cannot host the store there`));
        else reject(new Error(`rendezvous: cannot listen on ${host}:${port}: ${e.message}`));
      });
      server.listen({ host, port, exclusive: true }, () => {
        const addr = server.address();
        const actual = typeof addr === 'object' && addr ? addr.port : port;
        resolve(new RendezvousServer(server, host, actual, expect, timeoutMs));
      });
    });
  }

  private onJoin(socket: Socket, req: JoinRequest): void {
    const W = this.expect.worldSize;
    if (this.failure) return send(socket, { ok: false, error: this.failure });
    if (this.done) return send(socket, { ok: false, error: `the rendezvous at ${this.host}:${this.port} is already complete (world size ${W}); is another run using this MASTER_PORT?` });
    if (!Number.isInteger(req.rank) || !Number.isInteger(req.worldSize)) return send(socket, { ok: false, error: 'malformed join request' });
    this.joined.set(req.rank, { socket, req });
    if (req.worldSize !== W) return this.fail(`world sizes disagree: rank ${req.rank} was started with WORLD_SIZE ${req.worldSize} but rank 0 with ${W}`);
    if (req.rank < 0 || req.rank >= W) return this.fail(`rank ${req.rank} is outside [0, ${W})`);
    const dup = [...this.joined.values()].filter((j) => j.req.rank === req.rank && j.socket !== socket);
    if (dup.length) return this.fail(`two processes joined as rank ${req.rank}`);
    if (req.configHash !== this.expect.configHash) {
      return this.fail(`configurations disagree: rank ${req.rank}'s run configuration (hash ${req.configHash}) differs from rank 0's (hash ${this.expect.configHash}): ${diffKeys(this.expect.config, req.config)} (rank ${req.rank} vs rank 0)`);
    }
    if (this.joined.size === W) {
      this.done = true;
      if (this.timer) clearTimeout(this.timer);
      const members = [...Array(W).keys()].map((r) => this.joined.get(r)!.req.info);
      for (const j of this.joined.values()) send(j.socket, { ok: true, members });
    }
  }

  private fail(msg: string): void {
    if (this.failure || this.done) return;
    this.failure = msg;
    if (this.timer) clearTimeout(this.timer);
    for (const j of this.joined.values()) send(j.socket, { ok: false, error: msg });
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}

export interface RendezvousResult {
  members: MemberInfo[];
  /** Close the store connection (and, on rank 0, the server). */
  close(): void;
}

/**
 * Join the rendezvous at host:port (rank 0 first starts the server there). Resolves with every rank's info
 * once all worldSize ranks have joined with the same world size and configuration; rejects with a message
 * naming the problem otherwise, or after timeoutMs.
 */
export async function rendezvous(host: string, port: number, req: JoinRequest, timeoutMs: number): Promise<RendezvousResult> {
  let server: RendezvousServer | null = null;
  if (req.rank === 0) server = await RendezvousServer.listen(host, port, req, timeoutMs);
  const deadline = Date.now() + timeoutMs + (req.rank === 0 ? 2000 : 0);
  try {
    const socket = await connectWithRetry(host, port, deadline);
    const members = await new Promise<MemberInfo[]>((resolve, reject) => {
      const left = Math.max(1, deadline - Date.now());
      const timer = setTimeout(() => reject(new Error(`rendezvous at ${host}:${port} timed out after ${timeoutMs / 1000} s waiting for the other ranks (rank ${req.rank} of ${req.worldSize})`)), left + (req.rank === 0 ? 0 : 2000));
      socket.on('error', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        reject(new Error(`rendezvous: the store at ${host}:${port} (hosted by rank 0) closed the connection before every rank had joined (rank 0 exited or failed?)`));
      });
      onLines(socket, (msg) => {
        clearTimeout(timer);
        if (msg.ok) resolve(msg.members as MemberInfo[]);
        else reject(new Error(`rendezvous failed: ${String(msg.error)}`));
      });
      send(socket, req);
    }).catch((e) => {
      socket.destroy();
      throw e;
    });
    socket.removeAllListeners('close');
    const srv = server;
    return {
      members,
      close() {
        socket.destroy();
        srv?.close();
      },
    };
  } catch (e) {
    // let a failing rank 0 answer late joiners for a moment, so they print the same reason instead of timing out
    if (server) {
      const s = server;
      setTimeout(() => s.close(), 1500).unref();
    }
    throw e;
  }
}

function connectWithRetry(host: string, port: number, deadline: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.removeAllListeners('error');
        s.setNoDelay(true);
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        s.destroy();
        if (Date.now() + 100 < deadline && (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EHOSTUNREACH' || e.code === 'ETIMEDOUT')) {
          setTimeout(attempt, 100);
        } else {
          reject(new Error(`rendezvous: could not reach the store at ${host}:${port} (hosted by rank 0): ${e.code ?? e.message}; is rank 0 running with the same MASTER_ADDR/MASTER_PORT?`));
        }
      });
    };
    attempt();
  });
}

// The CPU transport: a full mesh of loopback (or LAN) TCP connections between the ranks, one per pair,
// and deterministic collectives on host arrays (float32 or float64).
//
// Determinism: a reduction of chunk c is computed by exactly one rank (its owner, rank c), which adds the
// N contributions in rank order 0, 1, ..., N-1 in float64 and rounds once; the result is then sent to the
// others. So every rank ends with the same bits, independent of message timing, and allReduce is
// reduceScatter followed by allGather (2x the data per rank instead of N x).
//
// Failure: every collective has a deadline (LAVENDER_DIST_TIMEOUT seconds, default 60, counted from when
// this rank is free to wait: see run()). A timeout names
// the ranks that did not deliver; a closed connection names the rank that died. Either way the group is
// aborted: this rank tells its peers why (so they fail at once with the same reason) and closes its sockets;
// every later collective throws the same error. Nothing waits forever.
//
// Frames: 16-byte header [magic u32 'LAVD'][seq u32][kind u8][op u8][phase u16][nbytes u32] + payload.
// seq numbers the collectives of this group in the order this rank starts them; phase tells the steps of
// one collective apart (allReduce: reduce-scatter 0, all-gather 1). Several collectives may be in flight at
// once (ZeRO starts bucket reductions during the backward): a received frame is matched to its collective
// by (seq, phase), so they complete independently. A peer whose frame for the same (seq, phase) names
// another operation is an error ("collectives called in a different order on different ranks").
// bytesSent counts the payload bytes this rank has sent (the communication volume `lavender info` predicts).
import { connect, createServer, type Server, type Socket } from 'node:net';

const MAGIC = 0x4c415644;
const KIND_DATA = 1, KIND_ABORT = 2, KIND_HELLO = 3, KIND_PROGRESS = 4;
export type HostArray = Float32Array | Float64Array;
export type ReduceOp = 'sum' | 'avg';
const OPS = ['allReduce', 'reduceScatter', 'allGather', 'broadcast', 'barrier'] as const;
type OpName = (typeof OPS)[number];

interface Frame {
  seq: number;
  kind: number;
  /** op index for data frames */
  op: number;
  phase: number;
  payload: Buffer;
}

type Waiter = { resolve: (f: Frame) => void; reject: (e: Error) => void };
const keyOf = (seq: number, phase: number) => `${seq}:${phase}`;

class Peer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Data frames received before their collective asked for them, by (seq, phase). */
  readonly frames = new Map<string, Frame>();
  /** Collectives waiting for this peer's frame, by (seq, phase). */
  readonly waiters = new Map<string, Waiter>();
  error: Error | null = null;
  constructor(readonly rank: number, readonly socket: Socket, private readonly onFrame: (p: Peer, f: Frame) => void, private readonly onClose: (p: Peer) => void) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.data(d));
    socket.on('error', () => {});
    socket.on('close', () => this.onClose(this));
  }
  private data(d: Buffer): void {
    this.chunks.push(d);
    this.buffered += d.length;
    for (;;) {
      if (this.buffered < 16) return;
      let all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const n = all.readUInt32LE(12);
      if (all.readUInt32LE(0) !== MAGIC) {
        this.socket.destroy(new Error('bad frame'));
        return;
      }
      if (all.length < 16 + n) {
        this.chunks = [all];
        return;
      }
      const f: Frame = { seq: all.readUInt32LE(4), kind: all.readUInt8(8), op: all.readUInt8(9), phase: all.readUInt16LE(10), payload: all.subarray(16, 16 + n) };
      all = all.subarray(16 + n);
      this.chunks = all.length ? [all] : [];
      this.buffered = all.length;
      this.onFrame(this, f);
    }
  }
  /** Reject every waiting collective (the peer or the group failed). */
  failWaiters(e: Error): void {
    const ws = [...this.waiters.values()];
    this.waiters.clear();
    for (const w of ws) w.reject(e);
  }
  send(seq: number, kind: number, op: number, payload: Uint8Array, phase = 0): boolean {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(MAGIC, 0);
    h.writeUInt32LE(seq >>> 0, 4);
    h.writeUInt8(kind, 8);
    h.writeUInt8(op, 9);
    h.writeUInt16LE(phase, 10);
    h.writeUInt32LE(payload.byteLength, 12);
    if (!this.socket.destroyed && this.socket.writable) {
      this.socket.write(h);
      this.socket.write(payload);
      return true;
    }
    return false;
  }
}

function bytesOf(a: HostArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function arrayFrom(b: Buffer, like: HostArray, n: number): HostArray {
  const bpe = like.BYTES_PER_ELEMENT;
  if (b.length !== n * bpe) throw new Error(`expected ${n * bpe} bytes, got ${b.length}`);
  const copy = new Uint8Array(b.length);
  copy.set(b);
  return like instanceof Float64Array ? new Float64Array(copy.buffer) : new Float32Array(copy.buffer);
}

function timeoutDefault(): number {
  const v = process.env.LAVENDER_DIST_TIMEOUT;
  if (v === undefined || v === '') return 60_000;
  const s = Number(v);
  if (!(Number.isFinite(s) && s > 0)) throw new Error(`LAVENDER_DIST_TIMEOUT must be a positive number of seconds, got '${v}'`);
  return s * 1000;
}

export { timeoutDefault as defaultTimeoutMs };

export interface MeshAddress {
  host: string;
  port: number;
}

/**
 * Connections that arrive between listenMesh and CpuTransport.connect. A faster rank can finish the rendezvous
 * and dial this one before it has finished its own; a 'connection' event with no listener would drop that
 * socket, and this rank would then wait out the timeout for a peer that had already connected.
 */
const earlyConnections = new WeakMap<Server, { sockets: Socket[]; hold: (s: Socket) => void }>();

/** A listening socket for the mesh, opened before the rendezvous so its port can be published. */
export async function listenMesh(host: string): Promise<{ server: Server; address: MeshAddress }> {
  const server = createServer();
  const early = { sockets: [] as Socket[], hold: (s: Socket) => {
    s.on('error', () => {});
    early.sockets.push(s); // paused: its bytes wait in the socket until connect() reads them
  } };
  earlyConnections.set(server, early);
  server.on('connection', early.hold);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`cpu transport: cannot listen on ${host}: ${e.message}`)));
    server.listen({ host, port: 0 }, () => resolve());
  });
  const a = server.address();
  if (!a || typeof a !== 'object') throw new Error('cpu transport: no listening address');
  return { server, address: { host, port: a.port } };
}

export class CpuTransport {
  private readonly peers: (Peer | null)[];
  private seq = 0;
  private broken: Error | null = null;
  /** Per collective in flight (by seq): the ranks whose frames it still waits for (named on a timeout). */
  private readonly pendingFrom = new Map<number, Set<number>>();
  readonly timeoutMs: number;
  /** Payload bytes this rank has sent in collectives. */
  bytesSent = 0;
  /**
   * Watchers for a group that runs its collectives elsewhere (NCCL) and uses this mesh to learn of failures:
   * onPeerLost when a peer's connection closes, onAbort when the group is aborted (here or by a peer).
   */
  onPeerLost: ((rank: number, e: Error) => void) | null = null;
  onAbort: ((e: Error) => void) | null = null;
  /** The last collective number each peer announced (announce()). */
  private readonly progress: number[];

  private constructor(readonly rank: number, readonly worldSize: number, private readonly server: Server | null, timeoutMs?: number) {
    this.peers = new Array(worldSize).fill(null);
    this.progress = new Array(worldSize).fill(0);
    this.timeoutMs = timeoutMs ?? timeoutDefault();
  }

  /** A one-rank transport: every collective is a copy. */
  static single(): CpuTransport {
    return new CpuTransport(0, 1, null);
  }

  /**
   * Connect the mesh: rank r dials every rank below it (sending a hello with its rank and the run's nonce)
   * and accepts the ranks above it on `server`.
   */
  static async connect(rank: number, addresses: readonly MeshAddress[], server: Server, nonce: string, timeoutMs?: number): Promise<CpuTransport> {
    const N = addresses.length;
    const t = new CpuTransport(rank, N, server, timeoutMs);
    const deadline = Date.now() + t.timeoutMs;
    const pending = new Map<number, Socket>();
    await new Promise<void>((resolve, reject) => {
      let missing = N - 1;
      const timer = setTimeout(() => {
        const absent = [...Array(N).keys()].filter((r) => r !== rank && !t.peers[r]);
        reject(new Error(`cpu transport: rank ${rank} could not connect to rank(s) ${absent.join(', ')} within ${t.timeoutMs / 1000} s`));
      }, Math.max(1, deadline - Date.now()));
      const done = () => {
        if (--missing === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      if (missing === 0) {
        clearTimeout(timer);
        resolve();
      }
      const adopt = (r: number, s: Socket) => {
        s.removeAllListeners('data');
        const p = new Peer(r, s, (pp, f) => t.onFrame(pp, f), (pp) => t.onPeerClose(pp));
        t.peers[r] = p;
        done();
      };
      const onConnection = (s: Socket) => {
        s.on('error', () => {});
        let buf = Buffer.alloc(0);
        const onData = (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length < 16) return;
          const n = buf.readUInt32LE(12);
          if (buf.length < 16 + n) return;
          s.off('data', onData);
          const ok = buf.readUInt32LE(0) === MAGIC && buf.readUInt8(8) === KIND_HELLO;
          let hello: { rank?: number; nonce?: string } = {};
          try {
            hello = ok ? JSON.parse(buf.subarray(16, 16 + n).toString('utf8')) : {};
          } catch { /* rejected below */ }
          const r = hello.rank;
          if (!ok || hello.nonce !== nonce || typeof r !== 'number' || r <= rank || r >= N || t.peers[r]) {
            s.destroy();
            return;
          }
          if (buf.length > 16 + n) s.unshift(buf.subarray(16 + n));
          adopt(r, s);
        };
        s.on('data', onData);
      };
      const early = earlyConnections.get(server);
      if (early) {
        server.off('connection', early.hold);
        earlyConnections.delete(server);
      }
      server.on('connection', onConnection);
      for (const s of early?.sockets ?? []) onConnection(s);
      for (let r = 0; r < rank; r++) {
        const a = addresses[r]!;
        const tryConnect = () => {
          const s = connect({ host: a.host, port: a.port });
          s.once('error', (e: NodeJS.ErrnoException) => {
            s.destroy();
            if (Date.now() + 100 < deadline && e.code === 'ECONNREFUSED') setTimeout(tryConnect, 100);
            else reject(new Error(`cpu transport: rank ${rank} cannot connect to rank ${r} at ${a.host}:${a.port}: ${e.code ?? e.message}`));
          });
          s.once('connect', () => {
            s.removeAllListeners('error');
            pending.set(r, s);
            const hello = Buffer.from(JSON.stringify({ rank, nonce }), 'utf8');
            const h = Buffer.alloc(16);
            h.writeUInt32LE(MAGIC, 0);
            h.writeUInt8(KIND_HELLO, 8);
            h.writeUInt32LE(hello.length, 12);
            s.write(Buffer.concat([h, hello]));
            adopt(r, s);
          });
        };
        tryConnect();
      }
    }).catch((e) => {
      for (const s of pending.values()) s.destroy();
      t.destroy();
      throw e;
    });
    return t;
  }

  private onFrame(p: Peer, f: Frame): void {
    if (f.kind === KIND_ABORT) {
      this.abort(new Error(`rank ${p.rank} aborted the group: ${f.payload.toString('utf8')}`), false);
      return;
    }
    if (f.kind === KIND_PROGRESS) {
      this.progress[p.rank] = Math.max(this.progress[p.rank]!, f.seq);
      return;
    }
    const key = keyOf(f.seq, f.phase);
    const w = p.waiters.get(key);
    if (w) {
      p.waiters.delete(key);
      w.resolve(f);
    } else p.frames.set(key, f);
  }

  private onPeerClose(p: Peer): void {
    if (p.error) return;
    p.error = new Error(`rank ${p.rank} closed its connection (the process died or exited)`);
    p.failWaiters(p.error);
    this.onPeerLost?.(p.rank, p.error);
  }

  /** Tell every peer this rank has started collective number n (elsewhere, e.g. on NCCL). */
  announce(n: number): void {
    for (const p of this.peers) if (p && !p.error) p.send(n, KIND_PROGRESS, 0, new Uint8Array(0));
  }

  /** The ranks whose last announced collective is below n (who a stuck collective waits for). */
  ranksBehind(n: number): number[] {
    return this.progress.flatMap((s, r) => (r !== this.rank && s < n ? [r] : []));
  }

  /** Abort the group with this error (peers are told why), as a failing collective does. */
  fail(err: Error): void {
    this.abort(err);
  }

  private recv(r: number, seq: number, op: OpName, phase = 0): Promise<Buffer> {
    const p = this.peers[r]!;
    const check = (f: Frame): Buffer => {
      if (f.op !== OPS.indexOf(op)) {
        throw new Error(`collectives out of order: this rank (${this.rank}) runs ${op} #${seq} but rank ${r} sent ${OPS[f.op] ?? '?'} #${f.seq}; every rank must call the same collectives in the same order`);
      }
      return f.payload;
    };
    const key = keyOf(seq, phase);
    const early = p.frames.get(key);
    if (early) {
      p.frames.delete(key);
      return Promise.resolve().then(() => check(early));
    }
    if (p.error) return Promise.reject(p.error);
    const waiting = this.pendingFrom.get(seq);
    waiting?.add(r);
    return new Promise<Frame>((resolve, reject) => {
      p.waiters.set(key, { resolve, reject });
    }).then((f) => {
      waiting?.delete(r);
      return check(f);
    });
  }

  /** Abort the group: remember the error, tell the peers (unless they told us), close every socket. */
  private abort(err: Error, notify = true): void {
    if (this.broken) return;
    this.broken = err;
    this.onAbort?.(err);
    for (const p of this.peers) {
      if (!p) continue;
      if (notify && !p.error) p.send(this.seq, KIND_ABORT, 0, Buffer.from(`rank ${this.rank}: ${err.message}`, 'utf8'));
      p.socket.end();
      setTimeout(() => p.socket.destroy(), 200).unref();
      p.failWaiters(err);
    }
  }

  /** Run one collective with the group's deadline; any failure aborts the group. */
  private run<T>(op: OpName, fn: (seq: number) => Promise<T>): Promise<T> {
    if (this.broken) return Promise.reject(new Error(`lavender dist: ${op} on rank ${this.rank}: the process group was aborted earlier: ${this.broken.message}`));
    const seq = ++this.seq;
    const waiting = new Set<number>();
    this.pendingFrom.set(seq, waiting);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      // The deadline counts from when this rank is free to wait: a collective started from a gradient hook
      // runs on while the rest of the backward keeps the thread busy, and the peers' data waits in the
      // socket meanwhile. setImmediate runs once the event loop turns again.
      setImmediate(() => {
        if (settled) return;
        // on expiry, read what the sockets hold first (one poll phase): a process that was itself stopped
        // finds its peers' news (an abort, a closed connection) there rather than blaming them for the wait
        timer = setTimeout(() => setImmediate(() => {
          if (settled) return;
          const missing = [...waiting].sort((a, b) => a - b);
          const who = missing.length ? `rank(s) ${missing.join(', ')}` : 'the other ranks';
          const err = new Error(`lavender dist: ${op} #${seq} on rank ${this.rank} timed out after ${this.timeoutMs / 1000} s waiting for ${who} (stuck or dead; LAVENDER_DIST_TIMEOUT sets the limit)`);
          settled = true;
          this.abort(err);
          reject(err);
        }), this.timeoutMs);
      });
      fn(seq).then(
        (v) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.pendingFrom.delete(seq);
          resolve(v);
        },
        (e: Error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.pendingFrom.delete(seq);
          const err = this.broken && e === this.broken ? e : new Error(`lavender dist: ${op} #${seq} on rank ${this.rank} failed: ${e.message}`);
          this.abort(err);
          reject(err);
        },
      );
    });
  }

  private sendTo(r: number, seq: number, op: OpName, data: Uint8Array, phase = 0): void {
    const p = this.peers[r]!;
    if (p.error) throw p.error;
    if (p.send(seq, KIND_DATA, OPS.indexOf(op), data, phase)) this.bytesSent += data.byteLength;
  }

  /** input has worldSize * c elements; returns this rank's chunk (c elements) reduced over ranks in rank order. */
  reduceScatter(input: HostArray, op: ReduceOp = 'sum'): Promise<HostArray> {
    const N = this.worldSize;
    if (input.length % N !== 0) return Promise.reject(new Error(`reduceScatter: input length ${input.length} is not a multiple of the world size ${N}`));
    if (N === 1) return Promise.resolve(input.slice());
    return this.run('reduceScatter', (seq) => this.reduceScatterPhase(seq, 'reduceScatter', input, op));
  }

  private async reduceScatterPhase(seq: number, name: OpName, input: HostArray, op: ReduceOp): Promise<HostArray> {
    const N = this.worldSize, c = input.length / N;
    for (let r = 0; r < N; r++) if (r !== this.rank) this.sendTo(r, seq, name, bytesOf(input.subarray(r * c, (r + 1) * c)));
    const parts = await Promise.all([...Array(N).keys()].map(async (r) => (r === this.rank ? input.subarray(r * c, (r + 1) * c) : arrayFrom(await this.recv(r, seq, name), input, c))));
    const acc = new Float64Array(c);
    for (const part of parts) for (let i = 0; i < c; i++) acc[i]! += part[i]!;
    if (op === 'avg') for (let i = 0; i < c; i++) acc[i]! /= N;
    return input instanceof Float64Array ? acc : Float32Array.from(acc);
  }

  /** Every rank's input (same length) concatenated in rank order. */
  allGather(input: HostArray): Promise<HostArray> {
    if (this.worldSize === 1) return Promise.resolve(input.slice());
    return this.run('allGather', (seq) => this.allGatherPhase(seq, 'allGather', input));
  }

  private async allGatherPhase(seq: number, name: OpName, input: HostArray, phase = 0): Promise<HostArray> {
    const N = this.worldSize, c = input.length;
    for (let r = 0; r < N; r++) if (r !== this.rank) this.sendTo(r, seq, name, bytesOf(input), phase);
    const out = input instanceof Float64Array ? new Float64Array(N * c) : new Float32Array(N * c);
    const parts = await Promise.all([...Array(N).keys()].map(async (r) => (r === this.rank ? input : arrayFrom(await this.recv(r, seq, name, phase), input, c))));
    parts.forEach((part, r) => out.set(part, r * c));
    return out;
  }

  /** reduceScatter of the (zero-padded) array, then allGather: identical bits on every rank. */
  async allReduce(x: HostArray, op: ReduceOp = 'sum'): Promise<HostArray> {
    const N = this.worldSize;
    if (N === 1) return x.slice();
    const padded = Math.ceil(x.length / N) * N;
    let inp = x;
    if (padded !== x.length) {
      inp = x instanceof Float64Array ? new Float64Array(padded) : new Float32Array(padded);
      inp.set(x);
    }
    return this.run('allReduce', async (seq) => {
      // two phases under one sequence number
      const mine = await this.reduceScatterPhase(seq, 'allReduce', inp, op);
      const all = await this.allGatherPhase(seq, 'allReduce', mine, 1);
      return all.subarray(0, x.length) as HostArray;
    });
  }

  broadcast(x: HostArray, root = 0): Promise<HostArray> {
    const N = this.worldSize;
    if (!(Number.isInteger(root) && root >= 0 && root < N)) return Promise.reject(new Error(`broadcast: root ${root} is not a rank in [0, ${N})`));
    if (N === 1) return Promise.resolve(x.slice());
    return this.run('broadcast', async (seq) => {
      if (this.rank === root) {
        for (let r = 0; r < N; r++) if (r !== root) this.sendTo(r, seq, 'broadcast', bytesOf(x));
        return x.slice();
      }
      return arrayFrom(await this.recv(root, seq, 'broadcast'), x, x.length);
    });
  }

  barrier(): Promise<void> {
    if (this.worldSize === 1) return Promise.resolve();
    return this.run('barrier', async (seq) => {
      for (let r = 0; r < this.worldSize; r++) if (r !== this.rank) this.sendTo(r, seq, 'barrier', new Uint8Array(0));
      await Promise.all([...Array(this.worldSize).keys()].filter((r) => r !== this.rank).map((r) => this.recv(r, seq, 'barrier')));
    });
  }

  /** Close every connection (idempotent). */
  destroy(): void {
    if (!this.broken) this.broken = new Error('the process group was destroyed');
    for (const p of this.peers) {
      if (!p) continue;
      p.error ??= new Error('destroyed');
      p.socket.destroy();
    }
    this.server?.close();
  }
}

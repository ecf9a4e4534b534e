// Random-access bytes for the checkpoint readers: a file read at offsets (never whole, so files beyond
// the 2 GiB a single read or Buffer can hold work, and memory stays at one chunk) or bytes already in memory.
// And the other direction: a sink that streams chunks to a temporary file renamed into place at the end.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface ByteSource {
  /** Names the file (or '<buffer>') in error messages. */
  readonly name: string;
  readonly size: number;
  /** `length` bytes at `offset`; fewer only past the end of the source. */
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

/** Bytes in memory as a source (reads are views, not copies). */
export function memorySource(bytes: Uint8Array, name = '<buffer>'): ByteSource {
  return {
    name,
    size: bytes.length,
    read: (offset, length) => bytes.subarray(offset, Math.min(bytes.length, offset + length)),
    close: () => {},
  };
}

/** Largest single readSync: Node rejects lengths over 2^31 - 1. */
const MAX_READ = 1 << 30;

/** A file opened for positional reads; `what` names the kind of file in the open error. */
export function fileSource(path: string, what: string): ByteSource {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${path}: cannot read ${what}${code === 'ENOENT' ? ': no such file' : `: ${(e as Error).message}`}`);
  }
  const size = fstatSync(fd).size;
  let open = true;
  return {
    name: path,
    size,
    read(offset, length) {
      if (!open) throw new Error(`${path}: read after close`);
      const n = Math.max(0, Math.min(length, size - offset));
      const out = new Uint8Array(n);
      let done = 0;
      while (done < n) {
        const got = readSync(fd, out, done, Math.min(n - done, MAX_READ), offset + done);
        if (got === 0) return out.subarray(0, done); // the file shrank while we read it
        done += got;
      }
      return out;
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** Run `fn` with the source and close it afterwards, whatever happens. */
export function withSource<T>(src: ByteSource, fn: (s: ByteSource) => T): T {
  try {
    return fn(src);
  } finally {
    src.close();
  }
}

export interface ByteSink {
  write(chunk: Uint8Array): void;
  /** Bytes written so far. */
  readonly position: number;
}

/**
 * Stream chunks to `path` atomically: they go to a temporary file in the same directory, which is fsynced
 * and renamed over the target only when `fill` returns; if it throws, the temporary file is removed and
 * the target is untouched.
 */
export function writeFileStreamed(path: string, fill: (sink: ByteSink) => void): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    const f = fd;
    let position = 0;
    const sink: ByteSink = {
      write(c) {
        let done = 0;
        while (done < c.length) done += writeSync(f, c, done, Math.min(c.length - done, MAX_READ));
        position += c.length;
      },
      get position() {
        return position;
      },
    };
    fill(sink);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try { closeSync(fd); } catch { /* already failing */ }
    }
    try { unlinkSync(tmp); } catch { /* may not exist */ }
    throw e;
  }
  // Make the rename itself durable; not every platform lets a directory be fsynced.
  try {
    const dfd = openSync(dirname(path), 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* best effort */ }
}

/** Write `chunks` to `path` atomically (see writeFileStreamed). */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  writeFileStreamed(path, (sink) => {
    for (const c of chunks) sink.write(c);
  });
}

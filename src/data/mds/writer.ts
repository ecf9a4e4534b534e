// Writing an MDS dataset as MosaicML's MDSWriter does (sorted columns, shards split at sizeLimit,
// optional gz/br compression, index.json last), each file written atomically.
import { mkdirSync, readdirSync } from 'node:fs';
import { writeFileAtomic } from '../../io/byte-source.js';
import { join } from 'node:path';
import { brotliCompressSync, constants as zlibConstants, gzipSync } from 'node:zlib';
import { OTHER_COMPRESSIONS, ZLIB_COMPRESSIONS, codePointCompare, describe, pyJsonDumps, utf8enc } from './format.js';
import { Codec, Column, concat, encodeColumn, isObject, naturalSize, parseEncoding } from './codecs.js';

// ---------------------------------------------------------------------------------------------------------------
// Writer

/**
 * A column of MdsWriter: an encoding string (MosaicML meaning), or {encoding, variable: true} for a scalar
 * encoding stored as a variable-size typed array (LavenderFlow's `uint8` raw-byte columns).
 */
export type MdsColumnSpec = string | { encoding: string; variable?: boolean };

export interface MdsWriterOptions {
  columns: Record<string, MdsColumnSpec>;
  /** Start a new shard before a sample would take the shard past this many bytes (default 1 << 26; null: one shard). */
  sizeLimit?: number | null;
  /** null (default), 'gz', 'gz:<0-9>', 'br' or 'br:<0-11>'. */
  compression?: string | null;
}


export class MdsWriter {
  readonly sizeLimit: number | null;
  readonly compression: string | null;
  private readonly cols: Column[];
  private readonly configData: Uint8Array;
  private readonly shardEntries: Record<string, unknown>[] = [];
  private pending: Uint8Array[] = [];
  private pendingSize: number;
  private written = 0;
  private finished = false;

  constructor(readonly dir: string, opts: MdsWriterOptions) {
    const fail = (msg: string): never => {
      throw new Error(`MdsWriter(${dir}): ${msg}`);
    };
    if (!opts || !isObject(opts.columns) || Object.keys(opts.columns).length === 0) fail('columns must be a non-empty {name: encoding} object');
    const { sizeLimit = 1 << 26, compression = null } = opts;
    if (sizeLimit !== null && (!Number.isSafeInteger(sizeLimit) || sizeLimit < 1)) fail(`sizeLimit must be a positive integer or null, got ${describe(sizeLimit)}`);
    if (compression !== null) {
      const [fam, lvl] = String(compression).split(':');
      const z = ZLIB_COMPRESSIONS[fam!];
      if (!z) {
        fail(`compression ${JSON.stringify(compression)} is not supported` + (OTHER_COMPRESSIONS.has(fam!) ? ` (Node 20 has no ${fam})` : '') + "; use null, 'gz' or 'br'");
      }
      if (lvl !== undefined && (!/^\d+$/.test(lvl) || Number(lvl) < z!.levels[0] || Number(lvl) > z!.levels[1])) fail(`compression level in ${JSON.stringify(compression)} must be in [${z!.levels.join(', ')}]`);
    }
    this.sizeLimit = sizeLimit;
    this.compression = compression;
    // MDSWriter stores columns sorted by name.
    this.cols = Object.keys(opts.columns).sort(codePointCompare).map((name) => {
      const spec = opts.columns[name];
      const encoding = typeof spec === 'string' ? spec : isObject(spec) ? spec.encoding : undefined;
      const variable = isObject(spec) && spec.variable === true;
      let codec: Codec;
      try {
        codec = parseEncoding(encoding);
      } catch (e) {
        return fail(`column "${name}": ${(e as Error).message}`);
      }
      if (codec.kind === 'pkl') fail(`column "${name}": the "pkl" encoding is not supported; lavender never pickles or unpickles data (use json)`);
      if (variable && codec.kind !== 'scalar') fail(`column "${name}": variable: true is for scalar encodings (a variable-size typed array); "${encoding}" is already variable-size or fixed by design`);
      return { name, encoding: encoding as string, codec, size: variable ? null : naturalSize(codec), array: variable };
    });
    mkdirSync(dir, { recursive: true });
    const present = readdirSync(dir);
    if (present.length) fail(`the directory is not empty (holds ${present.slice(0, 3).join(', ')}${present.length > 3 ? ', ...' : ''}); write a dataset into a new or empty directory`);
    const config = {
      column_encodings: this.cols.map((c) => c.encoding),
      column_names: this.cols.map((c) => c.name),
      column_sizes: this.cols.map((c) => c.size),
      compression: this.compression,
      format: 'mds',
      hashes: [],
      size_limit: this.sizeLimit,
      version: 2,
    };
    this.configData = utf8enc.encode(pyJsonDumps(config));
    this.pendingSize = this.emptyShardSize;
  }

  /** Column name -> encoding, in stored (sorted) order. */
  get columns(): Record<string, string> {
    return Object.fromEntries(this.cols.map((c) => [c.name, c.encoding]));
  }

  get samplesWritten(): number {
    return this.written;
  }

  get shardsWritten(): number {
    return this.shardEntries.length;
  }

  /** num_samples + first offset + the config JSON (MosaicML's extra_bytes_per_shard). */
  private get emptyShardSize(): number {
    return 8 + this.configData.length;
  }

  /** Encode and buffer a sample; writes the current shard first when the sample would take it past sizeLimit. */
  write(sample: Record<string, unknown>): void {
    if (this.finished) throw new Error(`MdsWriter(${this.dir}): write() after finish()`);
    if (!isObject(sample)) throw new Error(`MdsWriter(${this.dir}): a sample must be an object {column: value}, got ${describe(sample)}`);
    for (const k of Object.keys(sample)) {
      if (!this.cols.some((c) => c.name === k)) throw new Error(`MdsWriter(${this.dir}): sample ${this.written} has key "${k}", which is not a column (columns: ${this.cols.map((c) => c.name).join(', ')})`);
    }
    const heads: number[] = [];
    const bodies: Uint8Array[] = [];
    for (const col of this.cols) {
      if (!(col.name in sample)) throw new Error(`MdsWriter(${this.dir}): sample ${this.written} has no column "${col.name}"`);
      let b: Uint8Array;
      try {
        b = encodeColumn(col, sample[col.name]);
        if (col.size !== null && b.length !== col.size) throw new Error(`encoded to ${b.length} bytes, expected ${col.size}`);
        if (b.length > 0xffffffff) throw new Error(`${b.length} bytes is over the 4 GiB a uint32 length holds`);
      } catch (e) {
        throw new Error(`MdsWriter(${this.dir}): sample ${this.written}, column "${col.name}" (${col.encoding}${col.array ? ', variable-size array' : ''}): ${(e as Error).message}`);
      }
      if (col.size === null) heads.push(b.length);
      bodies.push(b);
    }
    const head = new Uint8Array(4 * heads.length);
    const dv = new DataView(head.buffer);
    heads.forEach((n, k) => dv.setUint32(4 * k, n, true));
    const data = concat([head, ...bodies]);
    const add = data.length + 4; // plus its offset entry
    if (this.emptyShardSize + add > 0xffffffff) throw new Error(`MdsWriter(${this.dir}): sample ${this.written} is ${data.length} bytes; a shard holds at most 4 GiB (uint32 offsets)`);
    if (this.pending.length && ((this.sizeLimit !== null && this.sizeLimit < this.pendingSize + add) || this.pendingSize + add > 0xffffffff)) this.flush();
    this.pending.push(data);
    this.pendingSize += add;
    this.written++;
  }

  private flush(): void {
    const n = this.pending.length;
    const head = new Uint8Array(4 * (n + 2));
    const dv = new DataView(head.buffer);
    dv.setUint32(0, n, true);
    let off = head.length + this.configData.length;
    for (let k = 0; k <= n; k++) {
      dv.setUint32(4 * (k + 1), off, true);
      if (k < n) off += this.pending[k]!.length;
    }
    const raw = concat([head, this.configData, ...this.pending]);
    const basename = `shard.${String(this.shardEntries.length).padStart(5, '0')}.mds`;
    let zip: Record<string, unknown> | null = null;
    if (this.compression) {
      const [fam, lvl] = this.compression.split(':');
      const z = fam === 'gz'
        ? gzipSync(raw, { level: lvl === undefined ? 9 : Number(lvl) })
        : brotliCompressSync(raw, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: lvl === undefined ? 11 : Number(lvl), [zlibConstants.BROTLI_PARAM_SIZE_HINT]: raw.length } });
      const zname = `${basename}.${ZLIB_COMPRESSIONS[fam!]!.ext}`;
      writeFileAtomic(join(this.dir, zname), [z]);
      zip = { basename: zname, bytes: z.length, hashes: {} };
    } else {
      writeFileAtomic(join(this.dir, basename), [raw]);
    }
    this.shardEntries.push({
      column_encodings: this.cols.map((c) => c.encoding),
      column_names: this.cols.map((c) => c.name),
      column_sizes: this.cols.map((c) => c.size),
      compression: this.compression,
      format: 'mds',
      hashes: [],
      raw_data: { basename, bytes: raw.length, hashes: {} },
      samples: n,
      size_limit: this.sizeLimit,
      version: 2,
      zip_data: zip,
    });
    this.pending = [];
    this.pendingSize = this.emptyShardSize;
  }

  /** Write the last shard and index.json (atomically: a temporary file renamed into place). */
  finish(): void {
    if (this.finished) throw new Error(`MdsWriter(${this.dir}): finish() called twice`);
    if (this.pending.length) this.flush();
    writeFileAtomic(join(this.dir, 'index.json'), [utf8enc.encode(pyJsonDumps({ shards: this.shardEntries, version: 2 }))]);
    this.finished = true;
  }
}


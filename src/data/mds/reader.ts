// Reading an MDS dataset: index.json validated, shards opened on first use (a few held open), samples
// decoded by column.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { OTHER_COMPRESSIONS, ZLIB_COMPRESSIONS, describe, utf8 } from './format.js';
import { Codec, Column, decodeColumn, isObject, naturalSize, parseEncoding } from './codecs.js';

// ---------------------------------------------------------------------------------------------------------------
// Reader

interface FileInfo {
  basename: string;
  bytes: number | null;
}

interface ShardInfo {
  index: number;
  samples: number;
  compression: string | null;
  raw: FileInfo;
  zip: FileInfo | null;
}

interface OpenShard {
  /** Path of the file the bytes come from (the decompressed one is named by its raw basename). */
  file: string;
  fd: number | null;
  mem: Uint8Array | null;
  offsets: Uint32Array;
}

export interface MdsOpenOptions {
  /** Shards held open (file descriptor and offset table; compressed shards are held decompressed). Default 4. */
  cacheShards?: number;
}


export class MdsDataset {
  /** Number of samples. */
  readonly length: number;
  /** Column name -> encoding, in the dataset's column order. */
  readonly columns: Readonly<Record<string, string>>;
  /** Column name -> fixed byte size, or null for variable-size columns. */
  readonly columnSizes: Readonly<Record<string, number | null>>;
  readonly numShards: number;
  private readonly cols: Column[];
  private readonly shards: ShardInfo[];
  /** starts[s] = dataset index of shard s's first sample; starts[numShards] = length. */
  private readonly starts: number[];
  private readonly cache = new Map<number, OpenShard>();
  private readonly cacheShards: number;

  /** @internal use openMds */
  constructor(readonly dir: string, readonly indexPath: string, cols: Column[], shards: ShardInfo[], opts: MdsOpenOptions) {
    this.cols = cols;
    this.shards = shards;
    this.columns = Object.fromEntries(cols.map((c) => [c.name, c.encoding]));
    this.columnSizes = Object.fromEntries(cols.map((c) => [c.name, c.size]));
    this.starts = [0];
    for (const s of shards) this.starts.push(this.starts[this.starts.length - 1]! + s.samples);
    this.length = this.starts[shards.length]!;
    this.numShards = shards.length;
    const cs = opts.cacheShards ?? 4;
    if (!Number.isInteger(cs) || cs < 1) throw new Error(`openMds: cacheShards must be a positive integer, got ${cs}`);
    this.cacheShards = cs;
  }

  /** Sample i decoded (all columns, or only `columns`). */
  get(i: number, columns?: readonly string[]): Record<string, unknown> {
    const want = columns ? new Set(columns) : null;
    if (want) for (const n of want) if (!(n in this.columns)) throw new Error(`MdsDataset.get: no column "${n}" (columns: ${Object.keys(this.columns).join(', ')})`);
    const { shard, local, sizes, bytes, file } = this.locate(i);
    const out: Record<string, unknown> = {};
    let p = sizes.start;
    this.cols.forEach((col, c) => {
      const n = sizes.sizes[c]!;
      if (!want || want.has(col.name)) {
        try {
          out[col.name] = decodeColumn(col, bytes.subarray(p, p + n));
        } catch (e) {
          throw new Error(`${file}: sample ${local} (dataset index ${i}, shard ${shard}): column "${col.name}" (${col.encoding}${col.array ? ', variable-size array' : ''}): ${(e as Error).message}`);
        }
      }
      p += n;
    });
    return out;
  }

  /** Sample i as each column's undecoded bytes. */
  getRaw(i: number): Record<string, Uint8Array> {
    const { sizes, bytes } = this.locate(i);
    const out: Record<string, Uint8Array> = {};
    let p = sizes.start;
    this.cols.forEach((col, c) => {
      out[col.name] = bytes.slice(p, p + sizes.sizes[c]!);
      p += sizes.sizes[c]!;
    });
    return out;
  }

  /** Open every shard and check its size, sample count and offsets (get() does this lazily, shard by shard). */
  verify(): void {
    for (let s = 0; s < this.shards.length; s++) {
      const sh = this.loadShard(s);
      if (sh.fd !== null) closeSync(sh.fd);
    }
  }

  /** Close the shard files held open. The dataset stays usable (shards reopen on demand). */
  close(): void {
    for (const sh of this.cache.values()) if (sh.fd !== null) closeSync(sh.fd);
    this.cache.clear();
  }

  private locate(i: number) {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`MdsDataset: index ${i} is out of range [0, ${this.length})`);
    let lo = 0, hi = this.shards.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    const shard = lo;
    const local = i - this.starts[shard]!;
    const sh = this.shard(shard);
    const begin = sh.offsets[local]!, end = sh.offsets[local + 1]!;
    const bytes = this.read(sh, begin, end - begin);
    const sizes = this.sampleLayout(bytes, sh.file, local);
    return { shard, local, sizes, bytes, file: sh.file };
  }

  /** Per-column byte sizes of a sample: the uint32 lengths of the variable columns first, then fixed sizes. */
  private sampleLayout(b: Uint8Array, file: string, local: number): { start: number; sizes: number[] } {
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    let p = 0;
    const sizes: number[] = [];
    for (const col of this.cols) {
      if (col.size !== null) sizes.push(col.size);
      else {
        if (p + 4 > b.length) throw new Error(`${file}: sample ${local} has ${b.length} bytes, too short for the length of column "${col.name}"`);
        sizes.push(dv.getUint32(p, true));
        p += 4;
      }
    }
    let total = p;
    for (const n of sizes) total += n;
    if (total !== b.length) {
      throw new Error(`${file}: sample ${local} has ${b.length} bytes, but its column sizes (${this.cols.map((c, k) => `${c.name}=${sizes[k]}`).join(', ')}) and ${p} bytes of lengths add up to ${total}`);
    }
    return { start: p, sizes };
  }

  private read(sh: OpenShard, pos: number, len: number): Uint8Array {
    if (sh.mem) return sh.mem.subarray(pos, pos + len);
    const out = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const n = readSync(sh.fd!, out, got, len - got, pos + got);
      if (n === 0) throw new Error(`${sh.file}: file ended at byte ${pos + got} while reading bytes [${pos}, ${pos + len}) (was it truncated after opening?)`);
      got += n;
    }
    return out;
  }

  private shard(s: number): OpenShard {
    const hit = this.cache.get(s);
    if (hit) {
      this.cache.delete(s);
      this.cache.set(s, hit);
      return hit;
    }
    const sh = this.loadShard(s);
    this.cache.set(s, sh);
    while (this.cache.size > this.cacheShards) {
      const [k, old] = this.cache.entries().next().value as [number, OpenShard];
      if (old.fd !== null) closeSync(old.fd);
      this.cache.delete(k);
    }
    return sh;
  }

  private loadShard(s: number): OpenShard {
    const info = this.shards[s]!;
    const field = `index.json shards[${s}]`;
    const rawPath = join(this.dir, info.raw.basename);
    let sh: OpenShard;
    let size: number;
    if (existsSync(rawPath)) {
      const fd = openSync(rawPath, 'r');
      size = fstatSync(fd).size;
      sh = { file: rawPath, fd, mem: null, offsets: new Uint32Array(0) };
    } else if (info.compression) {
      const zipPath = info.zip ? join(this.dir, info.zip.basename) : null;
      if (!zipPath) throw new Error(`MDS: shard file ${rawPath} is missing (${field}.raw_data.basename), and ${field}.zip_data names no compressed file`);
      const family = info.compression.split(':')[0]!;
      if (!ZLIB_COMPRESSIONS[family]) {
        throw new Error(`MDS: shard ${zipPath} is compressed with "${info.compression}" (${field}.compression), which Node cannot decompress` +
          (OTHER_COMPRESSIONS.has(family) ? ` (Node 20 has no ${family})` : '') + `; decompress it to ${rawPath} (e.g. \`${family === 'zstd' ? 'zstd -d' : family === 'bz2' ? 'bunzip2 -k' : family} ${info.zip!.basename}\`) and retry`);
      }
      if (!existsSync(zipPath)) throw new Error(`MDS: shard file ${zipPath} is missing (${field}.zip_data.basename), and so is ${rawPath}`);
      const zipped = readFileSync(zipPath);
      if (info.zip!.bytes !== null && zipped.length !== info.zip!.bytes) {
        throw new Error(`MDS: ${zipPath} has ${zipped.length} bytes, but ${field}.zip_data.bytes says ${info.zip!.bytes}`);
      }
      let raw: Buffer;
      try {
        raw = family === 'gz' ? gunzipSync(zipped) : brotliDecompressSync(zipped);
      } catch (e) {
        throw new Error(`MDS: ${zipPath}: ${family} decompression failed: ${(e as Error).message}`);
      }
      size = raw.length;
      sh = { file: `${zipPath} (decompressed)`, fd: null, mem: new Uint8Array(raw.buffer, raw.byteOffset, raw.length), offsets: new Uint32Array(0) };
    } else {
      throw new Error(`MDS: shard file ${rawPath} is missing (${field}.raw_data.basename)`);
    }
    try {
      if (info.raw.bytes !== null && size !== info.raw.bytes) {
        throw new Error(`MDS: ${sh.file} has ${size} bytes, but ${field}.raw_data.bytes says ${info.raw.bytes}`);
      }
      if (size < 4) throw new Error(`MDS: ${sh.file} has ${size} bytes, too short for the sample count`);
      const n = new DataView(this.read(sh, 0, 4).buffer).getUint32(0, true);
      if (n !== info.samples) throw new Error(`MDS: ${sh.file} holds ${n} samples, but ${field}.samples says ${info.samples}`);
      const headEnd = 4 * (n + 2);
      if (headEnd > size) throw new Error(`MDS: ${sh.file} has ${size} bytes, too short for ${n} samples' ${n + 1} offsets (${headEnd} bytes)`);
      const tab = this.read(sh, 4, 4 * (n + 1));
      const dv = new DataView(tab.buffer, tab.byteOffset, tab.length);
      const offsets = new Uint32Array(n + 1);
      for (let k = 0; k <= n; k++) offsets[k] = dv.getUint32(4 * k, true);
      if (offsets[0]! < headEnd) throw new Error(`MDS: ${sh.file}: offset 0 is ${offsets[0]}, inside the ${headEnd}-byte header (offsets out of bounds)`);
      for (let k = 0; k < n; k++) {
        if (offsets[k + 1]! < offsets[k]!) throw new Error(`MDS: ${sh.file}: offset ${k + 1} (${offsets[k + 1]}) is before offset ${k} (${offsets[k]}) (offsets out of bounds)`);
      }
      if (offsets[n]! !== size) throw new Error(`MDS: ${sh.file}: the last offset is ${offsets[n]}, but the file has ${size} bytes (offsets out of bounds)`);
      sh.offsets = offsets;
      return sh;
    } catch (e) {
      if (sh.fd !== null) closeSync(sh.fd);
      throw e;
    }
  }
}

function safeBasename(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && !/[/\\]/.test(v) && v !== '.' && v !== '..';
}

/**
 * Open the MDS dataset in `dir` (reads and validates index.json; shard files are opened when first read, and
 * at most `cacheShards` are held open at once).
 */
export function openMds(dir: string, opts: MdsOpenOptions = {}): MdsDataset {
  const indexPath = join(dir, 'index.json');
  let text: string;
  try {
    text = readFileSync(indexPath, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`MDS: ${indexPath} not found (an MDS dataset directory holds index.json and its shard files)`);
    throw new Error(`MDS: cannot read ${indexPath}: ${(e as Error).message}`);
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    throw new Error(`MDS: ${indexPath}: invalid JSON: ${(e as Error).message}`);
  }
  const fail = (field: string, msg: string): never => {
    throw new Error(`MDS: ${indexPath}: ${field} ${msg}`);
  };
  if (!isObject(index)) fail('(top level)', 'must be an object {"version": 2, "shards": [...]}');
  const top = index as Record<string, unknown>;
  if (top.version !== 2) fail('"version"', `is ${JSON.stringify(top.version)}; only version 2 is supported`);
  if (!Array.isArray(top.shards)) fail('"shards"', `must be a list, got ${describe(top.shards)}`);
  let cols: Column[] | null = null;
  const shards: ShardInfo[] = [];
  (top.shards as unknown[]).forEach((sv, s) => {
    const f = `shards[${s}]`;
    if (!isObject(sv)) fail(f, `must be an object, got ${describe(sv)}`);
    const sh = sv as Record<string, unknown>;
    if (sh.format !== 'mds') fail(`${f}.format`, `is ${JSON.stringify(sh.format)}; only "mds" is supported`);
    if (sh.version !== 2) fail(`${f}.version`, `is ${JSON.stringify(sh.version)}; only version 2 is supported`);
    const names = sh.column_names, encs = sh.column_encodings, sizes = sh.column_sizes;
    if (!Array.isArray(names) || names.length === 0 || names.some((n) => typeof n !== 'string')) fail(`${f}.column_names`, 'must be a non-empty list of strings');
    const nm = names as string[];
    if (new Set(nm).size !== nm.length) fail(`${f}.column_names`, `has a duplicate name (${JSON.stringify(nm)})`);
    if (!Array.isArray(encs) || encs.length !== nm.length) fail(`${f}.column_encodings`, `must be a list of ${nm.length} encodings, one per column`);
    if (!Array.isArray(sizes) || sizes.length !== nm.length) fail(`${f}.column_sizes`, `must be a list of ${nm.length} sizes (null for variable-size), one per column`);
    const here: Column[] = nm.map((name, c) => {
      const enc = (encs as unknown[])[c];
      let codec: Codec;
      try {
        codec = parseEncoding(enc);
      } catch (e) {
        return fail(`${f}.column_encodings[${c}] (column "${name}")`, `is invalid: ${(e as Error).message}`);
      }
      const sz = (sizes as unknown[])[c];
      if (sz !== null && (typeof sz !== 'number' || !Number.isSafeInteger(sz) || sz < 0)) fail(`${f}.column_sizes[${c}] (column "${name}")`, `must be null or a non-negative integer, got ${describe(sz)}`);
      // As MosaicML's reader: a size of 0 (falsy) means variable-size.
      const size = (sz as number | null) || null;
      const nat = naturalSize(codec);
      let array = false;
      if (size === null) array = codec.kind === 'scalar';
      else if (nat !== null && size !== nat) {
        fail(`${f}.column_sizes[${c}] (column "${name}")`, `is ${size}, but encoding "${enc}" has ${nat}-byte values (wrong column type)`);
      } else if (codec.kind === 'np16' && size % 2 !== 0) fail(`${f}.column_sizes[${c}] (column "${name}")`, `is ${size}, not a whole number of float16 values`);
      return { name, encoding: enc as string, codec, size, array };
    });
    if (!cols) cols = here;
    else {
      for (const [key, get] of [['column_names', (c: Column): unknown => c.name], ['column_encodings', (c: Column): unknown => c.encoding], ['column_sizes', (c: Column): unknown => c.size]] as const) {
        const a = JSON.stringify(cols.map(get)), b = JSON.stringify(here.map(get));
        if (a !== b) fail(`${f}.${key}`, `is ${b}, but shards[0] has ${a}; all shards of a dataset must have the same columns`);
      }
    }
    if (!Number.isSafeInteger(sh.samples) || (sh.samples as number) < 0) fail(`${f}.samples`, `must be a non-negative integer, got ${describe(sh.samples)}`);
    const fileInfo = (v: unknown, key: string): FileInfo => {
      if (!isObject(v)) return fail(`${f}.${key}`, `must be an object {basename, bytes}, got ${describe(v)}`);
      if (!safeBasename(v.basename)) fail(`${f}.${key}.basename`, `must be a file name in the dataset directory, got ${describe(v.basename)}`);
      if (v.bytes !== undefined && v.bytes !== null && (!Number.isSafeInteger(v.bytes) || (v.bytes as number) < 0)) fail(`${f}.${key}.bytes`, `must be a non-negative integer, got ${describe(v.bytes)}`);
      return { basename: v.basename as string, bytes: (v.bytes as number | undefined) ?? null };
    };
    const raw = fileInfo(sh.raw_data, 'raw_data');
    const comp = sh.compression ?? null;
    if (comp !== null && typeof comp !== 'string') fail(`${f}.compression`, `must be null or a string, got ${describe(comp)}`);
    const zip = sh.zip_data === null || sh.zip_data === undefined ? null : fileInfo(sh.zip_data, 'zip_data');
    shards.push({ index: s, samples: sh.samples as number, compression: comp as string | null, raw, zip });
  });
  if (!cols) cols = [];
  return new MdsDataset(dir, indexPath, cols, shards, opts);
}


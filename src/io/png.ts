// Minimal PNG: an 8-bit grayscale/RGB/RGBA encoder (zlib from node:zlib, CRC-32 here), a decoder for the
// same non-interlaced 8-bit images (all five row filters), and imageGrid to tile a batch of images.
import { deflateSync, inflateSync } from 'node:zlib';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309 / ITU-T V.42, as PNG and zlib use it) of bytes, continuing from `crc`. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export type PngChannels = 1 | 2 | 3 | 4;
/** PNG colour type for each channel count: gray, gray+alpha, RGB, RGBA. */
const COLOR_TYPE: Record<PngChannels, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };
const CHANNELS_OF: Record<number, PngChannels> = { 0: 1, 4: 2, 2: 3, 6: 4 };

export interface PngImage {
  width: number;
  height: number;
  channels: PngChannels;
  /** Row-major pixels, `channels` bytes each. */
  pixels: Uint8Array;
}

export interface EncodePngOptions {
  /** Row filter: 0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth, or 'adaptive' (per row, the smallest sum of |bytes|; default). */
  filter?: 0 | 1 | 2 | 3 | 4 | 'adaptive';
  /** zlib level 0..9 (default 6). */
  level?: number;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Filter one row: out[i] = (cur[i] - predictor) & 255. `prev` is the previous raw row (zeros for the first). */
function filterRow(type: number, cur: Uint8Array, prev: Uint8Array, bpp: number, out: Uint8Array, o: number): void {
  const n = cur.length;
  for (let i = 0; i < n; i++) {
    const a = i >= bpp ? cur[i - bpp]! : 0, b = prev[i]!, c = i >= bpp ? prev[i - bpp]! : 0;
    let pred: number;
    switch (type) {
      case 0: pred = 0; break;
      case 1: pred = a; break;
      case 2: pred = b; break;
      case 3: pred = (a + b) >>> 1; break;
      default: pred = paeth(a, b, c);
    }
    out[o + i] = (cur[i]! - pred) & 0xff;
  }
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function checkDims(op: string, width: number, height: number): void {
  for (const [k, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 0x7fffffff) throw new Error(`${op}: ${k} must be an integer in [1, 2^31 - 1], got ${v}`);
  }
}

/** Encode 8-bit pixels (row-major, `channels` bytes per pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as PNG. */
export function encodePng(width: number, height: number, pixels: Uint8Array, channels: PngChannels, opts: EncodePngOptions = {}): Uint8Array {
  checkDims('encodePng', width, height);
  if (!(channels in COLOR_TYPE)) throw new Error(`encodePng: channels must be 1, 2, 3 or 4, got ${channels}`);
  if (!((pixels as unknown) instanceof Uint8Array) && !((pixels as unknown) instanceof Uint8ClampedArray)) throw new Error('encodePng: pixels must be a Uint8Array');
  const stride = width * channels;
  if (pixels.length !== stride * height) {
    throw new Error(`encodePng: expected ${stride * height} bytes for ${width}x${height}x${channels}, got ${pixels.length}`);
  }
  const filter = opts.filter ?? 'adaptive';
  if (filter !== 'adaptive' && ![0, 1, 2, 3, 4].includes(filter)) throw new Error(`encodePng: filter must be 0..4 or 'adaptive', got ${filter}`);
  const raw = new Uint8Array((stride + 1) * height);
  const zero = new Uint8Array(stride);
  const trial = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const cur = pixels.subarray(y * stride, (y + 1) * stride) as Uint8Array;
    const prev = y > 0 ? (pixels.subarray((y - 1) * stride, y * stride) as Uint8Array) : zero;
    const o = y * (stride + 1);
    let type: number;
    if (filter === 'adaptive') {
      // the usual heuristic: the filter whose output, read as signed bytes, has the smallest absolute sum
      let best = 0, bestCost = Infinity;
      for (let f = 0; f < 5; f++) {
        filterRow(f, cur, prev, channels, trial, 0);
        let cost = 0;
        for (let i = 0; i < stride; i++) cost += trial[i]! < 128 ? trial[i]! : 256 - trial[i]!;
        if (cost < bestCost) {
          bestCost = cost;
          best = f;
        }
      }
      type = best;
    } else {
      type = filter;
    }
    raw[o] = type;
    filterRow(type, cur, prev, channels, raw, o + 1);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOR_TYPE[channels];
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  const idat = new Uint8Array(deflateSync(raw, { level: opts.level ?? 6 }));
  return new Uint8Array(Buffer.concat([new Uint8Array(SIGNATURE), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))]));
}

/** Decode an 8-bit, non-interlaced gray, gray+alpha, RGB or RGBA PNG (what encodePng writes, and more). */
export function decodePng(bytes: Uint8Array): PngImage {
  const fail = (msg: string): never => {
    throw new Error(`decodePng: ${msg}`);
  };
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) fail('not a PNG file (bad signature)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let width = 0, height = 0, channels: PngChannels = 1, sawHeader = false, sawEnd = false;
  const idat: Uint8Array[] = [];
  while (pos < bytes.length && !sawEnd) {
    if (pos + 12 > bytes.length) fail(`truncated chunk header at byte ${pos}`);
    const len = dv.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (pos + 12 + len > bytes.length) fail(`chunk ${type} at byte ${pos} (${len} bytes) runs past the end of the file`);
    const data = bytes.subarray(pos + 8, pos + 8 + len);
    const crc = dv.getUint32(pos + 8 + len);
    if (crc32(bytes.subarray(pos + 4, pos + 8 + len)) !== crc) fail(`chunk ${type} at byte ${pos} has a bad CRC`);
    if (!sawHeader && type !== 'IHDR') fail(`first chunk must be IHDR, got ${type}`);
    switch (type) {
      case 'IHDR': {
        if (len !== 13) fail(`IHDR must be 13 bytes, got ${len}`);
        const h = new DataView(data.buffer, data.byteOffset, 13);
        width = h.getUint32(0);
        height = h.getUint32(4);
        const depth = data[8]!, colorType = data[9]!, interlace = data[12]!;
        if (width < 1 || height < 1) fail(`bad size ${width}x${height}`);
        if (depth !== 8) fail(`bit depth ${depth} is not supported (only 8)`);
        if (!(colorType in CHANNELS_OF)) fail(`colour type ${colorType} is not supported (only gray, gray+alpha, RGB, RGBA)`);
        if (data[10] !== 0 || data[11] !== 0) fail('unknown compression or filter method');
        if (interlace !== 0) fail('interlaced PNGs are not supported');
        channels = CHANNELS_OF[colorType]!;
        sawHeader = true;
        break;
      }
      case 'IDAT':
        idat.push(data);
        break;
      case 'IEND':
        sawEnd = true;
        break;
      default:
        // ancillary chunks (lower-case first letter) can be skipped; critical ones we do not know cannot
        if ((type.charCodeAt(0) & 0x20) === 0) fail(`unsupported critical chunk ${type}`);
    }
    pos += 12 + len;
  }
  if (!sawHeader) fail('missing IHDR');
  if (!sawEnd) fail('missing IEND (truncated file?)');
  if (idat.length === 0) fail('missing IDAT');
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(inflateSync(Buffer.concat(idat)));
  } catch (e) {
    return fail(`corrupt image data: ${(e as Error).message}`);
  }
  const stride = width * channels;
  if (raw.length !== (stride + 1) * height) fail(`image data is ${raw.length} bytes, expected ${(stride + 1) * height} for ${width}x${height}x${channels}`);
  const pixels = new Uint8Array(stride * height);
  const bpp = channels;
  for (let y = 0; y < height; y++) {
    const type = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const o = y * stride;
    const up = o - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? pixels[o + i - bpp]! : 0;
      const b = y > 0 ? pixels[up + i]! : 0;
      const c = i >= bpp && y > 0 ? pixels[up + i - bpp]! : 0;
      let pred: number;
      switch (type) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) >>> 1; break;
        case 4: pred = paeth(a, b, c); break;
        default: return fail(`row ${y} has unknown filter type ${type}`);
      }
      pixels[o + i] = (raw[src + i]! + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** Map a value in [-1, 1] to a byte 0..255 (clamped; NaN -> 0). */
export function toByte(v: number): number {
  if (!(v > -1)) return 0; // also NaN
  if (v >= 1) return 255;
  return Math.round((v + 1) * 127.5);
}

/**
 * Tile n images [N, C, H, W] (values in [-1, 1], clamped) into a grid of `cols` columns with `pad` pixels of
 * `padValue` (a byte, default 0 = black) between and around them, like torchvision's make_grid.
 * C must be 1 (gray) or 3 (RGB); the result is interleaved 8-bit pixels ready for encodePng.
 */
export function imageGrid(images: Float32Array | Float64Array, n: number, c: number, h: number, w: number, cols: number, pad = 2, padValue = 0): PngImage {
  for (const [k, v] of [['n', n], ['h', h], ['w', w], ['cols', cols]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`imageGrid: ${k} must be a positive integer, got ${v}`);
  }
  if (c !== 1 && c !== 3) throw new Error(`imageGrid: c must be 1 (gray) or 3 (RGB), got ${c}`);
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`imageGrid: pad must be a non-negative integer, got ${pad}`);
  if (images.length !== n * c * h * w) throw new Error(`imageGrid: expected ${n * c * h * w} values for [${n}, ${c}, ${h}, ${w}], got ${images.length}`);
  const ncol = Math.min(cols, n);
  const nrow = Math.ceil(n / ncol);
  const width = ncol * (w + pad) + pad;
  const height = nrow * (h + pad) + pad;
  const pixels = new Uint8Array(width * height * c).fill(padValue & 0xff);
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % ncol) * (w + pad);
    const y0 = pad + Math.floor(k / ncol) * (h + pad);
    for (let ch = 0; ch < c; ch++) {
      const plane = (k * c + ch) * h * w;
      for (let y = 0; y < h; y++) {
        const row = ((y0 + y) * width + x0) * c + ch;
        for (let x = 0; x < w; x++) pixels[row + x * c] = toByte(images[plane + y * w + x]!);
      }
    }
  }
  return { width, height, channels: c, pixels };
}

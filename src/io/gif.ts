// Animated GIF89a encoder: one global palette (256 grays, or a fixed 6x7x6 RGB cube of 252 colours with
// nearest-colour mapping), a Netscape looping extension, and variable-code-size LZW written here.
//
// LZW as GIF uses it (minimum code size 8): codes start at 9 bits; code 256 clears the table, 257 ends
// the data; the encoder widens its codes once the next code it would assign needs another bit (the
// decoder, one entry behind, widens at the same code), and emits a clear code when the table reaches
// 4096 entries (12 bits).

const MIN_CODE_SIZE = 8;
const CLEAR = 1 << MIN_CODE_SIZE;
const EOI = CLEAR + 1;
const MAX_CODES = 4096;

/** Levels of the RGB palette cube: 6 reds x 7 greens x 6 blues = 252 colours (indices 252..255 unused, black). */
export const GIF_RGB_LEVELS = { r: 6, g: 7, b: 6 } as const;

function level(i: number, count: number): number {
  return Math.round((i * 255) / (count - 1));
}

/** The 256-entry RGB palette (768 bytes) used for RGB frames. */
export const GIF_RGB_PALETTE: Uint8Array = (() => {
  const p = new Uint8Array(768);
  const { r: R, g: G, b: B } = GIF_RGB_LEVELS;
  for (let r = 0; r < R; r++) {
    for (let g = 0; g < G; g++) {
      for (let b = 0; b < B; b++) {
        const i = (r * G + g) * B + b;
        p[i * 3] = level(r, R);
        p[i * 3 + 1] = level(g, G);
        p[i * 3 + 2] = level(b, B);
      }
    }
  }
  return p;
})();

/** The 256-level gray palette used for grayscale frames (index v is (v, v, v)). */
export const GIF_GRAY_PALETTE: Uint8Array = (() => {
  const p = new Uint8Array(768);
  for (let i = 0; i < 256; i++) p[i * 3] = p[i * 3 + 1] = p[i * 3 + 2] = i;
  return p;
})();

/** Index of the palette colour nearest (in Euclidean RGB distance) to (r, g, b); the cube is separable,
 *  so that is the nearest level on each axis. */
export function nearestRgbIndex(r: number, g: number, b: number): number {
  const { r: R, g: G, b: B } = GIF_RGB_LEVELS;
  const ri = Math.round((r * (R - 1)) / 255), gi = Math.round((g * (G - 1)) / 255), bi = Math.round((b * (B - 1)) / 255);
  return (ri * G + gi) * B + bi;
}

/** Collects LZW codes LSB-first into 255-byte sub-blocks. */
class BitWriter {
  private out: number[] = [];
  private acc = 0;
  private nbits = 0;
  write(code: number, size: number): void {
    this.acc |= code << this.nbits;
    this.nbits += size;
    while (this.nbits >= 8) {
      this.out.push(this.acc & 0xff);
      this.acc >>>= 8;
      this.nbits -= 8;
    }
  }
  finish(): number[] {
    if (this.nbits > 0) this.out.push(this.acc & 0xff);
    this.acc = 0;
    this.nbits = 0;
    return this.out;
  }
}

/** GIF LZW compression of 8-bit palette indices (minimum code size 8); returns the raw code stream bytes. */
export function lzwEncode(indices: Uint8Array): Uint8Array {
  const w = new BitWriter();
  // table: key = prefixCode * 256 + byte -> code; a Map keeps it simple and is fast enough for images.
  let table = new Map<number, number>();
  let codeSize = MIN_CODE_SIZE + 1;
  let next = EOI + 1;
  w.write(CLEAR, codeSize);
  if (indices.length === 0) {
    w.write(EOI, codeSize);
    return new Uint8Array(w.finish());
  }
  let prefix = indices[0]!;
  for (let i = 1; i < indices.length; i++) {
    const k = indices[i]!;
    const key = prefix * 256 + k;
    const hit = table.get(key);
    if (hit !== undefined) {
      prefix = hit;
      continue;
    }
    w.write(prefix, codeSize);
    if (next === MAX_CODES) {
      // table full: start over (the decoder is at 12 bits too, one entry behind us)
      w.write(CLEAR, codeSize);
      table = new Map();
      codeSize = MIN_CODE_SIZE + 1;
      next = EOI + 1;
    } else {
      if (next >= 1 << codeSize) codeSize++;
      table.set(key, next++);
    }
    prefix = k;
  }
  w.write(prefix, codeSize);
  // after this last code the decoder adds its entry `next - 1`... and widens when `next` needs another bit
  if (next >= 1 << codeSize && codeSize < 12) codeSize++;
  w.write(EOI, codeSize);
  return new Uint8Array(w.finish());
}

function u16(out: number[], v: number): void {
  out.push(v & 0xff, (v >>> 8) & 0xff);
}

/**
 * Encode frames (each width*height*channels bytes, row-major; channels 1 = gray, 3 = RGB) as an animated
 * GIF89a. `delayCs` is the delay between frames in hundredths of a second; `loop` adds the Netscape
 * extension that repeats the animation forever (without it, viewers play it once).
 */
export function encodeGif(frames: readonly Uint8Array[], width: number, height: number, channels: 1 | 3, delayCs = 8, loop = true): Uint8Array {
  for (const [k, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 0xffff) throw new Error(`encodeGif: ${k} must be an integer in [1, 65535], got ${v}`);
  }
  if (channels !== 1 && channels !== 3) throw new Error(`encodeGif: channels must be 1 (gray) or 3 (RGB), got ${channels}`);
  if (!Number.isInteger(delayCs) || delayCs < 0 || delayCs > 0xffff) throw new Error(`encodeGif: delayCs must be an integer in [0, 65535], got ${delayCs}`);
  if (!Array.isArray(frames) || frames.length === 0) throw new Error('encodeGif: need at least one frame');
  const npix = width * height;
  frames.forEach((f, i) => {
    if (!(f instanceof Uint8Array) && !(f instanceof Uint8ClampedArray)) throw new Error(`encodeGif: frame ${i} must be a Uint8Array`);
    if (f.length !== npix * channels) throw new Error(`encodeGif: frame ${i} has ${f.length} bytes, expected ${npix * channels} for ${width}x${height}x${channels}`);
  });

  const out: number[] = [];
  for (const ch of 'GIF89a') out.push(ch.charCodeAt(0));
  // logical screen descriptor: global colour table of 2^(7+1) = 256 entries, 8 bits per primary
  u16(out, width);
  u16(out, height);
  out.push(0xf7, 0, 0);
  const palette = channels === 1 ? GIF_GRAY_PALETTE : GIF_RGB_PALETTE;
  for (let i = 0; i < palette.length; i++) out.push(palette[i]!);
  if (loop) {
    out.push(0x21, 0xff, 0x0b);
    for (const ch of 'NETSCAPE2.0') out.push(ch.charCodeAt(0));
    out.push(0x03, 0x01, 0x00, 0x00, 0x00); // sub-block: id 1, loop count 0 = forever
  }
  const indices = new Uint8Array(npix);
  for (const f of frames) {
    // graphic control extension: disposal 1 (leave in place), no transparency, the delay
    out.push(0x21, 0xf9, 0x04, 0x04);
    u16(out, delayCs);
    out.push(0x00, 0x00);
    // image descriptor: full frame, no local colour table, not interlaced
    out.push(0x2c);
    u16(out, 0);
    u16(out, 0);
    u16(out, width);
    u16(out, height);
    out.push(0x00);
    if (channels === 1) indices.set(f);
    else for (let p = 0; p < npix; p++) indices[p] = nearestRgbIndex(f[p * 3]!, f[p * 3 + 1]!, f[p * 3 + 2]!);
    const data = lzwEncode(indices);
    out.push(MIN_CODE_SIZE);
    for (let o = 0; o < data.length; o += 255) {
      const n = Math.min(255, data.length - o);
      out.push(n);
      for (let i = 0; i < n; i++) out.push(data[o + i]!);
    }
    out.push(0x00);
  }
  out.push(0x3b);
  return new Uint8Array(out);
}

// Image files for dataset preparation: PNG (io/png.ts) and JPEG (the jpeg-js package) decoded to RGB,
// center-cropped to a square and resized with an antialiased bilinear (triangle) filter, as PIL's
// BILINEAR resize does: a source pixel's weight falls linearly over max(1, scale) pixels.
import { readFileSync } from 'node:fs';
import jpeg from 'jpeg-js';
import { decodePng } from '../io/png.js';

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved 8-bit RGB. */
  rgb: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

/** Decode a PNG or JPEG file (told apart by content) to RGB; alpha is dropped, gray is replicated. */
export function readImage(path: string): RgbImage {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const starts = (m: number[]) => m.every((b, i) => bytes[i] === b);
  if (starts(PNG_MAGIC)) {
    let img;
    try {
      img = decodePng(bytes);
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    }
    const { width, height, channels, pixels } = img;
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) {
      for (let c = 0; c < 3; c++) rgb[i * 3 + c] = pixels[i * channels + (channels >= 3 ? c : 0)]!;
    }
    return { width, height, rgb };
  }
  if (starts(JPEG_MAGIC)) {
    let img;
    try {
      img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
    } catch (e) {
      throw new Error(`${path}: not a readable JPEG (${(e as Error).message ?? String(e)})`);
    }
    const n = img.width * img.height, rgb = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = img.data[i * 4 + c]!;
    return { width: img.width, height: img.height, rgb };
  }
  throw new Error(`${path}: not a PNG or JPEG file (unrecognised first bytes)`);
}

/** Weights of the triangle filter mapping `n` source samples to `m` (antialiased when shrinking). */
function filterTaps(n: number, m: number): Array<{ first: number; weights: Float64Array }> {
  const scale = n / m, support = Math.max(1, scale);
  return Array.from({ length: m }, (_, o) => {
    const center = (o + 0.5) * scale;
    const first = Math.max(0, Math.floor(center - support)), last = Math.min(n - 1, Math.ceil(center + support));
    const w = new Float64Array(last - first + 1);
    let sum = 0;
    for (let i = first; i <= last; i++) {
      const v = Math.max(0, 1 - Math.abs(i + 0.5 - center) / support);
      w[i - first] = v;
      sum += v;
    }
    for (let k = 0; k < w.length; k++) w[k]! /= sum || 1;
    return { first, weights: w };
  });
}

/**
 * The largest centered square of the image resized to size x size, as float32 [3, size, size] in [-1, 1]
 * (the VAE's input range).
 */
export function centerCropResize(img: RgbImage, size: number): Float32Array {
  const side = Math.min(img.width, img.height);
  const x0 = Math.floor((img.width - side) / 2), y0 = Math.floor((img.height - side) / 2);
  const taps = filterTaps(side, size);
  // rows first: [side rows][size cols][3]
  const tmp = new Float64Array(side * size * 3);
  for (let y = 0; y < side; y++) {
    const row = ((y0 + y) * img.width + x0) * 3;
    for (let o = 0; o < size; o++) {
      const { first, weights } = taps[o]!;
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = 0; k < weights.length; k++) acc += weights[k]! * img.rgb[row + (first + k) * 3 + c]!;
        tmp[(y * size + o) * 3 + c] = acc;
      }
    }
  }
  const out = new Float32Array(3 * size * size);
  for (let o = 0; o < size; o++) {
    const { first, weights } = taps[o]!;
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = 0; k < weights.length; k++) acc += weights[k]! * tmp[((first + k) * size + x) * 3 + c]!;
        out[c * size * size + o * size + x] = acc / 127.5 - 1;
      }
    }
  }
  return out;
}

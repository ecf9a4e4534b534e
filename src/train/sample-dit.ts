// Class-conditional sampling from a DiT: a grid with one column per class, written as a PNG, plus an
// animated GIF of the Euler trajectory from noise to digits (as the reference release shows).
import { writeFileSync } from 'node:fs';
import type { DiT } from '../models/dit.js';
import { encodeGif } from '../io/gif.js';
import { encodePng, imageGrid } from '../io/png.js';
import { sampleEuler } from '../flow/rectified-flow.js';
import { randn, tensor } from '../ops/creation.js';
import { cat } from '../ops/movement.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { writeFileAtomic } from '../io/safetensors.js';

export interface SampleGridOptions {
  rows?: number;
  steps?: number;
  cfg?: number;
  seed?: number;
  png: string;
  gif?: string;
  /** Frames kept for the GIF (evenly spaced over the steps). */
  gifFrames?: number;
}

function toImage(z: Tensor, cols: number): { width: number; height: number; pixels: Uint8Array; channels: number } {
  const [n, c, h, w] = z.shape as [number, number, number, number];
  const g = imageGrid(z.toArray() as Float32Array, n, c, h, w, cols);
  return g;
}

/** Sample `rows` images of each class (labels 0..num_classes-1 across columns). Returns the final images. */
export function sampleGrid(model: DiT, o: SampleGridOptions): Float32Array {
  const cfg = model.config;
  const classes = cfg.num_classes, rows = o.rows ?? 4, n = rows * classes;
  const wasTraining = model.training;
  model.eval();
  const device = model.parameters()[0]!.device;
  const frames: Uint8Array[] = [];
  let size = { width: 0, height: 0, channels: 1 };
  const steps = o.steps ?? 50, keepEvery = Math.max(1, Math.floor(steps / (o.gifFrames ?? 25)));
  const result = scope(() => {
    const labels = tensor(Array.from({ length: n }, (_, i) => i % classes), { dtype: 'int64', device });
    const nullLabels = tensor(new Array(n).fill(classes), { dtype: 'int64', device });
    const z = randn([n, cfg.in_channels, cfg.input_size, cfg.input_size], { generator: new Generator(o.seed ?? 0), device });
    const record = (img: Tensor) => {
      const g = toImage(img, classes);
      size = g;
      frames.push(g.channels === 1 ? g.pixels : g.pixels);
    };
    if (o.gif) record(z);
    const out = sampleEuler((x, t, y: Tensor) => model.forward(x, t, y), z, labels, {
      steps, cfg: o.cfg ?? 2, nullCond: nullLabels, concatConds: (a, b) => cat([a, b], 0),
      onStep: (zi, i) => { if (o.gif && (i % keepEvery === 0 || i === steps)) record(zi); },
    });
    return out.toArray() as Float32Array;
  });
  model.train(wasTraining);
  const grid = imageGrid(result, n, cfg.in_channels, cfg.input_size, cfg.input_size, classes);
  writeFileAtomic(o.png, [encodePng(grid.width, grid.height, grid.pixels, grid.channels as 1 | 3)]);
  if (o.gif) {
    const hold = Array.from({ length: 8 }, () => frames[frames.length - 1]!); // pause on the result
    writeFileSync(o.gif, encodeGif([...frames, ...hold], size.width, size.height, size.channels as 1 | 3, 8, true));
  }
  return result;
}

// The browser app's model work, free of the DOM so Node tests run it too: a class-conditional DiT trained
// with the rectified-flow loss and Adam (as `lavender train mnist` does), Euler sampling with
// classifier-free guidance, and loading a `lavender train mnist` checkpoint from its bytes. Values come
// back through `readValues`, asynchronous on webgpu (a browser cannot block on the GPU).
import * as L from '../../src/index.js';
import type { DiTConfig, Tensor } from '../../src/index.js';
import { sampleEuler, sampleTime } from '../../src/flow/rectified-flow.js';
import { modelPhrase, modelSpecOf } from '../../src/optim/checkpoint-meta.js';

/**
 * 'mnist' is the model `lavender train mnist` trains (6 blocks, 256 tokens); 'tiny' (one block, 64 tokens)
 * learns digit shapes in a few hundred steps on a laptop GPU; 'micro' (MNIST at half resolution, 16x16,
 * and 16 tokens) is for software adapters and CPUs, and the headless test: a DiT's first convolutions
 * run at full resolution, and on a software adapter they are most of a step.
 */
export const PRESETS: Record<string, DiTConfig> = {
  mnist: L.DIT_PRESETS.mnist!,
  tiny: { in_channels: 1, input_size: 32, patch_size: 4, dim: 64, n_layers: 1, n_heads: 2, num_classes: 10 },
  micro: { in_channels: 1, input_size: 16, patch_size: 4, dim: 64, n_layers: 1, n_heads: 2, multiple_of: 64, num_classes: 10 },
};

/** A tensor's values in logical order, without blocking (webgpu: readAsync; cpu: a plain read). */
export async function readValues(t: Tensor): Promise<Float32Array> {
  const c = t.contiguous();
  try {
    const be = c.backend as { readAsync?: (b: unknown) => Promise<ArrayLike<number>> };
    const all = be.readAsync ? await be.readAsync(c.storage.buf) : c.backend.read(c.storage.buf);
    return Float32Array.from(Array.prototype.slice.call(all, c.offset, c.offset + c.size) as number[]);
  } finally {
    if (c !== t) c.dispose();
  }
}

export interface TrainerOptions { lr?: number; seed?: number }

export class Trainer {
  readonly model: L.DiT;
  readonly opt: L.optim.Adam;
  readonly rng: L.Generator;
  readonly losses: number[] = [];
  steps = 0;

  constructor(readonly device: string, readonly config: DiTConfig, o: TrainerOptions = {}, weights?: Record<string, Tensor>) {
    const seed = o.seed ?? 0;
    this.model = new L.DiT(config, { device, generator: new L.Generator(seed) });
    try {
      if (weights) this.model.loadStateDict(weights);
    } catch (e) {
      this.dispose();
      throw e;
    }
    this.opt = new L.optim.Adam(this.model.parameters(), { lr: o.lr ?? 1e-3 });
    this.rng = new L.Generator(seed + 1); // time, noise and label dropout, as trainDiT
    this.model.generator = this.rng;
  }

  get parameters(): number { return this.model.numParameters(); }

  /** One rectified-flow step on images x [n, C, S, S] in [-1, 1] with labels y; resolves to the loss. */
  async step(x: Float32Array, y: Int32Array): Promise<number> {
    const c = this.config, n = y.length;
    this.model.train();
    const loss = L.scope(() => {
      const xs = L.tensor(x, { shape: [n, c.in_channels, c.input_size, c.input_size], device: this.device });
      const ys = L.tensor(y, { dtype: 'int64', device: this.device });
      // x_t = (1 - t) x + t z, target velocity z - x (src/flow/rectified-flow.ts, flowLoss)
      const t = sampleTime(n, 'logit-normal', this.rng, this.device);
      const z = L.randn(xs.shape, { generator: this.rng, device: this.device });
      const te = L.reshape(t, [n, 1, 1, 1]);
      const xt = L.add(L.mul(L.sub(1, te), xs), L.mul(te, z));
      const l = L.mean(L.square(L.sub(L.sub(z, xs), this.model.forward(xt, t, ys))));
      this.opt.zeroGrad();
      l.backward();
      this.opt.step();
      return l;
    });
    const v = (await readValues(loss))[0]!;
    loss.dispose();
    this.steps++;
    this.losses.push(v);
    if (!Number.isFinite(v)) throw new Error(`training diverged at step ${this.steps} (loss ${v}); lower the learning rate`);
    return v;
  }

  /** Images [labels.length, C, S, S] for the given classes: `steps` Euler steps with guidance `cfg`. */
  async sample(labels: readonly number[], cfg: number, steps: number, seed: number): Promise<Float32Array> {
    const c = this.config, n = labels.length, classes = c.num_classes ?? 10;
    for (const l of labels) if (!Number.isInteger(l) || l < 0 || l >= classes) throw new Error(`sample: class ${l} is outside 0..${classes - 1}`);
    if (!(cfg >= 0)) throw new Error(`sample: CFG must be a number >= 0, got ${cfg}`);
    if (!Number.isInteger(steps) || steps < 1) throw new Error(`sample: steps must be a positive integer, got ${steps}`);
    this.model.eval();
    const out = L.scope(() => {
      const y = L.tensor(labels as number[], { dtype: 'int64', device: this.device });
      const nullY = L.tensor(new Array(n).fill(classes), { dtype: 'int64', device: this.device });
      const z = L.randn([n, c.in_channels, c.input_size, c.input_size], { generator: new L.Generator(seed), device: this.device });
      return sampleEuler((x, t, cond: Tensor) => this.model.forward(x, t, cond), z, y, {
        steps, cfg, nullCond: nullY, concatConds: (a, b) => L.cat([a, b], 0),
      });
    });
    this.model.train();
    const v = await readValues(out);
    out.dispose();
    return v;
  }

  dispose(): void {
    for (const p of this.model.parameters()) p.dispose();
  }
}

export interface LoadedCheckpoint { config: DiTConfig; step: number | null; weights: Record<string, Tensor> }

/**
 * Read a `lavender train mnist` (or cifar) checkpoint from its bytes: the DiT config from the metadata
 * field 'lavender', the weights `model.*`. Errors say what the file is instead and name the field at fault.
 */
export function parseCheckpoint(bytes: Uint8Array, name: string, device: string): LoadedCheckpoint {
  let parsed: ReturnType<typeof L.parseSafetensors>;
  try {
    parsed = L.parseSafetensors(bytes, name, { device });
  } catch (e) {
    throw new Error(`${name} is not a safetensors checkpoint (${(e as Error).message.replace(`${name}: `, '')}); load the checkpoint.safetensors that \`lavender train mnist\` writes`);
  }
  const { tensors, metadata } = parsed;
  const dispose = () => { for (const t of Object.values(tensors)) t.dispose(); };
  try {
    let meta: { format?: string; step?: number; config?: Record<string, unknown> } | null;
    try {
      meta = JSON.parse(metadata.lavender ?? 'null');
    } catch {
      throw new Error(`${name}: metadata field 'lavender' is not valid JSON`);
    }
    if (!meta?.config) {
      throw new Error(`${name} is a safetensors file but not a lavender training checkpoint (no model config in the metadata field 'lavender'); load the checkpoint.safetensors that \`lavender train mnist\` writes`);
    }
    const spec = modelSpecOf(meta as Record<string, unknown>);
    if (spec && spec.kind !== 'dit') throw new Error(`${name} is a checkpoint of another model: it holds ${modelPhrase(spec)}, not a class-conditional DiT; load the checkpoint.safetensors that \`lavender train mnist\` writes`);
    let config: DiTConfig;
    try {
      config = L.resolveDiTConfig(meta.config as Partial<DiTConfig>, `${name}: metadata 'lavender'.config`);
    } catch (e) {
      throw new Error(`${name} is a checkpoint of another model, not a class-conditional DiT (${(e as Error).message})`);
    }
    if (config.in_channels !== 1 && config.in_channels !== 3) throw new Error(`${name}: the DiT has ${config.in_channels} input channels; the app shows gray (1) or RGB (3) images`);
    const weights = Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith('model.')));
    if (!Object.keys(weights).length) throw new Error(`${name}: no 'model.*' tensors (weights) in the file`);
    for (const [k, t] of Object.entries(tensors)) if (!k.startsWith('model.')) t.dispose();
    return { config, step: typeof meta.step === 'number' ? meta.step : null, weights };
  } catch (e) {
    dispose();
    throw e;
  }
}

/** A model from a checkpoint's bytes; the weights are checked against the config (names and shapes). */
export function trainerFromCheckpoint(bytes: Uint8Array, name: string, device: string, o: TrainerOptions = {}): { trainer: Trainer; step: number | null } {
  const ck = parseCheckpoint(bytes, name, device);
  try {
    return { trainer: new Trainer(device, ck.config, o, ck.weights), step: ck.step };
  } catch (e) {
    throw new Error(`${name}: the weights do not fit the model its metadata describes (${(e as Error).message})`);
  } finally {
    for (const t of Object.values(ck.weights)) t.dispose();
  }
}

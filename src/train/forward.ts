// `lavender forward`: run a model on given weights and inputs and write its output (and, with grad, the MSE
// loss against `target` and one gradient per parameter, zeros for unused ones). The parity tool for porting weights.
import { readFileSync } from 'node:fs';
import { DiT, type DiTConfig } from '../models/dit.js';
import { MMDiT, type MMDiTConfig } from '../models/mmdit.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { loadTorchCheckpoint } from '../io/torch-pt.js';
import { mseLoss } from '../ops/nn.js';
import { zeros } from '../ops/creation.js';
import { cast } from '../ops/movement.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface ForwardOptions {
  model: string;
  config: string;
  weights: string;
  inputs: string;
  out?: string;
  grad?: boolean;
  backend?: string;
}

export function readJson(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${what} ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${what} ${path}: invalid JSON (${(e as Error).message})`);
  }
}

function input(inputs: Record<string, Tensor>, name: string, file: string, dtypes: string[], rank: number): Tensor {
  const t = inputs[name];
  if (!t) throw new Error(`inputs ${file}: missing tensor '${name}' (have: ${Object.keys(inputs).join(', ') || 'none'})`);
  if (!dtypes.includes(t.dtype) || t.ndim !== rank) throw new Error(`inputs ${file}: '${name}' must be ${dtypes.join(' or ')} of rank ${rank}, got ${t.describe()}`);
  return t;
}

const FLOAT = ['float32', 'float16', 'bfloat16', 'float64'];

/** A state dict from safetensors or from a PyTorch .pt/.pth/.bin archive (read as data, never executed). */
export function loadWeights(path: string, device?: string): Record<string, Tensor> {
  return /\.(pt|pth|bin|ckpt)$/i.test(path) ? loadTorchCheckpoint(path, { device }) : loadSafetensors(path, { device }).tensors;
}

/** Returns the tensors written to `out` (output, and with grad: loss and grad.<name>). */
export function runForward(o: ForwardOptions): Record<string, Tensor> {
  if (o.model !== 'dit' && o.model !== 'mmdit') throw new Error(`forward: unknown model '${o.model}' (available: dit, mmdit)`);
  const config = readJson(o.config, 'config');
  const device = o.backend ?? 'cpu';
  const model = o.model === 'dit' ? new DiT(config as Partial<DiTConfig>, { device }) : new MMDiT(config as Partial<MMDiTConfig>, { device });
  model.eval();
  const weights = loadWeights(o.weights, device);
  try {
    model.loadStateDict(weights);
  } catch (e) {
    throw new Error(`weights ${o.weights}: ${(e as Error).message}`);
  }
  const { tensors: inputs } = loadSafetensors(o.inputs, { device });
  const x = cast(input(inputs, 'x', o.inputs, FLOAT, 4), 'float32');
  const t = cast(input(inputs, 't', o.inputs, FLOAT, 1), 'float32');
  let run: () => Tensor;
  if (model instanceof DiT) {
    const y = input(inputs, 'y', o.inputs, ['int64', 'int32'], 1);
    const maxLabel = model.config.num_classes; // the extra row is the null class of classifier-free guidance
    const bad = Array.from(y.toArray()).findIndex((v) => !(v >= 0 && v <= maxLabel));
    if (bad >= 0) throw new Error(`inputs ${o.inputs}: 'y'[${bad}] = ${y.toArray()[bad]} is out of range (labels 0..${maxLabel - 1}, ${maxLabel} = null class)`);
    run = () => model.forward(x, t, y);
  } else {
    const cSeq = cast(input(inputs, 'c_seq', o.inputs, FLOAT, 3), 'float32');
    run = () => model.forward(x, t, cSeq);
  }
  const result: Record<string, Tensor> = {};
  scope(() => {
    const output = run();
    result.output = output;
    if (o.grad) {
      const target = cast(input(inputs, 'target', o.inputs, FLOAT, 4), 'float32');
      const loss = mseLoss(output, target);
      loss.backward();
      result.loss = loss.reshape([1]);
      // one gradient per parameter: zeros where the output does not depend on it (e.g. the text-side MLP of
      // an MMDiT whose last block is a double block), so the file's keys never depend on the graph
      for (const [name, p] of model.namedParameters()) result[`grad.${name}`] = p.grad ?? zeros([...p.shape], { dtype: p.dtype, device });
    }
    return result;
  });
  if (o.out) saveSafetensors(o.out, result, { model: o.model, source: 'lavender forward' });
  return result;
}

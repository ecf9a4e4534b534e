// Module: a tree of named parameters and sub-modules, with dotted names exactly as PyTorch's
// state_dict() spells them (`layers.0.attention.wq.weight`), state dicts and train/eval mode.
import { noGrad } from '../autograd/grad-mode.js';
import { cast } from '../ops/movement.js';
import { keep } from '../tensor/scope.js';
import { shapeStr } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

export interface LoadOptions {
  /** Refuse missing or unexpected names (default true). Shapes must always match. */
  strict?: boolean;
  /**
   * Take the given tensors as the parameters instead of copying into them (torch's assign=True): no
   * second copy of the weights, and 16-bit floats stay 16-bit (layers cast them per use). Other dtypes are
   * cast to the parameter's. With a model built on the meta device this loads weights of any size with
   * memory for them alone. The tensors are moved to `device` (default: each tensor's own).
   */
  assign?: boolean;
  device?: string;
}

export class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Register a trainable parameter: kept out of scopes, requiring grad, named for errors. */
  protected param(name: string, t: Tensor): Tensor {
    if (this.params.has(name) || this.children.has(name)) throw new Error(`${this.constructor.name}: name '${name}' is already registered`);
    keep(t).requiresGrad_(true);
    this.params.set(name, t);
    return t;
  }

  /**
   * Swap a registered parameter for a new tensor (e.g. a resized positional table); the old one is
   * disposed. A field of the module that held the old tensor (Linear.weight) now holds the new one.
   */
  protected replaceParam(name: string, t: Tensor): Tensor {
    const old = this.params.get(name);
    if (!old) throw new Error(`${this.constructor.name}: no parameter '${name}' to replace`);
    keep(t).requiresGrad_(true);
    this.params.set(name, t);
    const fields = this as unknown as Record<string, unknown>;
    if (fields[name] === old) fields[name] = t;
    old.dispose();
    return t;
  }

  protected module<M extends Module>(name: string, m: M): M {
    if (this.params.has(name) || this.children.has(name)) throw new Error(`${this.constructor.name}: name '${name}' is already registered`);
    this.children.set(name, m);
    return m;
  }

  *namedModules(prefix = ''): Iterable<[string, Module]> {
    yield [prefix, this];
    for (const [n, c] of this.children) yield* c.namedModules(prefix ? `${prefix}.${n}` : n);
  }

  *namedParameters(prefix = ''): Iterable<[string, Tensor]> {
    for (const [n, p] of this.params) yield [prefix ? `${prefix}.${n}` : n, p];
    for (const [n, c] of this.children) yield* c.namedParameters(prefix ? `${prefix}.${n}` : n);
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((a, p) => a + p.size, 0);
  }

  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  /**
   * Copy values from `sd` into the parameters (cast to each parameter's dtype). Names may carry a `model.`
   * prefix, as the release's checkpoints do. Every problem is listed in one error.
   */
  loadStateDict(sd: Record<string, Tensor>, opts: LoadOptions = {}): void {
    const strict = opts.strict ?? true;
    const own = new Map(this.namedParameters());
    const incoming = new Map<string, Tensor>();
    for (const [k, v] of Object.entries(sd)) incoming.set(k.startsWith('model.') && !own.has(k) ? k.slice(6) : k, v);
    const missing = [...own.keys()].filter((k) => !incoming.has(k));
    const unexpected = [...incoming.keys()].filter((k) => !own.has(k));
    const misShaped = [...incoming].filter(([k, v]) => own.has(k) && shapeStr(own.get(k)!.shape) !== shapeStr(v.shape))
      .map(([k, v]) => `${k}: checkpoint ${shapeStr(v.shape)} vs model ${shapeStr(own.get(k)!.shape)}`);
    const problems: string[] = [];
    if (misShaped.length) problems.push(`mis-shaped: ${misShaped.join('; ')}`);
    if (strict && missing.length) problems.push(`missing: ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected: ${unexpected.join(', ')}`);
    if (problems.length) throw new Error(`loadStateDict(${this.constructor.name}): ${problems.join(' | ')}`);
    if (opts.assign) {
      const owners = new Map<string, [Module, string]>();
      for (const [prefix, m] of this.namedModules()) for (const n of m.params.keys()) owners.set(prefix ? `${prefix}.${n}` : n, [m, n]);
      noGrad(() => {
        for (const [k, v] of incoming) {
          const own = owners.get(k);
          if (!own) continue;
          const [m, n] = own;
          const keepDtype = v.dtype === 'bfloat16' || v.dtype === 'float16' || v.dtype === m.params.get(n)!.dtype;
          let t = keepDtype ? v.alias() : cast(v, m.params.get(n)!.dtype);
          if (opts.device && t.device !== opts.device) {
            const moved = t.to(opts.device);
            t.dispose();
            t = moved;
          }
          m.replaceParam(n, t);
        }
      });
      return;
    }
    noGrad(() => {
      for (const [k, v] of incoming) {
        const p = own.get(k);
        if (!p) continue;
        const src = v.dtype === p.dtype ? v : cast(v, p.dtype);
        p.assign(src.device === p.device ? src : src.to(p.device));
        if (src !== v) src.dispose();
      }
    });
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.setGrad(null);
  }
}

/** Children named 0, 1, 2, ... like nn.ModuleList / nn.Sequential; gaps hold parameter-free layers. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  constructor(items: readonly (M | null)[]) {
    super();
    items.forEach((m, i) => {
      if (m) {
        this.module(String(i), m);
        this.items.push(m);
      }
    });
  }
}

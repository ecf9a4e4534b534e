// One training step (forward, backward, optimizer) timed after warm-up: `lavender bench train-step`.
import { DiT, DIT_PRESETS } from '../models/dit.js';
import { flowLoss } from '../flow/rectified-flow.js';
import { Adam } from '../optim/adamw.js';
import { randn, tensor } from '../ops/creation.js';
import { clamp } from '../ops/elementwise.js';
import { Generator } from '../tensor/random.js';
import { scope, keep } from '../tensor/scope.js';

export interface StepBenchResult {
  model: string;
  batch: number;
  backend: string;
  seconds_per_step: number;
  /** CPU time of the process (all threads) per step, median: less sensitive to other load than wall time. */
  cpu_seconds_per_step: number;
  steps: number;
  parameters: number;
  /** Peak resident set of the process so far (MiB). */
  max_rss_mb: number;
}

export function benchTrainStep(o: { model: string; batch: number; backend: string; steps: number; warmup: number }): StepBenchResult {
  const preset = o.model.startsWith('dit-') ? DIT_PRESETS[o.model.slice(4)] : undefined;
  if (!preset) throw new Error(`bench train-step: unknown model '${o.model}' (available: ${Object.keys(DIT_PRESETS).map((k) => `dit-${k}`).join(', ')})`);
  const gen = new Generator(0);
  const model = new DiT(preset, { generator: gen, device: o.backend });
  model.generator = gen;
  const opt = new Adam(model.parameters(), { lr: 1e-4 });
  const x = keep(clamp(randn([o.batch, preset.in_channels, preset.input_size, preset.input_size], { generator: gen, device: o.backend }), -1, 1));
  const y = keep(tensor(Array.from({ length: o.batch }, (_, i) => i % 10), { dtype: 'int64', device: o.backend }));
  const times: number[] = [], cpu: number[] = [];
  for (let i = 0; i < o.warmup + o.steps; i++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    scope(() => {
      const { loss } = flowLoss((xt, t, c: typeof y) => model.forward(xt, t, c), x, y, { generator: gen });
      opt.zeroGrad();
      loss.backward();
      opt.step();
      loss.item();
    });
    if (i >= o.warmup) {
      times.push((performance.now() - t0) / 1000);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1e6);
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  return {
    model: o.model, batch: o.batch, backend: o.backend, seconds_per_step: median(times), cpu_seconds_per_step: median(cpu),
    steps: o.steps, parameters: model.numParameters(), max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

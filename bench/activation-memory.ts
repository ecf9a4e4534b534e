// Activation memory of one training micro-batch of an MMDiT preset with and without activation
// checkpointing, measured from the cpu backend's live bytes (src/train/step-memory.ts), next to the meta
// device's prediction (what `lavender info` reports). Also checks that recomputation changes no gradient.
//   node dist/bench/activation-memory.js [preset=mmdit-small] [batch=4] [latent=16] [tokens=32]
import * as L from '../src/index.js';
import { measureStepMemory } from '../src/train/step-memory.js';

const [name = 'mmdit-small', b = '4', side = '16', tok = '32'] = process.argv.slice(2);
const B = Number(b), S = Number(side), T = Number(tok);
const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function run(device: string) {
  const model = new L.MMDiT(L.MMDIT_PRESETS[name]!, { generator: new L.Generator(1), device });
  const g = new L.Generator(2);
  if (device !== 'meta') L.noGrad(() => { for (const p of model.parameters()) p.assign(L.add(p, L.mul(L.randn(p.shape, { generator: g }), 0.02))); });
  const x = L.randn([B, 4, S, S], { generator: g, device }), c = L.randn([B, T, model.config.cond_seq_dim], { generator: g, device });
  const out: Record<string, ReturnType<typeof measureStepMemory> & { grads?: Float32Array[] }> = {};
  for (const [mode, o] of [['plain', {}], ['block-wise', { blockwise: true }], ['recomputed', { checkpoint: true }]] as const) {
    out[mode] = { ...measureStepMemory(model, x, c, o), ...(device === 'cpu' ? { grads: model.parameters().map((p) => p.grad!.toArray() as Float32Array) } : {}) };
  }
  return out;
}

const cpu = run('cpu'), meta = run('meta');
const same = cpu['block-wise']!.grads!.every((a, i) => a.every((v, k) => v === cpu.recomputed!.grads![i]![k]));
console.log(`${name}, batch ${B}, ${S}x${S} latents (${(S / 2) ** 2} image tokens), ${T} text tokens; gradients ${MiB(cpu.plain!.gradientBytes)}`);
for (const mode of ['plain', 'block-wise', 'recomputed']) {
  console.log(`  ${mode.padEnd(10)} activations measured ${MiB(cpu[mode]!.activationBytes)} (peak ${MiB(cpu[mode]!.peakBytes)}), predicted on meta ${MiB(meta[mode]!.activationBytes)}`);
}
const r = cpu.recomputed!.activationBytes;
console.log(`  recomputation: ${(100 * (1 - r / cpu['block-wise']!.activationBytes)).toFixed(0)}% less than block-wise, ${(100 * (1 - r / cpu.plain!.activationBytes)).toFixed(0)}% less than plain; gradients bit-identical to block-wise: ${same}`);
console.log(JSON.stringify({ bench: 'activation-memory', preset: name, batch: B, latent: S, tokens: T, cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, { peak: v.peakBytes, activations: v.activationBytes, gradients: v.gradientBytes }])), meta: Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, v.activationBytes])) }));

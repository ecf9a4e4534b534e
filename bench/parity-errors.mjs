#!/usr/bin/env node
// The errors the DiT/MMDiT parity tests see against PyTorch (test/fixtures), to set their tolerances from
// what is achieved (test/harness/compare.ts PARITY; bench/RESULTS.md "Parity errors"). After `npm run build`:
//
//   node bench/parity-errors.mjs [--backend webgpu]
//
// Per fixture: relErr = max |a - b| / max |b| of the output, the loss and the worst gradient, and the worst
// element-wise error |a_i - b_i| / (|b_i| + f max|b|) for floors f = 1e-3 and 1e-2.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../dist/src/index.js';
import { loadSafetensors } from '../dist/src/io/safetensors.js';
import { runForward } from '../dist/src/train/forward.js';
import { relErr } from '../dist/test/harness/compare.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const backend = process.argv.includes('--backend') ? process.argv[process.argv.indexOf('--backend') + 1] : undefined;

function elementwise(a, b) {
  const x = a.toArray(), y = b.toArray();
  let m = 0;
  for (const v of y) m = Math.max(m, Math.abs(v));
  return [1e-3, 1e-2].map((f) => {
    let w = 0;
    for (let i = 0; i < y.length; i++) w = Math.max(w, Math.abs(x[i] - y[i]) / (Math.abs(y[i]) + f * m));
    return w;
  });
}

const fmt = (v) => v.toExponential(2);
const cases = backend ? [['dit', 'small']] : [['dit', 'small'], ['dit', 'rgb'], ['mmdit', 'tiny'], ['mmdit', 'single_only_nonsquare']];
console.log('| fixture | output relErr | output elem (1e-3 / 1e-2) | loss relErr | worst gradient relErr | gradient elem (1e-3 / 1e-2) |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [model, name] of cases) {
  const f = (part) => join(root, 'test', 'fixtures', model, `${name}.${part}`);
  const got = runForward({ model, config: f('config.json'), weights: f('weights.safetensors'), inputs: f('inputs.safetensors'), grad: true, backend });
  for (const k of Object.keys(got)) if (got[k]?.to) got[k] = got[k].to('cpu');
  const want = loadSafetensors(f('expected.safetensors')).tensors;
  let gmax = 0, worst = '';
  const ge = [0, 0];
  for (const k of Object.keys(want).filter((n) => n.startsWith('grad.'))) {
    const r = relErr(got[k], want[k]);
    if (r > gmax) [gmax, worst] = [r, k];
    elementwise(got[k], want[k]).forEach((v, i) => (ge[i] = Math.max(ge[i], v)));
  }
  const oe = elementwise(got.output, want.output);
  console.log(`| ${model} '${name}'${backend ? ` on ${backend}` : ''} | ${fmt(relErr(got.output, want.output))} | ${fmt(oe[0])} / ${fmt(oe[1])} | ${fmt(relErr(got.loss, want.loss))} | ${fmt(gmax)} (${worst}) | ${fmt(ge[0])} / ${fmt(ge[1])} |`);
}
process.exit(0);

// `lavender forward --grad` writes one gradient per parameter (zeros for the unused ones), and plots show
// every series of their legend, zeros included (on a separate 0 baseline below the log axis).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as L from '../src/index.js';
import { runForward } from '../src/train/forward.js';
import { plotPanels } from '../src/io/plot.js';

const dir = mkdtempSync(join(tmpdir(), 'lav-fwd-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('forward --grad: an MMDiT whose last block is a double block gets zero gradients for its unused text-side weights', () => {
  const config = { dim: 32, n_layers: 1, n_double_layers: 1, n_heads: 2, global_conddim: 32, cond_seq_dim: 8, max_seq: 16 };
  L.manualSeed(0);
  const m = new L.MMDiT(config);
  // random weights everywhere (the release zero-initialises modulations, which would zero most gradients)
  const weights = Object.fromEntries([...m.namedParameters()].map(([n, p]) => [n, L.mul(L.randn([...p.shape]), 0.2)]));
  const files = { config: join(dir, 'c.json'), weights: join(dir, 'w.safetensors'), inputs: join(dir, 'in.safetensors') };
  writeFileSync(files.config, JSON.stringify(config));
  L.saveSafetensors(files.weights, weights);
  L.saveSafetensors(files.inputs, { x: L.randn([2, 4, 4, 4]), t: L.rand([2]), c_seq: L.randn([2, 3, 8]), target: L.randn([2, 4, 4, 4]) });
  const out = runForward({ model: 'mmdit', ...files, grad: true });
  const names = [...m.namedParameters()].map(([n]) => n);
  assert.deepEqual(Object.keys(out).filter((k) => k.startsWith('grad.')).sort(), names.map((n) => `grad.${n}`).sort(), 'one gradient per parameter');
  const isZero = (n: string) => Array.from(out[`grad.${n}`]!.toArray()).every((v) => v === 0);
  const unused = names.filter(isZero);
  assert.ok(unused.some((n) => n.startsWith('double_layers.0.mlpC.')), `unused: ${unused.join(', ')}`);
  assert.ok(unused.includes('double_layers.0.attn.w1o.weight'), `unused: ${unused.join(', ')}`);
  for (const n of unused) assert.deepEqual([...out[`grad.${n}`]!.shape], [...weights[n]!.shape], n);
  assert.ok(names.filter((n) => !isZero(n)).length > names.length / 2, 'the used parameters have gradients');
});

test('plotPanels draws a series whose values are 0 (log axis) on a 0 baseline instead of leaving it out', () => {
  const img = plotPanels([[{ title: 'P', xs: [32, 64, 128], series: [{ label: 'ZERO', values: [0, 0, 0] }, { label: 'B', values: [0.1, 0.2, 0.3] }] }]]);
  const [r, g, b] = [31, 119, 180]; // the first series' colour
  let inPlot = 0;
  const axisRow = 240 + 4 - 44; // the x axis of the only panel (legend text lies below it)
  for (let y = 0; y < axisRow; y++) for (let x = 0; x < img.width; x++) {
    const i = (y * img.width + x) * 3;
    if (img.pixels[i] === r && img.pixels[i + 1] === g && img.pixels[i + 2] === b) inPlot++;
  }
  assert.ok(inPlot > 100, `the zero series has ${inPlot} pixels above the axis`);
});

test('plotPanels with yZoom shows exactly yRange and leaves out the values outside it', () => {
  const colourPixels = (img: { width: number; pixels: Uint8Array }, [r, g, b]: number[], rows: number) => {
    let n = 0;
    for (let y = 0; y < rows; y++) for (let x = 0; x < img.width; x++) {
      const i = (y * img.width + x) * 3;
      if (img.pixels[i] === r && img.pixels[i + 1] === g && img.pixels[i + 2] === b) n++;
    }
    return n;
  };
  const panel = { title: 'Z', xs: [-3, -2, -1], xScale: 'linear' as const, yRange: [1, 1.1] as [number, number], series: [{ label: 'IN', values: [1.02, 1.05, 1.08] }, { label: 'OUT', values: [1.5, 2, 3] }] };
  const axisRow = 240 + 4 - 44;
  const [blue, orange] = [[31, 119, 180], [255, 127, 14]];
  const zoomed = plotPanels([[{ ...panel, yZoom: true }]]);
  assert.ok(colourPixels(zoomed, blue, axisRow) > 100, 'the series inside the range is drawn');
  assert.equal(colourPixels(zoomed, orange, axisRow), 0, 'the series above the range is left out');
  // without the zoom the same values are drawn (the range grows to at least a factor of 2)
  assert.ok(colourPixels(plotPanels([[panel]]), orange, axisRow) > 100);
});

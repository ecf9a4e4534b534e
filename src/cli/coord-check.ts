// `lavender coord-check`: muP coordinate check, JSON + PNG plot (one panel per block, rows muP and SP).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng } from '../io/png.js';
import { prepareOutputDir } from '../io/output-path.js';
import { plotPanels, type Panel } from '../io/plot.js';
import { writeFileAtomic } from '../io/safetensors.js';
import { coordCheck, widthGrowth, type CoordCheckResult, type Parametrization } from '../train/coord-check.js';
import { intFlag, numberFlag, stringFlag, type Parsed } from './args.js';

export function panelsFor(r: CoordCheckResult): Panel[] {
  return r.blocks.map((block, b) => ({
    title: `${r.parametrization === 'mup' ? 'MUP' : 'SP'} ${block}`,
    xs: r.widths,
    series: r.changes.slice(1).map((step, s) => ({ label: `STEP ${s + 1}`, values: step[b]! })),
  }));
}

export function runCoordCheck(p: Parsed): number {
  const widths = stringFlag(p, 'widths', '32,64,128,256').split(',').map(Number);
  if (widths.some((w) => !Number.isInteger(w) || w <= 0 || w % 16)) throw new Error(`coord-check: --widths must be positive multiples of 16, got '${stringFlag(p, 'widths', '')}'`);
  const which = stringFlag(p, 'param', 'both');
  if (!['mup', 'sp', 'both'].includes(which)) throw new Error(`coord-check: --param must be mup, sp or both, got '${which}'`);
  const out = stringFlag(p, 'out', join('runs', 'coord-check'));
  prepareOutputDir(out);
  const params: Parametrization[] = which === 'both' ? ['mup', 'sp'] : [which as Parametrization];
  const results = params.map((parametrization) => coordCheck({ widths, steps: intFlag(p, 'steps', 5), lr: numberFlag(p, 'lr', 1e-2), parametrization, seed: intFlag(p, 'seed', 0, true) }));
  writeFileSync(join(out, 'coord-check.json'), `${JSON.stringify(results, null, 1)}\n`);
  const img = plotPanels(results.map(panelsFor), { title: 'COORD CHECK: MEAN |OUTPUT - OUTPUT AT STEP 0| VS WIDTH' });
  writeFileAtomic(join(out, 'coord-check.png'), [encodePng(img.width, img.height, img.pixels, 3)]);
  for (const r of results) console.log(`${r.parametrization}: growth from width ${widths[0]} to ${widths[widths.length - 1]} per block: ${widthGrowth(r).map((g, i) => `${r.blocks[i]} x${g.toFixed(2)}`).join(', ')}`);
  console.log(`wrote ${join(out, 'coord-check.json')} and coord-check.png`);
  return 0;
}

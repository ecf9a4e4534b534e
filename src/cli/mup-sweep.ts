// `lavender mup-sweep`: the muTransfer learning-rate sweep (train/mup-sweep.ts) from the command line: the
// grid from flags, synthetic class-conditional shards on request, one progress line for the whole sweep,
// then sweep.jsonl, sweep.png (final loss against log2(lr), one curve per width, muP and SP side by side,
// best rate per width marked) and summary.md (the tables).
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeSyntheticImagenetInt8 } from '../data/imagenet-int8.js';
import { detectT2ILayout, t2iBatch, type T2ILayout } from '../data/t2i.js';
import { scope } from '../tensor/scope.js';
import { openMds } from '../data/mds/index.js';
import { encodePng } from '../io/png.js';
import { writeFileAtomic } from '../io/byte-source.js';
import { plotPanels, type Panel } from '../io/plot.js';
import { analyzeSweep, meanByRate, planSweep, runSweepHere, writeSweepTable, type SweepAnalysis, type SweepEvent, type SweepRow } from '../train/mup-sweep.js';
import { TRAIN_PARAMETRIZATIONS, type TrainParametrization } from '../train/parametrization.js';
import { formatEta } from '../train/progress.js';
import { lrLabel, pointKey, type SweepSettings } from '../train/sweep-run.js';
import { intFlag, stringFlag, type Parsed } from './args.js';
import { runSweepPool } from './sweep-pool.js';

/** `2^-14..2^-6` (every power of two between), or a comma list of numbers and powers `2^-10,1e-3`. */
export function parseLrs(text: string): number[] {
  const pow = (t: string) => {
    const m = /^2\^(-?\d+)$/.exec(t.trim());
    return m ? Number(m[1]) : null;
  };
  const range = /^(.+)\.\.(.+)$/.exec(text);
  if (range) {
    const [a, b] = [pow(range[1]!), pow(range[2]!)];
    if (a === null || b === null || a > b) throw new Error(`mup-sweep: --lrs range '${text}' must be 2^A..2^B with integers A <= B (e.g. 2^-14..2^-6)`);
    return Array.from({ length: b - a + 1 }, (_, i) => 2 ** (a + i));
  }
  return text.split(',').map((t) => {
    const e = pow(t);
    const v = e !== null ? 2 ** e : Number(t);
    if (!t.trim() || !(v > 0) || !Number.isFinite(v)) throw new Error(`mup-sweep: --lrs entry '${t}' is not a positive number or 2^K (give e.g. 2^-14..2^-6 or 1e-3,2^-8)`);
    return v;
  });
}

export function parseParams(text: string): TrainParametrization[] {
  if (text === 'both') return ['mup', 'sp'];
  const ps = text.split(',');
  for (const p of ps) if (!TRAIN_PARAMETRIZATIONS.includes(p as TrainParametrization)) throw new Error(`mup-sweep: --param must be mup, sp, release, both (mup and sp) or a comma list of them, got '${text}'`);
  if (new Set(ps).size !== ps.length) throw new Error(`mup-sweep: --param names a parametrisation twice: '${text}'`);
  return ps as TrainParametrization[];
}

function parseWidths(text: string): number[] {
  const ws = text.split(',').map((t) => Number(t));
  if (ws.some((w) => !Number.isInteger(w) || w < 1)) throw new Error(`mup-sweep: --widths must be a comma list of positive integers, got '${text}'`);
  return ws;
}

const NAMES: Record<TrainParametrization, string> = { mup: 'MUP', sp: 'SP', release: 'RELEASE RULE' };

/** The basin row of sweep.png shows the losses within this factor of the lowest one. */
export const BASIN_ZOOM = 1.06;

/**
 * The muTransfer plot: one panel per parametrisation (side by side), one curve per width. `zoom`: the same
 * panels showing only losses up to zoom x the lowest (the floor of the basins, where the best rates are).
 */
export function sweepPanels(rows: readonly SweepRow[], a: SweepAnalysis, zoom?: number): Panel[] {
  const means = meanByRate(rows);
  const params = [...new Set(rows.map((r) => r.parametrization))];
  const xs = [...new Set(rows.map((r) => r.log2_lr))].sort((x, y) => x - y);
  // one y range for every panel, so muP and SP compare at a glance
  const shown = [...means.values()].filter((m) => !m.diverged && m.loss !== null && m.loss > 0).map((m) => m.loss!);
  const lowest = Math.min(...shown);
  const yRange: [number, number] | undefined = !shown.length ? undefined : zoom ? [lowest, lowest * zoom] : [lowest, Math.max(...shown)];
  return params.map((p) => {
    const widths = [...new Set(rows.filter((r) => r.parametrization === p).map((r) => r.width))].sort((x, y) => x - y);
    return {
      title: zoom ? `${NAMES[p]}: THE FLOOR, LOSS UP TO ${zoom} X LOWEST` : `${NAMES[p]}: FINAL LOSS`,
      xs,
      xScale: 'linear',
      xTitle: 'LOG2(LR)',
      yRange,
      yZoom: !!zoom,
      series: widths.map((w) => {
        const values = xs.map((x) => {
          const m = means.get(`${p}|${w}|${2 ** x}`);
          return m && !m.diverged && m.loss !== null ? m.loss : NaN;
        });
        const best = a.optima.find((o) => o.parametrization === p && o.width === w)?.best_lr;
        return { label: `W${w}`, values, marks: best ? [xs.indexOf(Math.log2(best))] : [] };
      }),
    };
  });
}

/** summary.md: per parametrisation a loss table (rows: lr, columns: width; best in bold), then the optima. */
export function sweepSummary(rows: readonly SweepRow[], a: SweepAnalysis, settingsLine: string): string {
  const means = meanByRate(rows);
  const params = [...new Set(rows.map((r) => r.parametrization))];
  const lrs = [...new Set(rows.map((r) => r.lr))].sort((x, y) => x - y);
  const out: string[] = [settingsLine, ''];
  for (const p of params) {
    const widths = [...new Set(rows.filter((r) => r.parametrization === p).map((r) => r.width))].sort((x, y) => x - y);
    out.push(`${NAMES[p] === 'MUP' ? 'muP' : NAMES[p] === 'SP' ? 'SP' : 'release rule'}: final loss (mean of the last 10% of steps${rows.some((r) => r.seed > 0) ? ', averaged over seeds' : ''}; **best** per width; div = diverged)`, '');
    out.push(`| lr | ${widths.map((w) => `width ${w}`).join(' | ')} |`, `|---|${widths.map(() => '---:').join('|')}|`);
    for (const lr of lrs) {
      const cells = widths.map((w) => {
        const m = means.get(`${p}|${w}|${lr}`);
        if (!m) return '';
        if (m.diverged || m.loss === null) return 'div';
        const best = a.optima.find((o) => o.parametrization === p && o.width === w)?.best_lr === lr;
        return best ? `**${m.loss.toFixed(4)}**` : m.loss.toFixed(4);
      });
      out.push(`| ${lrLabel(lr)} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  out.push('| parametrisation | ' + [...new Set(a.optima.map((o) => o.width))].map((w) => `best lr, width ${w}`).join(' | ') + ' | shift (x2 steps) |');
  out.push(`|---|${[...new Set(a.optima.map((o) => o.width))].map(() => '---').join('|')}|---|`);
  for (const p of params) {
    const o = a.optima.filter((x) => x.parametrization === p);
    const s = a.shift[p];
    out.push(`| ${p} | ${o.map((x) => (x.best_lr ? lrLabel(x.best_lr) : 'all diverged')).join(' | ')} | ${s === null || s === undefined ? 'n/a' : (s > 0 ? '+' : '') + s} |`);
  }
  out.push('');
  if (a.spWidestDivergesAtMuPBest !== null) out.push(`SP at the widest width ${a.spWidestDivergesAtMuPBest ? 'diverges' : 'does not diverge'} at muP's best rate for that width.`);
  if (a.transfers !== null) out.push(`muTransfer criterion (muP moves by at most one step; SP by at least two, or diverges at muP's rate): ${a.transfers ? 'holds' : 'does not hold'}.`);
  return `${out.join('\n')}\n`;
}

/** One line for the whole sweep: runs done, the run in progress, eta from the work done so far. */
class SweepProgress {
  private readonly start = performance.now();
  private done = 0;
  private doneRuns: number;
  private lastPrint = 0;
  private readonly current = new Map<number, { key: string; step: number; loss: number }>();
  constructor(private readonly total: number, private readonly totalRuns: number, alreadyDone: number, private readonly steps: number, private readonly cost: (key: string) => number,
    private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.doneRuns = alreadyDone;
  }

  event(e: SweepEvent): void {
    if (e.kind === 'start') this.current.set(e.worker, { key: e.key, step: 0, loss: NaN });
    else if (e.kind === 'step') {
      const c = this.current.get(e.worker);
      if (c) [c.step, c.loss] = [e.step, e.loss];
    } else {
      this.current.delete(e.worker);
      this.done += this.steps * this.cost(e.result.key);
      this.doneRuns++;
    }
    const tty = this.stream.isTTY;
    const now = performance.now();
    if (!tty && e.kind !== 'done') return;
    if (tty && e.kind === 'step' && now - this.lastPrint < 200) return;
    this.lastPrint = now;
    const running = [...this.current.values()].reduce((a, c) => a + c.step * this.cost(c.key), 0);
    const work = this.done + running, frac = this.total ? work / this.total : 1;
    const rate = work / ((now - this.start) / 1000);
    const width = 20, fill = Math.round(frac * width);
    const now1 = [...this.current.values()].map((c) => `${c.key} ${c.step}/${this.steps} loss ${Number.isFinite(c.loss) ? c.loss.toFixed(4) : '-'}`).join(', ');
    const last = e.kind === 'done' ? ` | ${e.result.key}: ${e.result.diverged ? 'diverged' : `loss ${e.result.final_loss?.toFixed(4)}`}` : '';
    const line = `mup-sweep ${this.doneRuns}/${this.totalRuns} runs [${'='.repeat(fill)}${' '.repeat(width - fill)}] ${(frac * 100).toFixed(0)}%${now1 ? ` | ${now1}` : last}  eta ${rate > 0 ? formatEta((this.total - work) / rate) : '?'}`;
    this.stream.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
  }

  end(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}

/** The layout of the shards in `dir`, after decoding their first sample as the runs will. */
function checkData(dir: string, s: SweepSettings): T2ILayout {
  const ds = openMds(dir);
  const layout = detectT2ILayout(Object.keys(ds.columns), dir);
  if (ds.length < s.batch) throw new Error(`mup-sweep: ${dir} holds ${ds.length} samples, fewer than --batch ${s.batch}`);
  scope(() => void t2iBatch([ds.get(0)], { latentSize: s.latentSize, condDim: s.condDim, tokens: s.tokens, layout }, dir));
  return layout;
}

/** A rough cost of one step at a width, relative to a tiny model (for the eta only). */
const stepCost = (width: number) => 1 + (width / 180) ** 2;

export async function mupSweepCommand(p: Parsed): Promise<number> {
  const synthetic = p.flags.has('synthetic');
  if (synthetic === p.flags.has('data')) throw new Error('mup-sweep: pass exactly one of --data DIR (MDS shards: LavenderFlow or imagenet.int8 layout) and --synthetic');
  const out = stringFlag(p, 'out', join('runs', 'mup-sweep'));
  const widths = parseWidths(stringFlag(p, 'widths', '64,128,256,512'));
  const lrs = parseLrs(stringFlag(p, 'lrs', '2^-14..2^-6'));
  const params = parseParams(stringFlag(p, 'param', 'both'));
  const steps = intFlag(p, 'steps', 200);
  const layers = intFlag(p, 'layers', 2);
  const classes = intFlag(p, 'classes', 16);
  for (const f of ['samples', 'classes']) if (!synthetic && p.flags.has(f)) throw new Error(`mup-sweep: --${f} applies to --synthetic data only`);
  const data = resolve(synthetic ? join(out, 'data') : stringFlag(p, 'data', ''));
  const latentSize = intFlag(p, 'latent-size', synthetic ? 8 : 32);
  if (latentSize % 2) throw new Error(`mup-sweep: --latent-size must be even (2x2 patches), got ${latentSize}`);
  const settings: SweepSettings = {
    data, steps, batch: intFlag(p, 'batch', 16), layers, doubleLayers: Math.ceil(layers / 2), headDim: intFlag(p, 'head-dim', 32), latentSize,
    condDim: intFlag(p, 'cond-dim', synthetic ? 2 * classes : 2048), tokens: intFlag(p, 'tokens', 64),
    warmup: intFlag(p, 'warmup', Math.max(1, Math.floor(steps / 10)), true), weightDecay: 0, baseWidth: intFlag(p, 'base-width', Math.min(...widths)),
  };
  for (const w of widths) if (w % settings.headDim) throw new Error(`mup-sweep: width ${w} is not a multiple of --head-dim ${settings.headDim}`);
  const made = synthetic ? { samples: intFlag(p, 'samples', 1024), classes, latent_size: latentSize, seed: 0 } : null;
  const grid = { widths, lrs, params, seeds: intFlag(p, 'seeds', 1) };
  // given shards are checked before the sweep directory is touched: their layout, and one batch decoded with these settings
  const layout = synthetic ? 'imagenet.int8' : checkData(data, settings);
  const plan = planSweep(out, settings, grid, { synthetic: made });
  if (made && !existsSync(join(data, 'index.json'))) {
    writeSyntheticImagenetInt8(data, { samples: made.samples, latentSize, classes, seed: made.seed });
    process.stderr.write(`wrote ${made.samples} synthetic class-conditional samples (${classes} classes, imagenet.int8 layout) to ${data}\n`);
  }
  const nproc = intFlag(p, 'nproc', 1);
  process.stderr.write(`mup-sweep: ${plan.points.length} runs (${params.join(', ')} x widths ${widths.join(',')} x ${lrs.length} rates x ${plan.points.length / (params.length * widths.length * lrs.length)} seed(s)), ${steps} steps each on ${layout} shards; ${plan.finished.size} already finished, ${plan.todo.length} to run${plan.todo.length && nproc > 1 ? ` on ${Math.min(nproc, plan.todo.length)} processes` : ''}\n`);
  const total = plan.todo.reduce((a, q) => a + steps * stepCost(q.width), 0);
  const costOf = new Map(plan.points.map((q) => [pointKey(q), stepCost(q.width)]));
  const progress = new SweepProgress(total, plan.points.length, plan.finished.size, steps, (k) => costOf.get(k) ?? 1);
  try {
    if (nproc > 1) await runSweepPool(plan, nproc, (e) => progress.event(e));
    else runSweepHere(plan, (e) => progress.event(e));
  } finally {
    progress.end();
  }
  const rows = writeSweepTable(plan);
  const analysis = analyzeSweep(rows);
  const img = plotPanels([sweepPanels(rows, analysis), sweepPanels(rows, analysis, BASIN_ZOOM)], { title: 'MUTRANSFER: FINAL TRAIN LOSS VS LOG2(LR), ONE CURVE PER WIDTH', panelWidth: 420, panelHeight: 300 });
  writeFileAtomic(join(out, 'sweep.png'), [encodePng(img.width, img.height, img.pixels, 3)]);
  const settingsLine = `MMDiT ${layers} block(s) (${settings.doubleLayers} double-stream), head width ${settings.headDim}, ${steps} steps, batch ${settings.batch}, warm-up ${settings.warmup}, ${latentSize}x${latentSize} latents, muP base width ${settings.baseWidth}; data ${synthetic ? `synthetic (${made!.samples} samples, ${classes} classes)` : data}.`;
  const summary = sweepSummary(rows, analysis, settingsLine);
  writeFileSync(join(out, 'summary.md'), summary);
  process.stdout.write(summary);
  console.log(`wrote ${join(out, 'sweep.jsonl')}, sweep.png and summary.md`);
  return 0;
}

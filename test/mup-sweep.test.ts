// The muTransfer lr sweep: parametrisations (muP = SP at the base width, muP's per-layer rates), the
// imagenet.int8 layout read by the t2i loader with the class as condition, and `lavender mup-sweep` end to
// end at CI size: its outputs, and that a killed sweep (the whole command, or one worker of --nproc 2)
// continues where it stopped without redoing a finished run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as L from '../src/index.js';
import { main } from '../src/cli/main.js';
import { parseLrs, parseParams, sweepPanels } from '../src/cli/mup-sweep.js';
import { IMAGENET_INT8_COLUMNS, int8LatentByte, writeImagenetInt8, writeSyntheticImagenetInt8 } from '../src/data/imagenet-int8.js';
import { openMds } from '../src/data/mds/index.js';
import { detectT2ILayout, LATENT_SCALE, t2iBatch } from '../src/data/t2i.js';
import { analyzeSweep, planSweep, runSweepHere, type SweepRow } from '../src/train/mup-sweep.js';
import { readResult, runSweepPoint, type SweepSettings } from '../src/train/sweep-run.js';
import { parametrizationGroups, parametrizationModelOptions } from '../src/train/parametrization.js';
import { trainT2I } from '../src/train/train-t2i.js';
import type { ParamGroup } from '../src/optim/adamw.js';
import { scaledMs } from './harness/load.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'lav-sweep-'));

test('imagenet.int8 layout: uint8 latents decode as the release does, the label becomes two one-hot tokens', () => {
  const dir = tmp();
  const latents = Array.from({ length: 16 }, (_, i) => (i - 8) * 2); // 4 x 2 x 2, unscaled, -16 .. 14
  writeImagenetInt8(dir, [{ latents, label: 3, text: 'three' }, { latents, label: 0 }]);
  const ds = openMds(dir);
  // the columns and encodings of imagenet.int8's preprocessing: raw uint8 bytes (variable size) and two str columns
  assert.deepEqual(ds.columns, { label: 'str', label_as_text: 'str', vae_output: 'uint8' });
  assert.equal(ds.columnSizes.vae_output, null);
  assert.equal(detectT2ILayout(Object.keys(ds.columns)), 'imagenet.int8');
  const s = ds.get(0);
  assert.equal(s.label, '3');
  assert.equal(s.label_as_text, 'three');
  // trunc((clip(z, -14, 14) / 28 + 0.5) * 255), as the dataset's encoder stores it
  assert.deepEqual([int8LatentByte(-20), int8LatentByte(-14), int8LatentByte(0), int8LatentByte(14), int8LatentByte(3.1)], [0, 0, 127, 255, 155]);
  const bytes = s[IMAGENET_INT8_COLUMNS.latents] as Uint8Array;
  const { x, cSeq } = t2iBatch([s, ds.get(1)], { latentSize: 2, condDim: 8, tokens: 64, layout: 'imagenet.int8' }, 'tiny');
  assert.deepEqual([...x.shape], [2, 4, 2, 2]);
  const xs = x.toArray();
  for (let i = 0; i < 16; i++) assert.ok(Math.abs(xs[i]! - (bytes[i]! / 255 - 0.5) * 24 * LATENT_SCALE) < 1e-6, `latent ${i}`);
  assert.deepEqual([...cSeq.shape], [2, 2, 8]);
  // sample 0, class 3: token 0 one-hot at 3, token 1 at 3 + 8/2; sample 1, class 0: at 0 and 4
  assert.deepEqual(Array.from(cSeq.toArray()), [0, 0, 0, 1, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 0, 0, 0, 1, /**/ 1, 0, 0, 0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.throws(() => t2iBatch([s], { latentSize: 2, condDim: 6, tokens: 64, layout: 'imagenet.int8' }, 'tiny'), /tiny: class 3 needs a condition width of at least 8 .* cond_seq_dim is 6/);
  assert.throws(() => t2iBatch([{ ...s, label: 'n01440764' }], { latentSize: 2, condDim: 8, tokens: 64, layout: 'imagenet.int8' }, 'tiny'), /column 'label' must hold a class index/);
  assert.throws(() => t2iBatch([s], { latentSize: 4, condDim: 8, tokens: 64, layout: 'imagenet.int8' }, 'tiny'), /holds 16 values, expected 4x4x4 = 64/);
  assert.throws(() => detectT2ILayout(['image', 'caption'], 'mine'), /mine: columns \[image, caption\] are neither the LavenderFlow layout .* nor imagenet.int8's \(vae_output, label\)/);
});

test('train t2i reads imagenet.int8 shards class-conditionally (the same loader) and the loss falls', () => {
  const data = tmp();
  writeSyntheticImagenetInt8(data, { samples: 32, latentSize: 4, classes: 4 });
  const out = tmp();
  const r = trainT2I({
    data, preset: { dim: 32, n_layers: 2, n_double_layers: 1, n_heads: 2, global_conddim: 32, cond_seq_dim: 8, max_seq: 4 },
    steps: 30, batch: 8, lr: 1e-2, seed: 0, out, latentSize: 4, warmup: 2, progress: false, log: () => {},
  });
  const mean = (a: number[]) => a.reduce((x, y) => x + y) / a.length;
  assert.ok(mean(r.losses.slice(-5)) < 0.8 * mean(r.losses.slice(0, 5)), `loss should fall: ${r.losses.map((l) => l.toFixed(3)).join(' ')}`);
  // the conditions saved for `sample --model mmdit --cond` are the class tokens
  assert.deepEqual([...L.loadSafetensors(join(out, 'cond.safetensors')).tensors.c_seq!.shape], [4, 2, 8]);
});

test('train t2i records its lr rule: a resume under another parametrisation is refused, naming it', () => {
  const data = tmp();
  writeSyntheticImagenetInt8(data, { samples: 8, latentSize: 4, classes: 2 });
  const run = { data, preset: { dim: 32, n_layers: 1, n_double_layers: 1, n_heads: 2, global_conddim: 32, cond_seq_dim: 4, max_seq: 4 }, batch: 4, lr: 1e-3, seed: 0, latentSize: 4, warmup: 1, emaEvery: 1, progress: false, log: () => {} };
  const out = tmp();
  const first = trainT2I({ ...run, steps: 1, out, overwrite: true, parametrization: 'mup', mupBaseWidth: 16 });
  assert.throws(() => trainT2I({ ...run, steps: 2, out: tmp(), resume: first.checkpoint, parametrization: 'sp' }), /was trained with --parametrization mup, this run asks for --parametrization sp/);
  assert.throws(() => trainT2I({ ...run, steps: 2, out: tmp(), resume: first.checkpoint }), /--parametrization mup, this run asks for --parametrization release/);
  assert.throws(() => trainT2I({ ...run, steps: 2, out: tmp(), resume: first.checkpoint, parametrization: 'mup', mupBaseWidth: 32 }), /--mup-base-width 16, this run asks for --mup-base-width 32/);
  assert.equal(trainT2I({ ...run, steps: 2, out: tmp(), resume: first.checkpoint, parametrization: 'mup', mupBaseWidth: 16 }).losses.length, 1);
});

test('parametrisations: muP scales hidden-weight rates by base/fan-in and the readout by base/width; SP is one rate', () => {
  const cfg = { dim: 128, n_layers: 2, n_double_layers: 1, n_heads: 4, global_conddim: 128, cond_seq_dim: 8, max_seq: 4 };
  const opts = parametrizationModelOptions('mup', cfg, { baseWidth: 32 });
  assert.deepEqual(opts, { attentionScale: 'sqrt', outputMultiplier: 0.25 });
  assert.deepEqual(parametrizationModelOptions('sp', cfg, { baseWidth: 32 }), {});
  const model = new L.MMDiT(cfg, { device: 'meta', ...opts });
  const lrOf = (groups: ParamGroup[], name: string) => {
    const p = new Map(model.namedParameters()).get(name)!;
    return groups.find((g) => g.params.includes(p))!.lr;
  };
  const mup = parametrizationGroups('mup', model, { lr: 1, weightDecay: 0, baseWidth: 32 });
  assert.equal(lrOf(mup, 'double_layers.0.attn.w1q.weight'), 32 / 128); // hidden: base fan-in / fan-in
  assert.equal(lrOf(mup, 'double_layers.0.mlpX.c_proj.weight'), 256 / 512); // fan-in is the MLP width: 256 at base 32, 512 here
  assert.equal(lrOf(mup, 'cond_seq_linear.weight'), 1); // input-like: one width dimension
  assert.equal(lrOf(mup, 'final_linear.weight'), 1); // the readout keeps its rate; its output is scaled instead
  const sp = parametrizationGroups('sp', model, { lr: 1, weightDecay: 0.1 });
  assert.ok(sp.every((g) => g.lr === 1));
  assert.equal(lrOf(parametrizationGroups('release', model, { lr: 1, weightDecay: 0.1 }), 'double_layers.0.attn.w1q.weight'), 32 / 128); // lr * 32 / width
  assert.throws(() => parametrizationGroups('ntk' as never, model, { lr: 1, weightDecay: 0 }), /parametrisation must be one of release, mup, sp, got 'ntk'/);
});

test('--lrs and --param parsing', () => {
  assert.deepEqual(parseLrs('2^-14..2^-6').map(Math.log2), [-14, -13, -12, -11, -10, -9, -8, -7, -6]);
  assert.deepEqual(parseLrs('1e-3,2^-8'), [1e-3, 2 ** -8]);
  assert.throws(() => parseLrs('2^-6..2^-14'), /must be 2\^A\.\.2\^B with integers A <= B/);
  assert.throws(() => parseLrs('1e-3,fast'), /--lrs entry 'fast' is not a positive number or 2\^K/);
  assert.deepEqual(parseParams('both'), ['mup', 'sp']);
  assert.deepEqual(parseParams('release,mup'), ['release', 'mup']);
  assert.throws(() => parseParams('mup,ntk'), /--param must be mup, sp, release, both/);
});

const row = (parametrization: 'mup' | 'sp', width: number, e: number, loss: number | null, diverged = false): SweepRow =>
  ({ parametrization, width, lr: 2 ** e, log2_lr: e, seed: 0, final_loss: loss, diverged, steps_run: 10 });

test('analyzeSweep: best rate per width among non-diverged rates, the shift in grid steps, the acceptance reading', () => {
  const rows = [
    row('mup', 64, -10, 0.5), row('mup', 64, -9, 0.4), row('mup', 64, -8, 0.45),
    row('mup', 512, -10, 0.45), row('mup', 512, -9, 0.35), row('mup', 512, -8, 0.3),
    row('sp', 64, -10, 0.5), row('sp', 64, -9, 0.4), row('sp', 64, -8, 0.45),
    row('sp', 512, -10, 0.3), row('sp', 512, -9, 0.1, true), row('sp', 512, -8, null, true),
  ];
  const a = analyzeSweep(rows);
  assert.deepEqual(a.optima.map((o) => [o.parametrization, o.width, Math.log2(o.best_lr!)]), [['mup', 64, -9], ['mup', 512, -8], ['sp', 64, -9], ['sp', 512, -10]]);
  assert.deepEqual(a.shift, { mup: 1, sp: -1 });
  assert.equal(a.spWidestDivergesAtMuPBest, true); // SP at width 512 diverged at 2^-8, muP's best there
  assert.equal(a.transfers, true);
  // the plot leaves diverged points out and marks the best rate of each width
  const [mupPanel, spPanel] = sweepPanels(rows, a);
  assert.deepEqual(mupPanel!.xs, [-10, -9, -8]);
  assert.deepEqual(spPanel!.series[1]!.values.map((v) => (Number.isNaN(v) ? null : v)), [0.3, null, null]);
  assert.deepEqual(spPanel!.series.map((s) => s.marks), [[1], [0]]);
  // the basin row: the same curves, the y axis from the lowest loss to zoom x that
  const zoomed = sweepPanels(rows, a, 1.5);
  assert.deepEqual(zoomed.map((p) => [p.yRange, p.yZoom]), [[[0.3, 0.3 * 1.5], true], [[0.3, 0.3 * 1.5], true]]);
  assert.deepEqual(zoomed[1]!.series[1]!.values.map((v) => (Number.isNaN(v) ? null : v)), [0.3, null, null]);
  assert.deepEqual(mupPanel!.yZoom, false);
  // SP's optimum staying where muP's is, without divergence, is not a transfer result
  assert.equal(analyzeSweep(rows.map((r) => (r.parametrization === 'sp' && r.width === 512 ? { ...r, diverged: false, final_loss: r.log2_lr === -9 ? 0.1 : 0.5 } : r))).transfers, false);
});

test('a run that blows up stops early and is recorded as diverged', () => {
  const data = tmp();
  writeSyntheticImagenetInt8(data, { samples: 16, latentSize: 4, classes: 2 });
  const settings: SweepSettings = { data, steps: 40, batch: 4, layers: 1, doubleLayers: 1, headDim: 16, latentSize: 4, condDim: 4, tokens: 64, warmup: 1, weightDecay: 0, baseWidth: 16 };
  const runs = tmp();
  const r = runSweepPoint(settings, { parametrization: 'sp', width: 32, lr: 4, seed: 0 }, runs);
  assert.equal(r.diverged, true);
  assert.ok(r.steps_run < 40, `stopped after ${r.steps_run} steps`);
  assert.deepEqual(readResult(runs, r), r);
  const ok = runSweepPoint(settings, { parametrization: 'sp', width: 32, lr: 2 ** -7, seed: 0 }, runs);
  assert.equal(ok.diverged, false);
  assert.equal(ok.steps_run, 40);
  assert.ok(ok.final_loss! < ok.first_loss);
});

// ---------------------------------------------------------------------------------------------------------------
// The command end to end

const SWEEP = ['mup-sweep', '--synthetic', '--widths', '16,32', '--head-dim', '16', '--lrs', '2^-9..2^-7', '--batch', '4', '--samples', '32', '--classes', '4', '--layers', '1'];

async function runMain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [], err: string[] = [];
  const [ow, ew] = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((c: string) => (out.push(String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string) => (err.push(String(c)), true)) as typeof process.stderr.write;
  const log = console.log;
  console.log = (...a: unknown[]) => void out.push(`${a.join(' ')}\n`);
  try {
    const code = await main(args);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    [process.stdout.write, process.stderr.write, console.log] = [ow, ew, log];
  }
}

const results = (dir: string) => new Map(readdirSync(join(dir, 'runs')).filter((f) => f.endsWith('.json')).map((f) => [f, readFileSync(join(dir, 'runs', f), 'utf8')]));

test('lavender mup-sweep (CI size): sweep.jsonl, sweep.png, summary.md; muP = SP at the base width; a re-run redoes nothing', async () => {
  const out = tmp();
  const r = await runMain([...SWEEP, '--steps', '4', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /12 runs \(mup, sp x widths 16,32 x 3 rates x 1 seed\(s\)\).*0 already finished, 12 to run/);
  const rows = readFileSync(join(out, 'sweep.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SweepRow);
  assert.equal(rows.length, 12);
  for (const k of ['width', 'lr', 'log2_lr', 'parametrization', 'seed', 'final_loss', 'diverged']) assert.ok(k in rows[0]!, k);
  assert.deepEqual(rows.map((x) => `${x.parametrization}${x.width}@${x.log2_lr}`).slice(0, 4), ['mup16@-9', 'mup16@-8', 'mup16@-7', 'mup32@-9']);
  // at the base width (the narrowest, 16) muP and SP are the same model with the same rates
  for (const e of [-9, -8, -7]) {
    const [m, s] = ['mup', 'sp'].map((p) => rows.find((x) => x.parametrization === p && x.width === 16 && x.log2_lr === e)!);
    assert.equal(m!.final_loss, s!.final_loss, `2^${e}`);
  }
  // ... but not at width 32, where muP's rates and readout differ
  assert.notEqual(rows.find((x) => x.parametrization === 'mup' && x.width === 32)!.final_loss, rows.find((x) => x.parametrization === 'sp' && x.width === 32)!.final_loss);
  const png = readFileSync(join(out, 'sweep.png'));
  assert.deepEqual([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
  assert.equal(png.readUInt32BE(16), 2 * 420); // two panels side by side
  assert.equal(png.readUInt32BE(20), 24 + 2 * 300); // the title, the whole curves, the floor of the basins
  assert.match(readFileSync(join(out, 'summary.md'), 'utf8'), /\| lr \| width 16 \| width 32 \|\n\|---\|---:\|---:\|\n\| 2\^-9 \|/);
  // throwaway runs: the loss curve is kept, no checkpoint or EMA files
  assert.deepEqual(readdirSync(join(out, 'runs', 'mup-w32-lr2^-8-s0')).sort(), ['cond.safetensors', 'metrics.jsonl']);
  const before = results(out);
  assert.equal(before.size, 12);
  const again = await runMain([...SWEEP, '--steps', '4', '--out', out]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /12 already finished, 0 to run/);
  assert.deepEqual(results(out), before); // nothing redone (each result holds its finish time)
  // growing the grid trains only the new points; other settings are refused
  const more = await runMain([...SWEEP.map((a) => (a === '2^-9..2^-7' ? '2^-9..2^-6' : a)), '--param', 'mup', '--steps', '4', '--out', out]);
  assert.equal(more.code, 0, more.stderr);
  assert.match(more.stderr, /8 runs .* 6 already finished, 2 to run/);
  for (const [f, text] of before) assert.equal(results(out).get(f), text, f);
  const other = await runMain([...SWEEP, '--steps', '5', '--out', out]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /holds a sweep with other settings \(steps 4 there vs 5 now\)/);
});

test('mup-sweep checks given shards before touching --out; settings may change until a run has finished', async () => {
  const data = tmp(), out = join(tmp(), 'sweep');
  writeSyntheticImagenetInt8(data, { samples: 8, latentSize: 4, classes: 2 });
  const r = await runMain(['mup-sweep', '--data', data, '--latent-size', '8', '--batch', '4', '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^lavender mup-sweep: .*: column 'vae_output' holds 64 values, expected 4x8x8 = 256\n$/);
  assert.equal(existsSync(out), false);
  const grid = { widths: [32], lrs: [1e-3], params: ['sp' as const], seeds: 1 };
  const settings: SweepSettings = { data, steps: 4, batch: 4, layers: 1, doubleLayers: 1, headDim: 16, latentSize: 4, condDim: 4, tokens: 64, warmup: 1, weightDecay: 0, baseWidth: 32 };
  planSweep(out, settings, grid);
  const plan = planSweep(out, { ...settings, steps: 3 }, grid); // nothing finished yet: the new settings replace the old
  runSweepHere(plan);
  assert.throws(() => planSweep(out, settings, grid), /holds a sweep with other settings \(steps 3 there vs 4 now\)/);
});

/** Start the command in a child process; resolves when it exits. */
function startSweep(args: string[]) {
  const child = spawn('node', ['bin/lavender.js', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((res) => child.on('exit', (code, signal) => res({ code, signal, stderr })));
  return { child, exited };
}

async function until(what: string, cond: () => boolean, ms = scaledMs(60_000)): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const countResults = (dir: string) => (existsSync(join(dir, 'runs')) ? readdirSync(join(dir, 'runs')).filter((f) => f.endsWith('.json')).length : 0);

/** Child pids of `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid ? [Number(d)] : [];
    } catch {
      return [];
    }
  });
}

/** Re-runs a killed 6-run sweep: it says how many runs had finished, runs only the rest, and leaves every
 *  finished run's result file byte-identical. */
async function rerunRedoesNothing(args: string[], out: string, before: Map<string, string>): Promise<void> {
  const r = await runMain(args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`${before.size} already finished, ${6 - before.size} to run`));
  const after = results(out);
  assert.equal(after.size, 6);
  for (const [f, text] of before) assert.equal(after.get(f), text, `${f} was redone`);
}

test('a sweep killed mid-way (SIGKILL) continues where it stopped: finished runs are kept, not redone', { timeout: scaledMs(120_000) }, async () => {
  const out = tmp();
  const args = [...SWEEP, '--steps', '8', '--param', 'mup', '--out', out];
  const { child, exited } = startSweep(args);
  await until('two finished runs', () => countResults(out) >= 2);
  child.kill('SIGKILL');
  await exited;
  const before = results(out);
  assert.ok(before.size >= 2 && before.size < 6, `killed after ${before.size} of 6 runs`);
  await rerunRedoesNothing(args, out, before);
  assert.equal(readFileSync(join(out, 'sweep.jsonl'), 'utf8').trim().split('\n').length, 6);
});

test('mup-sweep --nproc 2: a killed worker ends the sweep with its name; the re-run finishes without redoing anything', { timeout: scaledMs(120_000), skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const out = tmp();
  const args = [...SWEEP, '--steps', '8', '--param', 'mup', '--nproc', '2', '--out', out];
  const { child, exited } = startSweep(args);
  await until('a finished run', () => countResults(out) >= 1);
  const workers = childrenOf(child.pid!);
  assert.equal(workers.length, 2, `worker processes of ${child.pid}: ${workers}`);
  process.kill(workers[0]!, 'SIGKILL');
  const e = await exited;
  assert.equal(e.code, 1, e.stderr);
  assert.match(e.stderr, new RegExp(`worker \\d \\(pid ${workers[0]}\\) was killed by SIGKILL.*run the same command again to continue`));
  const before = results(out);
  assert.ok(before.size < 6, `${before.size} of 6 finished before the re-run`);
  await rerunRedoesNothing(args, out, before);
});

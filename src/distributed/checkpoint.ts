// Checkpoints of data-parallel runs.
//
// Stage 0: the optimizer state is replicated, so rank 0 writes a standard lavender-train-v1 checkpoint
// (src/optim/checkpoint.ts) that loads at any world size.
//
// Stages 1-3: every rank writes its own shard — its master slices and Adam moments, and its slices of any
// per-parameter extras such as EMAs of the weights (`zero.<bucket>.<name>`) —
// `<name>.zero-step<S>-rank<r>-of-<N>.safetensors` (atomically); after a barrier rank 0 writes the main file
// `<name>.safetensors` with the weights (stage 3 gathers them first) and, in its metadata,
// `zero: {stage, worldSize, layout, shards}`, then deletes shards no longer referenced. Shards carry the step
// in their name, so an interrupted save leaves the previous main file with its own complete shards: never a
// mix of steps.
//
// Extras: per-parameter tensors kept beside the optimizer (the EMAs of `train t2i`). At stage 0 they are
// whole per-parameter tensors, stored as `<name>.<i>` in the main file as src/optim/checkpoint.ts does; at
// stages 1-3 they are this rank's bucket slices (ZeroOptimizer.weightTensors' layout) and go to the shards.
//
// A sharded checkpoint resumes only at the same world size (and bucket layout). `consolidate()` (the
// `lavender consolidate` command) joins the shards into one standard checkpoint, which resumes at any world
// size (and in a plain single-process run); loading a sharded one at another world size is a clear error.
import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tensor } from '../ops/creation.js';
import { loadSafetensors, readSafetensorsMetadata, saveSafetensors } from '../io/safetensors.js';
import { readCheckpointMeta as readTrainMeta } from '../optim/checkpoint-meta.js';
import type { Module } from '../nn/module.js';
import type { AdamStateDict } from '../optim/adamw.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from '../optim/checkpoint.js';
import type { ProcessGroup } from './process-group.js';
import type { ZeroLayout, ZeroOptimizer, ZeroStage } from './zero.js';

export interface ZeroCheckpointInfo {
  stage: ZeroStage;
  worldSize: number;
  layout: ZeroLayout;
  /** Shard file names (in the main file's folder), by rank. */
  shards: string[];
}

interface ShardMeta {
  format: 'lavender-zero-shard-v1';
  rank: number;
  worldSize: number;
  stage: ZeroStage;
  step: number;
  optimizer: { step: number; lrScale: number; groups: AdamStateDict['groups']; steps: number[] };
}

/** The lavender metadata of a training checkpoint (header only), with its ZeRO sharding if any. */
export function readCheckpointMeta(path: string): CheckpointMeta & { zero?: ZeroCheckpointInfo } {
  return readTrainMeta(path) as CheckpointMeta & { zero?: ZeroCheckpointInfo };
}

export { readSafetensorsMetadata };

function shardedError(path: string, z: ZeroCheckpointInfo, worldSize: number, stage?: number): Error {
  const why = z.worldSize !== worldSize ? `this run has ${worldSize} rank(s)` : `this run uses ZeRO stage ${stage}, which keeps the full optimizer state`;
  return new Error(`checkpoint ${path} holds ZeRO stage ${z.stage} optimizer state sharded over ${z.worldSize} ranks, but ${why}. Consolidate it first: \`lavender consolidate ${path} --out FILE\`, then resume from FILE (it loads at any world size)`);
}

/** For single-process resumes: a clear error for a sharded checkpoint (which lacks the full optimizer state). */
export function assertNotSharded(path: string): void {
  const meta = readCheckpointMeta(path);
  if (meta.zero) throw shardedError(path, meta.zero, 1);
}

function shardName(path: string, step: number, rank: number, worldSize: number): string {
  return `${basename(path, '.safetensors')}.zero-step${step}-rank${rank}-of-${worldSize}.safetensors`;
}

/** Collective: every rank must call it at the same step. */
/** Per-parameter state saved beside the optimizer's, by name: see the file comment. */
export type CheckpointExtras = Record<string, readonly Tensor[]>;

/** Collective: every rank must call it at the same step. */
export async function saveDistCheckpoint(path: string, model: Module, zero: ZeroOptimizer, meta: CheckpointMeta, pg: ProcessGroup, extras: CheckpointExtras = {}): Promise<void> {
  const N = pg.worldSize;
  if (zero.stage === 0) {
    const extra: Record<string, Tensor> = {};
    for (const [name, ts] of Object.entries(extras)) ts.forEach((t, i) => (extra[`${name}.${i}`] = t));
    if (pg.rank === 0) saveCheckpoint(path, model, zero.inner, { ...meta, dist: { worldSize: N, stage: 0 } }, extra);
    await pg.barrier();
    return;
  }
  const dir = dirname(path);
  const shards = [...Array(N).keys()].map((r) => shardName(path, meta.step, r, N));
  const { tensors, meta: optimizer } = zero.shardState();
  for (const [name, ts] of Object.entries(extras)) {
    if (['master', 'm', 'v'].includes(name)) throw new Error(`saveDistCheckpoint: extra state may not be called '${name}'`);
    if (ts.length !== zero.buckets.length) throw new Error(`saveDistCheckpoint: extra '${name}' has ${ts.length} slices for ${zero.buckets.length} buckets`);
    ts.forEach((t, bi) => (tensors[`zero.${bi}.${name}`] = t));
  }
  if (zero.stage === 3) await zero.gatherAll(); // the main file holds whole weights
  const sm: ShardMeta = { format: 'lavender-zero-shard-v1', rank: pg.rank, worldSize: N, stage: zero.stage, step: meta.step, optimizer };
  saveSafetensors(join(dir, shards[pg.rank]!), tensors, { lavender_zero_shard: JSON.stringify(sm) });
  await pg.barrier(); // every shard is on disk before the main file points at them
  if (pg.rank === 0) {
    const weights: Record<string, Tensor> = {};
    for (const [name, p] of model.namedParameters()) weights[`model.${name}`] = p;
    const info: ZeroCheckpointInfo = { stage: zero.stage, worldSize: N, layout: zero.layout, shards };
    saveSafetensors(path, weights, { lavender: JSON.stringify({ ...meta, zero: info }) });
    const prefix = `${basename(path, '.safetensors')}.zero-step`;
    for (const f of readdirSync(dir)) {
      if (f.startsWith(prefix) && f.endsWith('.safetensors') && !shards.includes(f)) {
        try { unlinkSync(join(dir, f)); } catch { /* another process may have removed it */ }
      }
    }
  }
  if (zero.stage === 3) zero.releaseAll();
  await pg.barrier();
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Restore model and optimizer on every rank (at stage 3 the parameters must hold data: load before the
 * first release); returns the checkpoint's metadata and the extras named in `extraNames`, laid out as
 * saveDistCheckpoint takes them at this stage (owned by the caller), on `extrasDevice` where they are read
 * as they are kept (stage 0, or this world size's shards; default the model's device). Errors are the same on
 * every rank.
 */
export function loadDistCheckpoint(path: string, model: Module, zero: ZeroOptimizer, pg: ProcessGroup, extraNames: readonly string[] = [], extrasDevice?: string): { meta: CheckpointMeta; extras: Record<string, Tensor[]> } {
  const meta = readCheckpointMeta(path);
  const device = model.parameters()[0]?.device;
  if (meta.zero) {
    const z = meta.zero;
    if (z.worldSize !== pg.worldSize || zero.stage === 0) throw shardedError(path, z, pg.worldSize, zero.stage);
    const mine = zero.layout;
    if (!sameJson(z.layout.buckets, mine.buckets)) {
      throw new Error(`checkpoint ${path}: its ZeRO bucket layout (${z.layout.buckets.length} buckets of at most ${z.layout.bucketElements} elements) differs from this run's (${mine.buckets.length} of at most ${mine.bucketElements}); consolidate it first (lavender consolidate)`);
    }
    const shardPath = join(dirname(path), z.shards[pg.rank]!);
    if (!existsSync(shardPath)) throw new Error(`checkpoint ${path}: the shard of rank ${pg.rank}, ${shardPath}, is missing`);
    const { tensors: weights } = loadSafetensors(path, { device });
    try {
      model.loadStateDict(Object.fromEntries(Object.entries(weights).filter(([k]) => k.startsWith('model.')).map(([k, t]) => [k.slice(6), t])));
    } catch (e) {
      throw new Error(`checkpoint ${path}: ${(e as Error).message}`);
    } finally {
      for (const t of Object.values(weights)) t.dispose();
    }
    const isExtra = (k: string) => extraNames.includes(/^zero\.\d+\.(.+)$/.exec(k)?.[1] ?? '');
    const apart = extrasDevice !== undefined && extrasDevice !== device;
    const { tensors, metadata } = loadSafetensors(shardPath, { device, only: apart ? (k) => !isExtra(k) : undefined });
    try {
      if (apart) Object.assign(tensors, loadSafetensors(shardPath, { device: extrasDevice, only: isExtra }).tensors);
      const sm = JSON.parse(metadata.lavender_zero_shard ?? 'null') as ShardMeta | null;
      if (!sm || sm.format !== 'lavender-zero-shard-v1') throw new Error(`checkpoint shard ${shardPath}: not a lavender ZeRO shard`);
      if (sm.rank !== pg.rank || sm.worldSize !== pg.worldSize || sm.step !== meta.step) {
        throw new Error(`checkpoint shard ${shardPath}: it is rank ${sm.rank} of ${sm.worldSize} at step ${sm.step}, expected rank ${pg.rank} of ${pg.worldSize} at step ${meta.step}`);
      }
      zero.loadShard(tensors, sm.optimizer, `checkpoint shard ${shardPath}`);
      const extras: Record<string, Tensor[]> = {};
      for (const name of extraNames) {
        extras[name] = zero.buckets.map((b, bi) => {
          const t = tensors[`zero.${bi}.${name}`];
          if (!t) throw new Error(`checkpoint shard ${shardPath}: tensor 'zero.${bi}.${name}' is missing`);
          if (t.size !== b.shard) throw new Error(`checkpoint shard ${shardPath}: tensor 'zero.${bi}.${name}' has ${t.size} elements, this rank's slice of bucket ${bi} ${b.shard}`);
          delete tensors[`zero.${bi}.${name}`]; // handed to the caller
          return t;
        });
      }
      return { meta, extras };
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
  }
  if (zero.stage === 0) {
    const { meta: m, extra } = loadCheckpoint(path, model, zero.inner, { extraDevice: extrasDevice });
    return { meta: m, extras: takeExtras(path, extra, extraNames, zero.params.length) };
  }
  // a full (standard or consolidated) optimizer state: every rank takes its slices
  const { tensors, metadata } = loadSafetensors(path, { device });
  try {
    model.loadStateDict(Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith('model.')).map(([k, t]) => [k.slice(6), t])));
    const om = JSON.parse(metadata.optimizer ?? 'null') as { step: number; lrScale?: number; groups: AdamStateDict['groups']; steps: number[] } | null;
    if (!om || !Array.isArray(om.steps)) throw new Error(`checkpoint ${path}: metadata field 'optimizer' is missing`);
    const state = om.steps.map((step, i) => {
      const m = tensors[`optim.${i}.m`], v = tensors[`optim.${i}.v`];
      if (!m || !v) throw new Error(`checkpoint ${path}: tensors 'optim.${i}.m' / 'optim.${i}.v' are missing`);
      return { step, m, v };
    });
    zero.loadFullState({ step: om.step, lrScale: om.lrScale, groups: om.groups, state });
    const extras: Record<string, Tensor[]> = {};
    for (const name of extraNames) {
      const full = Array.from({ length: zero.params.length }, (_, i) => {
        const t = tensors[`${name}.${i}`];
        if (!t) throw new Error(`checkpoint ${path}: tensors '${name}.*' are missing ('${name}.${i}')`);
        return t;
      });
      extras[name] = zero.sliceFull(full, `checkpoint ${path}: '${name}'`);
    }
    return { meta, extras };
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.startsWith(`checkpoint ${path}`) ? msg : `checkpoint ${path}: ${msg}`);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/** Per-parameter extras `<name>.<i>` of a standard checkpoint's extra tensors (the rest are disposed). */
export function takeExtras(path: string, extra: Record<string, Tensor>, names: readonly string[], numParams: number): Record<string, Tensor[]> {
  const out: Record<string, Tensor[]> = {};
  const taken = new Set<string>();
  try {
    for (const name of names) {
      out[name] = Array.from({ length: numParams }, (_, i) => {
        const t = extra[`${name}.${i}`];
        if (!t) throw new Error(`checkpoint ${path}: tensors '${name}.*' are missing ('${name}.${i}')`);
        taken.add(`${name}.${i}`);
        return t;
      });
    }
  } finally {
    for (const [k, t] of Object.entries(extra)) if (!taken.has(k)) t.dispose();
  }
  return out;
}

/**
 * Join a sharded checkpoint's shards into one standard checkpoint at `out` (weights, per-parameter Adam
 * moments and the optimizer metadata, as src/optim/checkpoint.ts writes), loadable at any world size.
 */
export function consolidate(path: string, out: string): { step: number; worldSize: number; stage: number } {
  const meta = readCheckpointMeta(path);
  const z = meta.zero;
  if (!z) throw new Error(`consolidate: ${path} is not a sharded ZeRO checkpoint (its optimizer state is already whole; use it as is)`);
  const { tensors: main } = loadSafetensors(path, { device: 'cpu' });
  const shards = z.shards.map((name, r) => {
    const p = join(dirname(path), name);
    if (!existsSync(p)) throw new Error(`consolidate: the shard of rank ${r}, ${p}, is missing`);
    const s = loadSafetensors(p, { device: 'cpu' });
    const sm = JSON.parse(s.metadata.lavender_zero_shard ?? 'null') as ShardMeta | null;
    if (!sm || sm.rank !== r || sm.worldSize !== z.worldSize || sm.step !== meta.step) throw new Error(`consolidate: ${p} is not rank ${r} of ${z.worldSize} at step ${meta.step}`);
    return { ...s, sm };
  });
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(main)) if (k.startsWith('model.')) tensors[k] = t;
  const nParams = z.layout.buckets.reduce((s, b) => s + b.params.length, 0);
  const steps = new Array<number>(nParams).fill(0);
  // extras (EMAs): any other per-bucket name in rank 0's shard
  const extraNames = [...new Set(Object.keys(shards[0]!.tensors).map((k) => /^zero\.\d+\.(.+)$/.exec(k)?.[1]).filter((n): n is string => !!n && !['master', 'm', 'v'].includes(n)))];
  z.layout.buckets.forEach((b, bi) => {
    for (const key of ['m', 'v', ...extraNames]) {
      const parts = shards.map((s) => {
        const t = s.tensors[`zero.${bi}.${key}`];
        if (!t) throw new Error(`consolidate: tensor 'zero.${bi}.${key}' is missing from rank ${s.sm.rank}'s shard`);
        return t.toArray() as Float32Array;
      });
      const flat = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        flat.set(p, o);
        o += p.length;
      }
      let off = 0;
      b.params.forEach((pi, k) => {
        const shape = b.shapes[k]!;
        const n = shape.reduce((a, d) => a * d, 1);
        // moments are numbered in optimizer order (as standard checkpoints); extras in the run's own order
        const name = key === 'm' || key === 'v' ? `optim.${pi}.${key}` : `${key}.${z.layout.order?.[pi] ?? pi}`;
        tensors[name] = tensor(flat.subarray(off, off + n), { shape, dtype: 'float32', device: 'cpu' });
        off += n;
      });
    }
    for (const pi of b.params) steps[pi] = shards[0]!.sm.optimizer.steps[bi] ?? shards[0]!.sm.optimizer.step;
  });
  const om = shards[0]!.sm.optimizer;
  const { zero: _drop, ...rest } = meta;
  const optimizer = { step: om.step, lrScale: om.lrScale, groups: om.groups, steps };
  saveSafetensors(out, tensors, { lavender: JSON.stringify({ ...rest, consolidated_from: { worldSize: z.worldSize, stage: z.stage } }), optimizer: JSON.stringify(optimizer) });
  for (const t of Object.values(tensors)) t.dispose();
  for (const t of Object.values(main)) t.dispose();
  for (const s of shards) for (const t of Object.values(s.tensors)) t.dispose();
  return { step: meta.step, worldSize: z.worldSize, stage: z.stage };
}

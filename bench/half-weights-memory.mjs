// Peak memory of loading a bf16 MMDiT checkpoint and running one forward: the float32 way (a model built
// with float32 parameters, the checkpoint cast into them) against the 16-bit way (a model built on the meta
// device, the checkpoint's bf16 tensors assigned as the parameters, widened per layer as they are used).
// Each way runs in its own process; peak RSS from process.resourceUsage().maxRSS.
//
//   npm run build:ts && node bench/half-weights-memory.mjs [--dim 1024] [--layers 8]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist/src/', import.meta.url));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
};

async function child(mode, path, dim, layers) {
  const L = await import(join(dist, 'index.js'));
  const { loadSafetensors, saveSafetensors } = await import(join(dist, 'io/safetensors.js'));
  const cfg = { dim, n_layers: layers, n_double_layers: layers / 2, n_heads: 8, global_conddim: dim, cond_seq_dim: dim, max_seq: 256 };
  if (mode === 'write') {
    const meta = new L.MMDiT(cfg, { device: 'meta' });
    const sd = {};
    for (const [k, p] of meta.namedParameters()) sd[k] = L.keep(L.scope(() => L.mul(L.randn([...p.shape]), 0.02).to('bfloat16')));
    saveSafetensors(path, sd);
    console.log(JSON.stringify({ parameters: meta.numParameters() }));
    return;
  }
  let model;
  if (mode === 'float32') {
    model = new L.MMDiT(cfg);
    const { tensors } = loadSafetensors(path);
    model.loadStateDict(tensors);
    for (const t of Object.values(tensors)) t.dispose();
  } else {
    model = new L.MMDiT(cfg, { device: 'meta' });
    model.loadStateDict(loadSafetensors(path).tensors, { assign: true, device: 'cpu' });
  }
  const afterLoad = process.memoryUsage().rss;
  const t0 = performance.now();
  L.noGrad(() => L.scope(() => model.forward(L.randn([1, 4, 32, 32]), L.rand([1]), L.randn([1, 64, dim])).toArray()));
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ rss_after_load_mb: Math.round(afterLoad / 2 ** 20), peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), forward_s: +seconds.toFixed(2) }));
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4], Number(process.argv[5]), Number(process.argv[6]));
} else {
  const dim = Number(arg('dim', 1024)), layers = Number(arg('layers', 8));
  const dir = mkdtempSync(join(tmpdir(), 'lavender-halfmem-'));
  try {
    const path = join(dir, 'w.safetensors');
    const run = (mode) => JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', mode, path, String(dim), String(layers)], { encoding: 'utf8' }).trim().split('\n').pop());
    const { parameters } = run('write');
    const file = statSync(path).size;
    const f32 = run('float32'), half = run('bf16');
    console.log(JSON.stringify({ dim, layers, parameters, checkpoint_mb: Math.round(file / 2 ** 20), float32: f32, bf16_assign: half }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

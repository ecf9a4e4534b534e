// Bundles the browser app (examples/web/main.ts) into examples/web/dist/app.js with esbuild (a dev
// dependency), and builds the cpu backend's wasm kernels (dist/kernels/*.wasm, served to the page for
// the no-WebGPU fallback) when they are missing. lavender's Node-only modules (file I/O, worker threads)
// are imported by parts of the library the app does not run; they are replaced by stubs here.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const NODE_BUILTINS = /^(node:.*|fs|path|os|url|crypto|worker_threads|child_process|module|zlib|util|events|stream|net|http|https)$/;

/** Named imports of each Node builtin across src/ and examples/web/, so the stubs export every name used. */
function importedNames() {
  const names = new Map();
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/import\s+(?:type\s+)?(?:[\w$]+\s*,\s*)?\{([^}]*)\}\s*from\s*'([^']+)'/g)) {
          if (!NODE_BUILTINS.test(m[2])) continue;
          const set = names.get(m[2]) ?? new Set();
          for (const part of m[1].split(',')) {
            const name = part.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0].trim();
            if (name && !part.trim().startsWith('type ')) set.add(name);
          }
          names.set(m[2], set);
        }
      }
    }
  };
  walk(join(here, '../../src'));
  walk(here);
  return names;
}

const stubNode = {
  name: 'stub-node-builtins',
  setup(b) {
    const names = importedNames();
    b.onResolve({ filter: NODE_BUILTINS }, (a) => ({ path: a.path, namespace: 'node-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, (a) => {
      // path and url helpers are pure string work that some modules run at load (e.g. locating a native
      // addon): give them string results; anything else throws when actually called.
      const pure = /^(node:)?(path|url)$/.test(a.path);
      const fn = pure ? `(...xs) => xs.map(String).join('/')` : `() => { throw new Error('${a.path} is not available in a browser'); }`;
      const list = [...(names.get(a.path) ?? []), ...(names.get(a.path.replace(/^node:/, '')) ?? []), ...(names.get(`node:${a.path}`) ?? [])];
      const exports = [...new Set(list)].filter((n) => n !== 'default').map((n) => `export const ${n} = stub;`).join('\n');
      return { contents: `const stub = ${fn};\n${exports}\nexport default new Proxy({}, { get: () => stub });\n`, loader: 'js' };
    });
  },
};

const root = join(here, '../..');
if (!existsSync(join(root, 'dist/kernels/cpu-simd-st.wasm'))) {
  execFileSync(process.execPath, [join(root, 'scripts/build-wasm.mjs')], { stdio: 'inherit', cwd: root });
}

const r = await build({
  entryPoints: [join(here, 'main.ts')],
  outfile: join(here, 'dist/app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
  logOverride: { 'import-is-undefined': 'silent' }, // namespace imports of the Node stubs (e.g. zlib)
  // environment switches read as process.env.X (e.g. LAVENDER_CPU_REFERENCE): none are set in a page
  define: { 'process.env': '{}' },
  plugins: [stubNode],
});
if (r.errors.length) process.exit(1);
console.log(`wrote ${join(here, 'dist/app.js')}`);

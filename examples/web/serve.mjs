// Serves examples/web/ on http://127.0.0.1:PORT (a secure context, so navigator.gpu is exposed).
//   node examples/web/serve.mjs [--port 8123]            serve; open the printed address in a browser
//   node examples/web/serve.mjs --headless [--chromium /usr/bin/chromium] [--timeout 300]
//       run the page in headless Chromium with software WebGPU (SwiftShader's Vulkan), wait for the page
//       to post its result back, print it, and exit 0 only when the demo ran.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const headless = args.includes('--headless');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json', '.wgsl': 'text/plain' };

/** Flags that give headless Chromium a WebGPU adapter without a GPU (SwiftShader Vulkan, shipped with it). */
export const CHROMIUM_WEBGPU_FLAGS = [
  '--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan',
  '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader', '--ignore-gpu-blocklist',
  '--enable-logging=stderr', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--no-default-browser-check',
];

let finish = (_r) => {};
const result = new Promise((r) => { finish = r; });

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/log') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { res.end('ok'); console.error(`page: ${body}`); });
    return;
  }
  if (req.method === 'POST' && req.url === '/result') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { res.end('ok'); finish(JSON.parse(body)); });
    return;
  }
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
  try {
    const file = join(here, path === '/' ? 'index.html' : path);
    if (!file.startsWith(here)) throw new Error('outside');
    const data = readFileSync(file);
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(data);
  } catch {
    res.writeHead(404);
    res.end('not found');
  }
});

server.listen(Number(opt('port', '0')), '127.0.0.1', async () => {
  const url = `http://127.0.0.1:${server.address().port}/index.html`;
  if (!headless) { console.log(`serving ${here} at ${url}`); return; }
  const profile = mkdtempSync(join(tmpdir(), 'lavender-chromium-'));
  const chrome = spawn(opt('chromium', 'chromium'), [...CHROMIUM_WEBGPU_FLAGS, `--user-data-dir=${profile}`, `${url}?report`],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  // /usr/bin/chromium is a wrapper script: end the whole process group, not just the script
  const stop = () => { try { process.kill(-chrome.pid, 'SIGTERM'); } catch { /* gone */ } };
  process.on('exit', stop);
  let stderr = '';
  chrome.stderr.on('data', (c) => {
    const keep = String(c).split('\n').filter((l) => l && !/dbus|object_proxy|bus\.cc/.test(l)).join('\n');
    if (keep) stderr = (stderr + keep + '\n').slice(-6000);
  });
  const timeout = Number(opt('timeout', '300')) * 1000;
  let timer;
  const r = await Promise.race([result, new Promise((res) => { timer = setTimeout(() => res({ ok: false, error: `no result within ${timeout / 1000} s` }), timeout); })]);
  clearTimeout(timer);
  stop();
  server.close();
  setTimeout(() => rmSync(profile, { recursive: true, force: true }), 500);
  console.log(JSON.stringify(r, null, 2));
  if (!r.ok) console.error(`chromium stderr (tail):\n${stderr}`);
  process.exitCode = r.ok ? 0 : 1;
});

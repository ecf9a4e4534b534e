// Drives headless Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages
// ending in a NUL byte on file descriptors 3 and 4), with no dependency: open a page, evaluate script in
// it, wait for a condition, screenshot an element, put files into a file input. Used by serve.mjs
// --headless and test/webgpu-web.test.ts. WebGPU without a GPU comes from SwiftShader, shipped inside
// Chromium; `webgpu: false` launches without it (navigator.gpu then offers no adapter and the app falls back to the wasm cpu backend).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** LAVENDER_CHROMIUM, or the first Chromium found in the usual places; null when there is none. */
export function findChromium() {
  const env = process.env.LAVENDER_CHROMIUM;
  if (env) return existsSync(env) ? env : null;
  return CHROMIUM_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

const BASE_FLAGS = [
  '--headless=new', '--no-sandbox', '--remote-debugging-pipe', '--no-first-run', '--no-default-browser-check',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-extensions',
  '--disable-default-apps', '--mute-audio', '--hide-scrollbars', '--window-size=1280,1400',
];
/** WebGPU on SwiftShader's Vulkan: a software adapter, no GPU needed. */
export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader', '--ignore-gpu-blocklist'];
/** WebGPU off: navigator.gpu exists (Chromium exposes it) but offers no adapter. */
export const NO_WEBGPU_FLAGS = ['--disable-features=WebGPU', '--disable-gpu'];

export async function launchChromium({ chromium = findChromium(), webgpu = true } = {}) {
  if (!chromium) throw new Error('no Chromium found (set LAVENDER_CHROMIUM or install chromium)');
  const profile = mkdtempSync(join(tmpdir(), 'lavender-chromium-'));
  const proc = spawn(chromium, [...BASE_FLAGS, ...(webgpu ? WEBGPU_FLAGS : NO_WEBGPU_FLAGS), `--user-data-dir=${profile}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  proc.stderr.on('data', (c) => { stderr = (stderr + c).slice(-8000); });
  const out = proc.stdio[3], inp = proc.stdio[4];
  let nextId = 1, buf = '';
  const pending = new Map();
  const listeners = new Set();
  let exited = null;
  proc.on('exit', (code, sig) => {
    exited = `chromium exited (${sig ?? code})`;
    for (const p of pending.values()) p.reject(new Error(`${exited} before answering ${p.method}; stderr: ${stderr.slice(-1500)}`));
    pending.clear();
  });
  inp.setEncoding('utf8');
  inp.on('data', (chunk) => {
    buf += chunk;
    let end;
    while ((end = buf.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buf.slice(0, end));
      buf = buf.slice(end + 1);
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (!p) continue;
        if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}${msg.error.data ? ` (${msg.error.data})` : ''}`));
        else p.resolve(msg.result);
      } else {
        for (const l of listeners) l(msg);
      }
    }
  });
  out.on('error', () => {});
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    if (exited) return reject(new Error(`${exited}; cannot send ${method}`));
    const id = nextId++;
    pending.set(id, { resolve, reject, method });
    out.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
  });

  async function newPage(url) {
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(send, sessionId);
    listeners.add((m) => { if (m.sessionId === sessionId) page.onEvent(m); });
    await send('Runtime.enable', {}, sessionId);
    await send('Page.enable', {}, sessionId);
    await send('Page.navigate', { url }, sessionId);
    return page;
  }

  async function close() {
    try { await Promise.race([send('Browser.close'), new Promise((r) => setTimeout(r, 3000))]); } catch { /* already gone */ }
    // /usr/bin/chromium is a wrapper script: end the whole process group
    try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
    setTimeout(() => rmSync(profile, { recursive: true, force: true }), 300).unref();
  }

  return { newPage, close, stderr: () => stderr };
}

class Page {
  constructor(send, sessionId) {
    this.send = (m, p) => send(m, p, sessionId);
    /** Console output and uncaught exceptions of the page, for failure messages. */
    this.console = [];
  }

  onEvent(m) {
    if (m.method === 'Runtime.consoleAPICalled') this.console.push(m.params.args.map((a) => a.value ?? a.description ?? '').join(' '));
    if (m.method === 'Runtime.exceptionThrown') this.console.push(`uncaught: ${m.params.exceptionDetails?.exception?.description ?? m.params.exceptionDetails?.text}`);
    if (this.console.length > 200) this.console.splice(0, this.console.length - 200);
  }

  /** The value of a script expression (awaited when it is a promise). */
  async evaluate(expression) {
    const r = await this.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** Poll `expression` until it is truthy; throws naming `what` (and the page's last console lines) on timeout. */
  async waitFor(expression, what, timeoutMs = 60_000) {
    const t0 = Date.now();
    for (;;) {
      const v = await this.evaluate(expression).catch(() => undefined);
      if (v) return v;
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; page console:\n${this.console.slice(-15).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** PNG bytes of what the page shows inside the element matching `selector`. */
  async screenshot(selector) {
    const rect = await this.evaluate(`(() => { const e = document.querySelector(${JSON.stringify(selector)}); e.scrollIntoView(); const r = e.getBoundingClientRect(); return { x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height }; })()`);
    const { data } = await this.send('Page.captureScreenshot', { format: 'png', clip: { ...rect, scale: 1 }, captureBeyondViewport: true });
    return new Uint8Array(Buffer.from(data, 'base64'));
  }

  /** Put files into the <input type=file> matching `selector` (the page sees a change event, as from the picker). */
  async setFiles(selector, files) {
    const { root } = await this.send('DOM.getDocument', { depth: 0 });
    const { nodeId } = await this.send('DOM.querySelector', { nodeId: root.nodeId, selector });
    if (!nodeId) throw new Error(`no element matches ${selector}`);
    await this.send('DOM.setFileInputFiles', { nodeId, files });
  }
}

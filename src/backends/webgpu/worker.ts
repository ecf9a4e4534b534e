// The Node side of the webgpu backend's synchronous bridge: this worker thread owns the Dawn instance
// (from the `webgpu` package) and the device. The main thread posts command batches; for a request it
// blocks in Atomics.wait on a SharedArrayBuffer control block until this thread has the answer (read
// data is copied into a SharedArrayBuffer the main thread provided). See docs/backends.md, "webgpu".
import { parentPort, workerData } from 'node:worker_threads';
import { Engine, openDevice } from './engine.js';
import { CTL_HEADER_BYTES, CTL_LEN, CTL_MESSAGE_BYTES, CTL_STATE, type Command, type Request } from './protocol.js';

const ctl = new Int32Array(workerData.ctl as SharedArrayBuffer, 0, 4);
const msg = new Uint8Array(workerData.ctl as SharedArrayBuffer, CTL_HEADER_BYTES, CTL_MESSAGE_BYTES);
const enc = new TextEncoder();

function answer(ok: boolean, text = ''): void {
  const bytes = enc.encode(text).subarray(0, CTL_MESSAGE_BYTES);
  msg.set(bytes);
  Atomics.store(ctl, CTL_LEN, bytes.length);
  Atomics.store(ctl, CTL_STATE, ok ? 1 : 2);
  Atomics.notify(ctl, CTL_STATE);
}

// Dawn must stay reachable for as long as its devices live: collecting it crashes or hangs the process.
const keep: { gpu?: unknown; engine?: Engine } = {};
(globalThis as { __lavenderWebgpu?: unknown }).__lavenderWebgpu = keep;

async function init(): Promise<Engine> {
  const spec = 'webgpu';
  let mod: { create: (flags: string[]) => unknown; globals: object };
  try {
    mod = await import(spec);
  } catch (e) {
    throw new Error(`the optional 'webgpu' package (Dawn for Node) is not installed or failed to load: ${(e as Error).message.split('\n')[0]}`);
  }
  Object.assign(globalThis, mod.globals);
  keep.gpu = mod.create((workerData.flags as string[]) ?? []);
  const { device, info } = await openDevice(keep.gpu, { f16: workerData.f16 !== false });
  keep.engine = new Engine(device, info);
  return keep.engine;
}

let queue: Promise<unknown> = init().then(
  (engine) => { answer(true, JSON.stringify(engine.info)); return engine; },
  (e) => { answer(false, (e as Error).message); return null; },
);

parentPort!.on('message', (m: { cmds: Command[]; req?: Request }) => {
  queue = queue.then(async (engine) => {
    const e = engine as Engine | null;
    if (!e) { if (m.req) answer(false, 'the device failed to initialise'); return e; }
    try {
      e.exec(m.cmds);
      if (m.req) {
        const r = await e.request(m.req);
        answer(true, r.text ?? '');
      }
    } catch (err) {
      if (m.req) answer(false, (err as Error).message);
    }
    return e;
  });
});

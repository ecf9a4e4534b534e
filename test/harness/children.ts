// Child processes of the tests that cannot outlive them. spawnChild(): a deadline (SIGKILL), killed when
// the test process exits, and the orphan guard preloaded, so a child (and its own children, e.g. the
// ranks `lavender launch` starts, which inherit NODE_OPTIONS) ends when its parent dies, however it died.
// childEnv() gives spawnSync the same guard.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import './orphan-guard.js'; // this test process too: its children are then never left without it

const guard = pathToFileURL(fileURLToPath(new URL('./orphan-guard.js', import.meta.url))).href;
const live = new Set<ChildProcess>();

/** An environment (default: this process's) whose node processes load the orphan guard. */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const opts = env.NODE_OPTIONS ?? '';
  return { ...env, NODE_OPTIONS: opts.includes(guard) ? opts : `${opts} --import=${guard}`.trim() };
}

/** spawn() with the guard in its environment, SIGKILLed after deadlineMs or when this process exits. */
export function spawnChild(command: string, args: readonly string[], opts: SpawnOptions & { deadlineMs: number }): ChildProcess {
  const { deadlineMs, ...rest } = opts;
  const child = spawn(command, args, { ...rest, env: childEnv(rest.env ?? process.env) });
  live.add(child);
  const timer = setTimeout(() => stop(child), deadlineMs);
  child.once('exit', () => {
    clearTimeout(timer);
    live.delete(child);
  });
  return child;
}

/** SIGKILL (ends a stopped child too). */
function stop(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

process.on('exit', () => {
  for (const c of live) stop(c);
});

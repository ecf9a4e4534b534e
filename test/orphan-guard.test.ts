// The tests' child processes cannot outlive them (test/harness/children.ts): a grandchild whose parent is
// SIGKILLed (as a test process killed by a mutation run's timeout) ends by itself within seconds; without
// the guard it would run on.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { childEnv, spawnChild } from './harness/children.js';
import { scaledMs } from './harness/load.js';

/** Whether pid is a live process (an exited orphan may linger as a zombie until it is reaped). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** A parent that starts a grandchild running forever, prints its pid, and waits; SIGKILL the parent. */
async function orphan(guard: boolean): Promise<number> {
  const script = `const c = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    console.log(c.pid); setInterval(() => {}, 1000);`;
  const { NODE_OPTIONS: _, ...plain } = process.env;
  const parent = guard ? spawnChild(process.execPath, ['-e', script], { env: childEnv(), deadlineMs: scaledMs(60_000) }) : spawn(process.execPath, ['-e', script], { env: plain });
  const pid = await new Promise<number>((res, rej) => {
    parent.stdout!.once('data', (d) => res(Number(String(d).trim())));
    parent.once('exit', () => rej(new Error('the parent exited before starting its child')));
  });
  await new Promise((r) => setTimeout(r, 300)); // the grandchild has loaded its preloads
  const gone = new Promise((r) => parent.once('exit', r));
  parent.kill('SIGKILL');
  await gone;
  return pid;
}

test('a grandchild whose parent was SIGKILLed ends itself (orphan guard); without the guard it runs on', async () => {
  const guarded = await orphan(true);
  try {
    const t0 = Date.now();
    while (alive(guarded)) {
      assert.ok(Date.now() - t0 < scaledMs(10_000), `the orphaned grandchild ${guarded} is still running after ${Date.now() - t0} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    if (alive(guarded)) process.kill(guarded, 'SIGKILL');
  }
  const unguarded = await orphan(false);
  try {
    await new Promise((r) => setTimeout(r, 1500)); // three guard periods
    assert.ok(alive(unguarded), 'the control: an orphan without the guard keeps running');
  } finally {
    process.kill(unguarded, 'SIGKILL');
  }
});

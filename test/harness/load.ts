// Timeouts that scale with the machine's load instead of flaking on a busy one: a deadline written for an
// idle machine is multiplied by LAVENDER_TEST_TIMEOUT_SCALE when set, else by the 1-minute load average per
// core (at least 1). Deadlines guard against hangs; they are never the thing a test measures.
import { availableParallelism, loadavg } from 'node:os';

/** How many times slower than an idle machine to allow for. */
export function loadFactor(): number {
  const env = Number(process.env.LAVENDER_TEST_TIMEOUT_SCALE);
  if (Number.isFinite(env) && env > 0) return env;
  return Math.min(10, Math.max(1, loadavg()[0]! / availableParallelism()));
}

/** `ms` on an idle machine, scaled to the current load. */
export const scaledMs = (ms: number) => Math.round(ms * loadFactor());

/** LAVENDER_DIST_TIMEOUT (seconds) for child ranks: `seconds` on an idle machine, scaled. */
export const scaledSeconds = (seconds: number) => String(Math.round(seconds * loadFactor()));

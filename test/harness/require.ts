// Guards for tests that need something this machine may lack (a WebGPU adapter, a CUDA device, Chromium,
// wasm SIMD). Where it is missing the tests skip with the reason; where LAVENDER_REQUIRE_<WHAT>=1 is set
// (.ci/run sets WEBGPU, CHROMIUM and SIMD; bench/gpu/run.sh sets CUDA) a missing one fails a test instead,
// so a suite cannot pass by skipping what it was meant to run.
import assert from 'node:assert/strict';
import { test } from 'node:test';

export type Requirement = 'WEBGPU' | 'CUDA' | 'CHROMIUM' | 'SIMD';

export const required = (what: Requirement): boolean => process.env[`LAVENDER_REQUIRE_${what}`] === '1';

const registered = new Set<Requirement>();

/**
 * The `skip` option for tests that need `what`: false when it is available, else the reason. Under
 * LAVENDER_REQUIRE_<what>=1 an unavailable `what` also registers (once per file) a test that fails with the reason.
 */
export function skipUnless(what: Requirement, available: boolean, reason: string): string | false {
  if (available) return false;
  if (required(what) && !registered.has(what)) {
    registered.add(what);
    test(`${what.toLowerCase()} is available, as LAVENDER_REQUIRE_${what}=1 demands`, () => assert.fail(`LAVENDER_REQUIRE_${what}=1 but ${reason}`));
  }
  return reason;
}

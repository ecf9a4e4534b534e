// Runs the cross-backend suite on every registered backend that can run here, against cpu. The pure
// reference backend (no wasm fast path, no fused kernels) is registered too, so the suite always runs at
// least once and the cpu fast paths are checked against the reference (the large tier reaches the wasm
// kernels, which the suite proves by counting their calls).
// the large tier checks the cpu kernels' hit counters (fastHits) to show the wasm path ran
import { test } from 'node:test';
import * as L from '../src/index.js';
import { cpuReferenceBackend } from '../src/backends/cpu/index.js';
import { runBackendSuite } from './harness/backend-suite.js';
import { skipUnless, type Requirement } from './harness/require.js';

L.registerBackendInstance(cpuReferenceBackend);

for (const entry of L.backendEntries()) {
  if (entry.name === 'cpu') continue;
  const probe = entry.probe();
  if (!probe.available) {
    // LAVENDER_REQUIRE_WEBGPU / LAVENDER_REQUIRE_CUDA make an unavailable backend a failure
    const reason = `${entry.name} unavailable: ${probe.reason ?? 'no reason given'}`;
    test(`[${entry.name}] cross-backend suite`, { skip: skipUnless(entry.name.toUpperCase() as Requirement, false, reason) }, () => {});
    continue;
  }
  if (L.getBackend(entry.name).dataless) {
    test(`[${entry.name}] cross-backend suite`, { skip: `${entry.name} holds no data (shapes only)` }, () => {});
    continue;
  }
  runBackendSuite(entry.name);
}

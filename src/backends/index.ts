// Every backend lavender knows of. cpu is always there; the GPU backends register an entry that says
// whether they were built and can run here, so `lavender info` reports them either way.
import { registerBackend, registerBackendInstance } from './registry.js';
import './cpu/index.js';
import { metaBackend } from './meta/index.js';
import { cudaEntry } from './cuda/index.js';
import { webgpuEntry } from './webgpu/index.js';

const notYet = (name: string, issue: string) => ({
  name,
  built: false,
  create: () => {
    throw new Error(`${name}: this build of lavender has no ${name} backend yet (${issue})`);
  },
  probe: () => ({ available: false, reason: `not built: the ${name} backend is not part of this version (${issue})` }),
});

registerBackend(webgpuEntry);
registerBackend(cudaEntry);

registerBackendInstance(metaBackend);

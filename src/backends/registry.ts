// Backends register themselves by name; tensors carry the name as their device.
import type { Backend } from './backend.js';

export interface BackendEntry {
  name: string;
  /** Whether the code for this backend is present in this build (e.g. the CUDA addon was compiled). */
  built: boolean;
  /** Create the backend; throws with the reason when it cannot run here. Called once, lazily. */
  create: () => Backend;
  /** Cheap probe for `lavender info`: can it run here, and if not, why. */
  probe: () => { available: boolean; reason?: string };
}

const entries = new Map<string, BackendEntry>();
const instances = new Map<string, Backend>();
let defaultDevice = 'cpu';

export function registerBackend(entry: BackendEntry): void {
  entries.set(entry.name, entry);
}

export function registerBackendInstance(backend: Backend): void {
  entries.set(backend.name, { name: backend.name, built: true, create: () => backend, probe: () => ({ available: backend.available, reason: backend.reason }) });
  instances.set(backend.name, backend);
}

export function backendNames(): string[] {
  return [...entries.keys()];
}

export function backendEntries(): BackendEntry[] {
  return [...entries.values()];
}

export function getBackend(name: string): Backend {
  const have = instances.get(name);
  if (have) return have;
  const entry = entries.get(name);
  if (!entry) throw new Error(`unknown device '${name}' (registered backends: ${backendNames().join(', ') || 'none'})`);
  const b = entry.create();
  instances.set(name, b);
  return b;
}

export function setDefaultDevice(name: string): void {
  getBackend(name);
  defaultDevice = name;
}

export function getDefaultDevice(): string {
  return defaultDevice;
}

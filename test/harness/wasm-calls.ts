// Counts calls into the cpu backend's WebAssembly kernels (sgemm's tile/pack, the row kernels' softmax,
// layerNorm, ...), so a test can show that its shapes really reach the fast paths instead of the
// TypeScript fallbacks. It wraps WebAssembly.Instance, so it must be imported before the first fast-path
// call instantiates a module (import it first in the test file). Worker threads' instances are not counted;
// the main thread always takes part in an sgemm, so its calls are.
const counts = new Map<string, number>();
let instances = 0;

const Original = WebAssembly.Instance;
function CountingInstance(this: unknown, module: WebAssembly.Module, imports?: WebAssembly.Imports): WebAssembly.Instance {
  const inst = new Original(module, imports);
  instances++;
  const exports: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(inst.exports)) {
    exports[name] = typeof value !== 'function' ? value : (...args: unknown[]) => {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return (value as (...a: unknown[]) => unknown)(...args);
    };
  }
  // returning an object from a constructor makes `new` yield it
  return { exports: Object.freeze(exports) } as unknown as WebAssembly.Instance;
}
CountingInstance.prototype = Original.prototype;
(WebAssembly as unknown as { Instance: unknown }).Instance = CountingInstance;

/** Calls per export name since the last reset. */
export function wasmCalls(): Record<string, number> {
  return Object.fromEntries(counts);
}

export function resetWasmCalls(): void {
  counts.clear();
}

/** Modules instantiated through the counting wrapper (0 means the kernels were loaded before it, or not at all). */
export function countedInstances(): number {
  return instances;
}

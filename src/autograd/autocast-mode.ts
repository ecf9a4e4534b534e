// Whether ops run under automatic mixed precision, and in which low-precision dtype (see ops/autocast.ts
// for the policy). Off while a backward pass runs: gradient rules keep the dtypes their forward produced.
export type LowPrecision = 'bfloat16' | 'float16';

let current: LowPrecision | null = null;

export function autocastDtype(): LowPrecision | null {
  return current;
}

/** Run fn with autocast set to `dtype` (null or 'float32': off), restoring the previous setting after. */
export function withAutocast<T>(dtype: LowPrecision | 'float32' | null, fn: () => T): T {
  if (dtype !== null && dtype !== 'float32' && dtype !== 'bfloat16' && dtype !== 'float16') {
    throw new Error(`autocast: dtype must be 'bfloat16', 'float16', 'float32' or null, got '${dtype as string}'`);
  }
  const prev = current;
  current = dtype === 'float32' ? null : dtype;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

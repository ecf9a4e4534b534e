// The training loop is one coroutine for every configuration: it yields a promise only where it must wait
// for a collective (a process group, ZeRO). A single-process run without a process group never yields,
// so runSync() drives it to the end in one synchronous call (trainDiT and trainT2I stay synchronous
// functions), and runAsync() drives a distributed one, resuming the coroutine with each awaited value.
export type Co<T> = Generator<Promise<unknown>, T, unknown>;

const isPromise = (v: unknown): v is Promise<unknown> => !!v && typeof (v as { then?: unknown }).then === 'function';

/** Inside a coroutine: `const x = yield* wait(maybePromise)`. */
export function* wait<T>(v: T | Promise<T>): Co<T> {
  return isPromise(v) ? ((yield v) as T) : v;
}

/** Run a coroutine that must not wait for anything; `what` names the caller in the error if it does. */
export function runSync<T>(co: Co<T>, what: string): T {
  const r = co.next();
  if (!r.done) {
    r.value.catch(() => {});
    co.return(undefined as never); // run its finally blocks
    throw new Error(`${what}: internal error: the synchronous path waited for a collective`);
  }
  return r.value;
}

/** Run a coroutine to its end, awaiting what it yields (errors are thrown back into it). */
export async function runAsync<T>(co: Co<T>): Promise<T> {
  let r = co.next();
  while (!r.done) {
    let v: unknown;
    try {
      v = await r.value;
    } catch (e) {
      r = co.throw(e);
      continue;
    }
    r = co.next(v);
  }
  return r.value;
}

// A loopback port for a rendezvous about to listen on it (a one-node --nproc run without --master-port, the
// tests). Drawn below Linux's ephemeral range (32768+): a port the kernel hands out for port 0 can be taken
// by any process's outgoing connection before the rendezvous listens (seen on a shared test machine),
// while this range is only ever taken by listeners.
import { createServer } from 'node:net';

const FIRST = 20000, COUNT = 12000;

/** A port on 127.0.0.1 that nothing listens on now. */
export async function freeLoopbackPort(tries = 50): Promise<number> {
  for (let i = 0; i < tries; i++) {
    const port = FIRST + Math.floor(Math.random() * COUNT);
    const free = await new Promise<boolean>((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen({ host: '127.0.0.1', port }, () => s.close(() => res(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free loopback port in ${FIRST}-${FIRST + COUNT - 1} after ${tries} tries; pass --master-port`);
}

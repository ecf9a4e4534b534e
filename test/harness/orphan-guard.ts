// Preloaded (NODE_OPTIONS=--import) into every process the distributed tests start, and imported by the test
// processes themselves: a process whose parent is gone ends itself. Without it, a rank whose test was
// killed (a mutation run's timeout, a cancelled suite) kept training or waiting on its peers as an orphan.
// The parent's death shows as a changed parent pid; the check never keeps the process alive on its own.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
}, 500).unref();

export {};

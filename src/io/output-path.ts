// Output paths checked before any work is done, with one clear line naming the flag: a path that is an
// existing file where a directory is wanted (or the reverse), a parent that is a file, a place where nothing
// can be created (/proc, /sys, a read-only mount, no permission). Directories are created one level at a
// time: Node's recursive mkdir loops forever under /proc, where mkdir fails with ENOENT although the parent
// exists.
import { closeSync, mkdirSync, openSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const WHY: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  ENAMETOOLONG: 'name too long',
  // mkdir under /proc: the parent exists, but the file system takes no new entries
  ENOENT: 'this file system does not allow creating it',
  ENOTDIR: 'a part of the path is a file',
};

function why(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code ? `${code}: ${WHY[code] ?? (e as Error).message}` : (e as Error).message;
}

function statOrUndefined(path: string, flag: string, shown: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // ENOTDIR: a parent is a file, found further up
    throw new Error(`${flag} ${shown}: cannot inspect ${path} (${why(e)})`);
  }
}

/** Create `abs` and its missing parents one level at a time (never Node's recursive mkdir). */
function makeDirs(abs: string, flag: string, shown: string): void {
  const missing: string[] = [];
  for (let cur = abs; ; cur = dirname(cur)) {
    const st = statOrUndefined(cur, flag, shown);
    if (st) {
      if (!st.isDirectory()) throw new Error(`${flag} ${shown}: ${cur === abs ? 'exists and is not a directory' : `${cur} is a file, not a directory`}`);
      break;
    }
    if (dirname(cur) === cur) throw new Error(`${flag} ${shown}: no existing directory above it`);
    missing.push(cur);
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && statSync(dir).isDirectory()) continue; // made concurrently (another rank)
      throw new Error(`${flag} ${shown}: cannot create the directory ${dir} (${why(e)})`);
    }
  }
}

/** Create and remove a probe file: the only reliable test that files can be written in `dir`. */
function assertWritable(dir: string, flag: string, shown: string): void {
  const probe = join(dir, `.lavender-write-probe-${process.pid}`);
  try {
    closeSync(openSync(probe, 'wx'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw new Error(`${flag} ${shown}: cannot write files in ${dir} (${why(e)})`);
  }
  try { unlinkSync(probe); } catch { /* removed already */ }
}

/**
 * Make sure `path` is (or can be made) a writable directory; creates it if missing. Returns the absolute
 * path. Errors are one line starting with the flag and the path as given.
 */
export function prepareOutputDir(path: string, flag = '--out'): string {
  if (!path) throw new Error(`${flag} expects a directory, got an empty string`);
  const abs = resolve(path);
  makeDirs(abs, flag, path);
  assertWritable(abs, flag, path);
  return abs;
}

/**
 * Make sure a file can be written at `path`: not a directory, its folder exists (created if missing) and
 * takes new files. Returns the absolute path.
 */
export function prepareOutputFile(path: string, flag = '--out'): string {
  if (!path) throw new Error(`${flag} expects a file name, got an empty string`);
  const abs = resolve(path);
  const st = statOrUndefined(abs, flag, path);
  if (st?.isDirectory()) throw new Error(`${flag} ${path}: is a directory, expected a file name`);
  makeDirs(dirname(abs), flag, path);
  assertWritable(dirname(abs), flag, path);
  return abs;
}

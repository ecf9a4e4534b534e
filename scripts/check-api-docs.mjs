#!/usr/bin/env node
// Is docs/api (the API reference generated from the TSDoc comments by TypeDoc, typedoc.json) current?
// Generates it into a temporary folder and compares file by file; on a difference it names the files and
// says how to regenerate (`npm run docs:api`). Run by .ci/run; `npm run check:api-docs`.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const committed = join(root, 'docs', 'api');
const tmp = mkdtempSync(join(tmpdir(), 'lavender-api-'));

function list(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? list(join(dir, f)) : [join(dir, f)]));
}

try {
  execFileSync(process.execPath, [join(root, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--out', tmp], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  const want = new Map(list(tmp).map((f) => [relative(tmp, f), readFileSync(f, 'utf8')]));
  const have = new Map(list(committed).map((f) => [relative(committed, f), readFileSync(f, 'utf8')]));
  const stale = [...new Set([...want.keys(), ...have.keys()])].filter((f) => want.get(f) !== have.get(f)).sort();
  if (stale.length) {
    console.error(`check-api-docs: docs/api is out of date with the sources (${stale.slice(0, 8).join(', ')}${stale.length > 8 ? `, ... ${stale.length} files` : ''}); run \`npm run docs:api\` and commit docs/api`);
    process.exitCode = 1;
  } else {
    console.log(`check-api-docs: docs/api is current (${want.size} files)`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

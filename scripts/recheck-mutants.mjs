#!/usr/bin/env node
// Re-checks the surviving mutants of a StrykerJS JSON report against the current tests, without a full
// Stryker run (which takes tens of minutes per folder on 2 cores): each Survived / NoCoverage mutant of the
// report is applied to its source file in a scratch copy of the project, that one file is transpiled with
// TypeScript into the copy's dist/, and the named test files run until one fails. Use it after writing
// tests for a report's survivors, to see which ones the new tests kill; then confirm with `npm run mutate`.
//
//   node scripts/recheck-mutants.mjs REPORT.json FILE-FILTER TEST-FILE...
//   node scripts/recheck-mutants.mjs reports/mutation/mutation.json distributed/zero.ts zero-contracts dist
//
// A test file is named without its directory and `.test.js`. The report's copy of each source file must
// equal the current one (otherwise the mutants' locations no longer fit and the file is skipped). Needs a
// built dist/ (npm run build). Prints one line per mutant: file:line killed|SURVIVED|timeout, the mutator,
// the original text => the replacement, and the first failing test.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [reportPath, filter, ...tests] = process.argv.slice(2);
if (!reportPath || !filter || tests.length === 0) {
  console.error('usage: node scripts/recheck-mutants.mjs REPORT.json FILE-FILTER TEST-FILE...');
  process.exit(2);
}
const report = JSON.parse(readFileSync(reportPath, 'utf8'));
const options = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')).compilerOptions;
// ES modules as tsc emits them for this package ("type": "module"); transpileModule alone cannot see that
const compilerOptions = { ...ts.convertCompilerOptionsFromJson({ ...options, declaration: false, sourceMap: false }, root).options, module: ts.ModuleKind.ES2022 };
const transpile = (text, fileName) => ts.transpileModule(text, { compilerOptions, fileName }).outputText;

function scratchCopy() {
  const dir = mkdtempSync(join(tmpdir(), 'lav-recheck-'));
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(root, f), join(dir, f));
  }
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/** The first failing top-level test of the first failing file, or null when every file passes. */
function firstFailure(dir) {
  for (const t of tests) {
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', `dist/test/${t}.test.js`], { cwd: dir, encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 28 });
    if (r.error?.code === 'ETIMEDOUT') return { status: 'timeout', test: `${t}: (over 300 s)` };
    const failed = [...`${r.stdout}`.matchAll(/^not ok \d+ - (.*)$/gm)].map((m) => m[1]).filter((n) => !n.endsWith('.test.js'));
    if (failed.length || r.status !== 0) return { status: 'killed', test: `${t}: ${failed[0] ?? `exit ${r.status}`}` };
  }
  return null;
}

const offsetOf = (text, { line, column }) => {
  const lines = text.split('\n');
  let off = 0;
  for (let i = 0; i < line - 1; i++) off += lines[i].length + 1;
  return off + column - 1;
};

const dir = scratchCopy();
let survived = 0;
try {
  const baseline = firstFailure(dir);
  if (baseline) throw new Error(`the tests fail before any mutation: ${baseline.test}`);
  for (const [name, file] of Object.entries(report.files)) {
    if (!name.includes(filter)) continue;
    const rel = relative(root, join(root, name.replace(/^.*?(src\/)/, '$1')));
    const current = readFileSync(join(root, rel), 'utf8');
    if (current !== file.source) {
      console.log(`${rel}: changed since the report; skipped`);
      continue;
    }
    const out = join(dir, 'dist', rel.replace(/\.ts$/, '.js'));
    const original = readFileSync(out, 'utf8');
    // the unmutated file, transpiled the same way, must pass
    writeFileSync(out, transpile(current, rel));
    const unmutated = firstFailure(dir);
    if (unmutated) throw new Error(`${rel} transpiled without mutation fails: ${unmutated.test}`);
    const mutants = file.mutants.filter((m) => m.status === 'Survived' || m.status === 'NoCoverage').sort((a, b) => a.location.start.line - b.location.start.line);
    try {
      for (const m of mutants) {
        const a = offsetOf(current, m.location.start), b = offsetOf(current, m.location.end);
        const mutated = current.slice(0, a) + m.replacement + current.slice(b);
        writeFileSync(out, transpile(mutated, rel));
        const r = firstFailure(dir);
        if (!r) survived++;
        const what = `${current.slice(a, b).replace(/\s+/g, ' ').slice(0, 60)} => ${m.replacement.replace(/\s+/g, ' ').slice(0, 60)}`;
        console.log(`${rel}:${m.location.start.line} ${r ? r.status : 'SURVIVED'} ${m.mutatorName}: ${what}${r ? `  [${r.test.slice(0, 100)}]` : ''}`);
      }
    } finally {
      writeFileSync(out, original);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`${survived} survived`);

#!/usr/bin/env node
// Lists the mutants of a StrykerJS JSON report (reports/mutation/mutation.json after `npm run mutate`) with a
// given status, one line each: file:line status mutator: original => replacement.
//
//   node scripts/mutation-survivors.mjs reports/mutation/mutation.json [Survived,NoCoverage] [path filter]
import { readFileSync } from 'node:fs';
const [file = 'reports/mutation/mutation.json', statuses = 'Survived,NoCoverage', filter = ''] = process.argv.slice(2);
const r = JSON.parse(readFileSync(file, 'utf8'));
const want = new Set(statuses.split(','));
for (const [name, f] of Object.entries(r.files)) {
  if (filter && !name.includes(filter)) continue;
  const lines = f.source.split('\n');
  for (const m of f.mutants.sort((a, b) => a.location.start.line - b.location.start.line)) {
    if (!want.has(m.status)) continue;
    const l = m.location.start.line;
    const orig = lines[l - 1].slice(m.location.start.column - 1, m.location.end.line === l ? m.location.end.column - 1 : undefined);
    console.log(`${name.replace(/^.*src\//, '')}:${l} ${m.status.slice(0, 4)} ${m.mutatorName}: ${orig.trim().slice(0, 70)} => ${String(m.replacement).replace(/\s+/g, ' ').slice(0, 70)}`);
  }
}

// Strict flag parsing for the lavender command. Every command declares its flags (a value flag takes the
// next argument or `--name=value`; a switch takes none); anything else is an error that names the flag and,
// when there is one, the closest valid flag. A typo never silently falls back to a default.

/** 'value': `--name V` or `--name=V`; 'text': a value that may be empty (`--prompt ""`); 'switch': `--name` alone. */
export type FlagKind = 'value' | 'text' | 'switch';

export interface CommandSpec {
  /** The command's words as typed, e.g. 'train mnist'. */
  name: string;
  flags: Readonly<Record<string, FlagKind>>;
  /** Positional arguments after the command words (default 0). */
  positionals?: number;
  /** What the positionals are, for the error message (e.g. 'CHECKPOINT'). */
  positionalsHelp?: string;
}

export interface Parsed {
  /** The command words followed by the positional arguments. */
  positionals: string[];
  flags: Map<string, string | true>;
}

/** Levenshtein distance (small strings: flag names). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The valid name closest to `name` (prefix or within a third of its length in edits), if any. */
export function closest(name: string, valid: readonly string[]): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const v of valid) {
    const d = v.startsWith(name) || name.startsWith(v) ? Math.min(1, editDistance(name, v)) : editDistance(name, v);
    if (d < bestD) [best, bestD] = [v, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/**
 * Parse `argv` (the command words already matched by `spec.name`) against the command's flags.
 * Throws with a message naming the offending argument; `--help` is accepted by every command.
 */
export function parseArgs(argv: readonly string[], spec: CommandSpec): Parsed {
  const words = spec.name.split(' ');
  const positionals: string[] = [...words];
  const flags = new Map<string, string | true>();
  const valid = Object.keys(spec.flags);
  for (let i = words.length; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') || a === '--') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    const inline = eq < 0 ? undefined : a.slice(eq + 1);
    if (name === 'help') {
      flags.set('help', true);
      continue;
    }
    const kind = spec.flags[name];
    if (!kind) {
      const near = closest(name, valid);
      const list = valid.length ? `valid flags: ${valid.map((v) => `--${v}`).join(' ')}` : 'it takes no flags';
      throw new Error(`unknown flag --${name}${near ? ` (did you mean --${near}?)` : ''}; ${list}`);
    }
    if (flags.has(name)) throw new Error(`--${name} is given twice`);
    if (kind === 'switch') {
      if (inline !== undefined) throw new Error(`--${name} is a switch and takes no value (got '--${name}=${inline}')`);
      flags.set(name, true);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new Error(`--${name} expects a value${next === undefined ? '' : `, got the flag ${next}`}`);
      value = next;
      i++;
    }
    if (value === '' && kind !== 'text') throw new Error(`--${name} expects a value, got an empty string`);
    flags.set(name, value);
  }
  const extra = positionals.length - words.length - (spec.positionals ?? 0);
  if (extra > 0 && !flags.has('help')) {
    const unexpected = positionals.slice(words.length + (spec.positionals ?? 0));
    throw new Error(`unexpected argument${extra > 1 ? 's' : ''} ${unexpected.map((u) => `'${u}'`).join(' ')}${spec.positionalsHelp ? ` (it takes ${spec.positionalsHelp})` : ' (flags start with --)'}`);
  }
  return { positionals, flags };
}

export function intFlag(p: Parsed, name: string, fallback: number, allowZero = false): number {
  const v = p.flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v === true || !Number.isInteger(n) || n < (allowZero ? 0 : 1)) {
    throw new Error(`--${name} expects a ${allowZero ? 'non-negative' : 'positive'} integer, got ${v === true ? 'nothing' : `'${v}'`}`);
  }
  return n;
}

export function numberFlag(p: Parsed, name: string, fallback: number): number {
  const v = p.flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v === true || !Number.isFinite(n) || n <= 0) throw new Error(`--${name} expects a positive number, got ${v === true ? 'nothing' : `'${v}'`}`);
  return n;
}

export function stringFlag(p: Parsed, name: string, fallback: string): string {
  const v = p.flags.get(name);
  if (v === true) throw new Error(`--${name} expects a value`);
  return v ?? fallback;
}

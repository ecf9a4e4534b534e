// Minimal flag parsing for the lavender command: --name value, --flag, positionals.
export interface Parsed {
  positionals: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(argv: readonly string[]): Parsed {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (inline !== undefined) flags.set(name, inline);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) flags.set(name, argv[++i]!);
    else flags.set(name, true);
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

// A one-line progress bar on stderr (redrawn in place on a terminal, a line every 10% otherwise).
export class Progress {
  private readonly start = performance.now();
  private lastPct = -1;
  private last = 0;
  /** `after` adds to the eta what comes after the last step, from the seconds per step (e.g. sampling). */
  constructor(
    private readonly total: number,
    private readonly first = 0,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly after?: (secondsPerStep: number) => { seconds: number; what: string } | null,
  ) {}

  update(step: number, text: string): void {
    const done = step - this.first, left = this.total - step;
    const per = (performance.now() - this.start) / 1000 / Math.max(done, 1);
    const pct = Math.floor((step / this.total) * 100);
    const width = 24, fill = Math.round((step / this.total) * width);
    const then = this.after?.(per);
    const line = `step ${step}/${this.total} [${'='.repeat(fill)}${' '.repeat(width - fill)}] ${text}  ${per.toFixed(2)}s/step  eta ${formatEta(left * per)}${then ? ` + ${then.what} ~${formatEta(then.seconds)}` : ''}`;
    if (this.stream.isTTY) this.stream.write(`\r${line}\x1b[K${step === this.total ? '\n' : ''}`);
    else if (Math.floor(pct / 10) !== Math.floor(this.lastPct / 10) || step === this.total) this.stream.write(`${line}\n`);
    this.lastPct = pct;
    this.last = step;
  }

  /** A run that ended before its last step: finish the redrawn line so the next message starts on its own. */
  stopped(): void {
    if (this.stream.isTTY && this.last !== this.total) this.stream.write('\n');
  }
}

export function formatEta(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

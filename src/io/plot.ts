// Line plots rendered straight to RGB pixels (for PNG output): a grid of panels, log-scaled axes (the x axis
// may be linear), one coloured line per series, optional marked points, titles and tick labels in the
// built-in bitmap font. A log axis has no place for 0, so panels with zeros get a separate "0" baseline
// below the log range: every series in the legend is drawn somewhere. Values that are not finite (NaN, a
// diverged run) are left out, with the line broken there; so are values outside a panel's yRange when it
// zooms (yZoom).
import { drawText, GLYPH_H, GLYPH_W, setPixel } from './font.js';

export interface Series {
  label: string;
  values: number[];
  /** Indices of points to mark with a filled square (e.g. the best learning rate). */
  marks?: number[];
}

export interface Panel {
  title: string;
  xs: number[];
  series: Series[];
  /** 'log' (default) or 'linear' (e.g. xs already log2 of something). */
  xScale?: 'log' | 'linear';
  /** The x axis' name (default 'WIDTH'). */
  xTitle?: string;
  /** The y range to show (positive; e.g. shared by panels to compare); default the values' range. */
  yRange?: [number, number];
  /**
   * Show exactly yRange, however narrow (otherwise at least a factor of 2 is shown), with 3-digit tick
   * labels; values outside it are left out (e.g. a loss basin's floor).
   */
  yZoom?: boolean;
}

const COLORS: [number, number, number][] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127]];

function line(img: { width: number; height: number; pixels: Uint8Array }, x0: number, y0: number, x1: number, y1: number, c: readonly number[]): void {
  const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
  for (let i = 0; i <= n; i++) setPixel(img, x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, c);
}

const fmt = (v: number) => (v >= 100 || v < 0.01 ? v.toExponential(0) : String(Number(v.toPrecision(2))));

/** Render rows x cols panels; x and y axes are log10-scaled. Returns RGB pixels. */
export function plotPanels(rows: Panel[][], opts: { panelWidth?: number; panelHeight?: number; title?: string } = {}): { width: number; height: number; channels: 3; pixels: Uint8Array } {
  const pw = opts.panelWidth ?? 320, ph = opts.panelHeight ?? 240, top = opts.title ? 24 : 4;
  const ncols = Math.max(...rows.map((r) => r.length));
  const img = { width: pw * ncols, height: ph * rows.length + top, channels: 3 as const, pixels: new Uint8Array(pw * ncols * (ph * rows.length + top) * 3).fill(255) };
  if (opts.title) drawText(img, opts.title, 8, 6, [0, 0, 0], 2);
  rows.forEach((row, ri) => row.forEach((panel, ci) => {
    const ox = ci * pw, oy = top + ri * ph;
    const left = ox + 52, right = ox + pw - 12, upper = oy + 22, axis = oy + ph - 44;
    let lower = axis;
    drawText(img, panel.title, ox + 52, oy + 6, [0, 0, 0]);
    const all = panel.series.flatMap((s) => s.values);
    const ys = all.filter((v) => v > 0 && Number.isFinite(v));
    const zeroRow = all.some((v) => v === 0) ? lower - 5 : null; // the "0" baseline, below a gap
    if (zeroRow !== null) lower -= 20;
    if (!ys.length) ys.push(1);
    const [ymin, ymax] = panel.yRange ? panel.yRange.map(Math.log10) as [number, number] : [Math.log10(Math.min(...ys)), Math.log10(Math.max(...ys))];
    const zoom = !!(panel.yZoom && panel.yRange);
    const yspan = zoom ? Math.max(ymax - ymin, 1e-4) : Math.max(ymax - ymin, 0.3), pad = zoom ? yspan * 0.05 : 0.05;
    const ylo = (ymin + ymax) / 2 - yspan / 2 - pad, yhi = ylo + yspan + 2 * pad;
    const fx = panel.xScale === 'linear' ? (x: number) => x : Math.log10;
    const [xlo, xhi] = [fx(Math.min(...panel.xs)), fx(Math.max(...panel.xs))];
    const X = (x: number) => left + ((fx(x) - xlo) / Math.max(xhi - xlo, 1e-9)) * (right - left);
    const Y = (y: number) => (y === 0 && zeroRow !== null ? zeroRow : lower - ((Math.log10(y) - ylo) / (yhi - ylo)) * (lower - upper));
    const inside = (v: number) => !zoom || (v >= panel.yRange![0] && v <= panel.yRange![1]);
    const drawable = (v: number) => v > 0 ? Number.isFinite(v) && inside(v) : v === 0 && zeroRow !== null && inside(v);
    line(img, left, axis, right, axis, [0, 0, 0]);
    line(img, left, axis, left, upper, [0, 0, 0]);
    if (zeroRow !== null) {
      // a break in the y axis between the log range and the 0 baseline
      for (let x = left - 3; x <= left + 3; x++) for (const y of [lower + 7, lower + 10]) setPixel(img, x, y, [0, 0, 0]);
      drawText(img, '0', ox + 4, zeroRow - GLYPH_H / 2, [80, 80, 80]);
    }
    for (const x of panel.xs) {
      line(img, X(x), axis, X(x), axis + 3, [0, 0, 0]);
      const label = String(x);
      drawText(img, label, X(x) - (label.length * GLYPH_W) / 2, axis + 6, [0, 0, 0]);
    }
    for (const y of [10 ** ylo, 10 ** ((ylo + yhi) / 2), 10 ** yhi]) drawText(img, zoom ? String(Number(y.toPrecision(3))) : fmt(y), ox + 4, Y(y) - GLYPH_H / 2, [80, 80, 80]);
    const xTitle = panel.xTitle ?? 'WIDTH';
    drawText(img, xTitle, (left + right) / 2 - (xTitle.length * GLYPH_W) / 2, axis + 18, [0, 0, 0]);
    panel.series.forEach((s, k) => {
      const c = COLORS[k % COLORS.length]!;
      for (let i = 1; i < panel.xs.length; i++) {
        const a = s.values[i - 1]!, b = s.values[i]!;
        if (drawable(a) && drawable(b)) for (const d of [-1, 0, 1]) line(img, X(panel.xs[i - 1]!), Y(a) + d, X(panel.xs[i]!), Y(b) + d, c);
      }
      for (const i of s.marks ?? []) {
        const v = s.values[i];
        if (v === undefined || !drawable(v)) continue;
        for (let dy = -4; dy <= 4; dy++) for (let dx = -4; dx <= 4; dx++) setPixel(img, X(panel.xs[i]!) + dx, Y(v) + dy, Math.max(Math.abs(dx), Math.abs(dy)) === 4 ? [0, 0, 0] : c);
      }
      drawText(img, s.label, left + 4 + (k % 4) * 58, axis + 30 + Math.floor(k / 4) * 9, c);
    });
  }));
  return img;
}

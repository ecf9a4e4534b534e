// Canvas drawing for the browser app: the loss curve and grids of images in [-1, 1].
import { toByte } from '../../src/io/png.js';

/** Images [n, C, S, S] (C = 1 gray or 3 RGB) tiled `cols` per row with a 2-pixel gap, drawn at `zoom`. */
export function drawImages(canvas: HTMLCanvasElement, images: Float32Array, n: number, c: number, s: number, cols: number, zoom = 3): void {
  const rows = Math.ceil(n / cols), pad = 2;
  const w = cols * (s + pad) + pad, h = rows * (s + pad) + pad;
  canvas.width = w;
  canvas.height = h;
  canvas.style.width = `${w * zoom}px`;
  canvas.style.height = `${h * zoom}px`;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(w, h);
  for (let p = 3; p < img.data.length; p += 4) img.data[p] = 255;
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % cols) * (s + pad), y0 = pad + Math.floor(k / cols) * (s + pad);
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        const o = ((y0 + y) * w + x0 + x) * 4;
        for (let ch = 0; ch < 3; ch++) img.data[o + ch] = toByte(images[(k * c + (c === 3 ? ch : 0)) * s * s + y * s + x]!);
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}

/** The loss per step as a line, with the axes' ranges and the latest value written in. */
export function drawLoss(canvas: HTMLCanvasElement, losses: readonly number[]): void {
  const ctx = canvas.getContext('2d')!;
  const W = canvas.width, H = canvas.height, L = 44, R = 10, T = 12, B = 24;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = '#bbb';
  ctx.strokeRect(L, T, W - L - R, H - T - B);
  ctx.fillStyle = '#555';
  ctx.font = '11px system-ui, sans-serif';
  if (!losses.length) {
    ctx.fillText('no steps yet', L + 8, T + 18);
    return;
  }
  const lo = Math.min(...losses), hi = Math.max(...losses), span = hi - lo || 1;
  ctx.fillText(hi.toFixed(2), 4, T + 8);
  ctx.fillText(lo.toFixed(2), 4, H - B);
  ctx.fillText(`step ${losses.length}: loss ${losses[losses.length - 1]!.toFixed(4)}`, L + 8, T + 14);
  ctx.fillText('1', L, H - 8);
  ctx.fillText(String(losses.length), W - R - 24, H - 8);
  ctx.strokeStyle = '#6b3fa0';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  losses.forEach((v, i) => {
    const x = L + ((W - L - R) * i) / Math.max(1, losses.length - 1);
    const y = T + (H - T - B) * (1 - (v - lo) / span);
    if (i) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

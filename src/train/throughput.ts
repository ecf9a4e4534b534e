// Training throughput as large-model runs report it: tokens per second, model FLOPs utilisation (MFU:
// 6 N tokens/s, the forward and backward's multiply-adds of N parameters per token with attention's T^2
// term left out, over the accelerators' dense bf16 peak) and the device's peak memory.
import type { Backend } from '../backends/backend.js';

/** The cards' dense bf16 tensor-core peaks in TFLOP/s (no sparsity), by device name; NaN when unknown. */
export function peakBf16Tflops(name: string): number {
  if (/H200|H100.*(SXM|HBM3)|GH200/i.test(name)) return 989;
  if (/H100/i.test(name)) return 756; // PCIe
  if (/A100/i.test(name)) return 312;
  if (/L40S/i.test(name)) return 362;
  return NaN;
}

export interface Throughput {
  tokensPerSecond: number;
  /** null where the device's peak is not known (a CPU, an unlisted card). */
  mfu: number | null;
  /** The training device's peak allocated bytes on this rank, where the backend counts them. */
  peakMemoryBytes: number | null;
}

/**
 * Throughput of a run: `tokensPerStep` over all ranks, `secondsPerStep` the median step, `devices` the
 * number of accelerators sharing the step (the world size).
 */
export function throughput(o: { parameters: number; tokensPerStep: number; secondsPerStep: number; devices: number; backend: Backend }): Throughput {
  const tokensPerSecond = o.secondsPerStep > 0 ? o.tokensPerStep / o.secondsPerStep : 0;
  const peak = o.backend.deviceName ? peakBf16Tflops(o.backend.deviceName) : NaN;
  const mfu = Number.isNaN(peak) || tokensPerSecond === 0 ? null : (6 * o.parameters * tokensPerSecond) / (peak * 1e12 * o.devices);
  return { tokensPerSecond, mfu, peakMemoryBytes: o.backend.peakBytes?.() ?? null };
}

/** "12,345 tokens/s, MFU 48.1% of the NVIDIA H200's bf16 peak, peak memory 84.21 GiB" (parts that are known). */
export function formatThroughput(t: Throughput, deviceName?: string): string {
  const parts = [`${Math.round(t.tokensPerSecond).toLocaleString('en')} tokens/s`];
  if (t.mfu !== null) parts.push(`MFU ${(t.mfu * 100).toFixed(1)}% of the ${deviceName}'s bf16 peak`);
  if (t.peakMemoryBytes !== null) parts.push(`peak memory ${(t.peakMemoryBytes / 2 ** 30).toFixed(2)} GiB`);
  return parts.join(', ');
}

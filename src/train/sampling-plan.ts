// The sample grid drawn at the end of a DiT training run: on by default for real runs, off for short
// ones (a 4-step smoke test should not spend minutes drawing noise; `lavender sample` draws a grid from
// any checkpoint later), and its cost estimated from the measured step time so the progress line can say
// how long it will take.

/** Runs shorter than this draw no grid unless sample rows are asked for. */
export const SHORT_RUN_STEPS = 100;

export interface SamplingPlan {
  /** Images per class (0: no grid). */
  rows: number;
  /** Euler steps. */
  steps: number;
  /** Why there is no grid, when there is none. */
  skipped?: string;
}

/** `sampleRows` undefined means the default: 4 rows, or none for a run under SHORT_RUN_STEPS steps. */
export function planSampling(o: { steps: number; sampleRows?: number; sampleSteps?: number }): SamplingPlan {
  const steps = o.sampleSteps ?? 50;
  if (o.sampleRows !== undefined) return { rows: o.sampleRows, steps, ...(o.sampleRows === 0 ? { skipped: 'sample rows 0' } : {}) };
  if (o.steps < SHORT_RUN_STEPS) return { rows: 0, steps, skipped: `a run of under ${SHORT_RUN_STEPS} steps draws no grid unless --sample-rows is given` };
  return { rows: 4, steps };
}

/**
 * Seconds the grid will take, from the median training step: a forward pass costs about a third of a
 * training step (forward + backward), per image; classifier-free guidance doubles the batch.
 */
export function estimateSamplingSeconds(plan: SamplingPlan, classes: number, secondsPerStep: number, batch: number): number {
  if (plan.rows === 0) return 0;
  return (plan.steps * 2 * plan.rows * classes * secondsPerStep) / (3 * batch);
}

// Learning-rate schedules as multipliers of each group's base lr (the optimizer's lrScale).

/**
 * Linear warm-up multiplier for the optimizer step with 0-based index `step` (the number of optimizer
 * steps already taken): min(1, (step + 1) / warmupSteps). The first step runs at 1/warmupSteps of the
 * base lr and step warmupSteps-1 reaches the full lr. This is what
 * `torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / warmup))` gives when
 * `scheduler.step()` is called after each `optimizer.step()`. warmupSteps <= 0 means no warm-up (1).
 */
export function linearWarmup(step: number, warmupSteps: number): number {
  if (!(Number.isInteger(step) && step >= 0)) throw new Error(`linearWarmup: step must be an integer >= 0, got ${step}`);
  if (!(warmupSteps > 0)) return 1;
  return Math.min(1, (step + 1) / warmupSteps);
}

/**
 * Linear decay to 0 over a run of `totalSteps` optimizer steps: the step with 0-based index `step` runs at
 * 1 - step / totalSteps of the base lr (the first at the full lr, the last at 1/totalSteps); 0 past the
 * end. A function of the step alone, so a resumed run continues the same schedule (as
 * `LambdaLR(opt, lambda s: 1 - s / total)` stepped after each optimizer step).
 */
export function linearDecay(step: number, totalSteps: number): number {
  if (!(Number.isInteger(step) && step >= 0)) throw new Error(`linearDecay: step must be an integer >= 0, got ${step}`);
  if (!(Number.isInteger(totalSteps) && totalSteps >= 1)) throw new Error(`linearDecay: totalSteps must be an integer >= 1, got ${totalSteps}`);
  return Math.max(0, 1 - step / totalSteps);
}

/** Anything whose lr a scheduler can scale (AdamW, Adam). */
export interface LrScalable {
  setLrScale(s: number): void;
}

/**
 * Linear warm-up as a LambdaLR: the constructor sets the scale for step 0, and step() — called after
 * each optimizer.step() — advances to the next step's scale.
 *
 *   const sched = new WarmupScheduler(opt, 1000);
 *   for (...) { ...; opt.step(); sched.step(); }
 */
export class WarmupScheduler {
  /** Number of scheduler.step() calls so far (= the 0-based index of the next optimizer step). */
  lastStep = 0;
  constructor(readonly optimizer: LrScalable, readonly warmupSteps: number) {
    if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0)) throw new Error(`WarmupScheduler: warmupSteps must be an integer >= 0, got ${warmupSteps}`);
    this.apply();
  }

  /** The multiplier in effect for the next optimizer step. */
  get scale(): number {
    return linearWarmup(this.lastStep, this.warmupSteps);
  }

  step(): void {
    this.lastStep++;
    this.apply();
  }

  stateDict(): { lastStep: number; warmupSteps: number } {
    return { lastStep: this.lastStep, warmupSteps: this.warmupSteps };
  }

  /** Resume at a saved position (and set the optimizer's scale accordingly). */
  loadStateDict(sd: { lastStep: number }): void {
    if (!(Number.isInteger(sd?.lastStep) && sd.lastStep >= 0)) throw new Error(`WarmupScheduler.loadStateDict: lastStep must be an integer >= 0, got ${sd?.lastStep}`);
    this.lastStep = sd.lastStep;
    this.apply();
  }

  private apply(): void {
    this.optimizer.setLrScale(this.scale);
  }
}

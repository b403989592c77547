/**
 * torch.cuda.amp.GradScaler's host state as train.py uses it (docs/training.md §4): the loss is multiplied by
 * the scale S before backward; the optimizer step unscales the gradients and skips itself when any is inf/NaN
 * (wgsl/optim/unscale.wgsl raises the flag); `update` then backs the scale off (x0.5) after an overflow, or
 * grows it (x2) after `growthInterval` consecutive finite steps. Disabled (amp off) it is GradScaler(enabled=
 * False): a pass-through whose scale reads 1.
 *
 * @example
 * ```ts
 * const scaler = new GradScaler(true);
 * // ... backward of loss * scaler.scale, step (skipped on overflow), readback of the overflow flag ...
 * scaler.update(foundInf);
 * ```
 * @module
 */

/** GradScaler's constructor defaults, which train.py keeps. */
export interface GradScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
}

/** What a checkpoint keeps so a resumed run scales (and counts optimizer steps) exactly as an unbroken one. */
export interface GradScalerState {
  scale: number;
  /** finite steps since the last growth or backoff */
  growthTracker: number;
  /** optimizer steps skipped for overflow so far: they do not count as Adam's t or SGD's first step */
  skippedSteps: number;
}

export const GRAD_SCALER_DEFAULTS = {
  initScale: 2 ** 16,
  growthFactor: 2,
  backoffFactor: 0.5,
  growthInterval: 2000,
} as const satisfies Required<GradScalerOptions>;

export class GradScaler {
  readonly options: Required<GradScalerOptions>;
  #scale: number;
  #growthTracker = 0;
  #skippedSteps = 0;

  constructor(readonly enabled: boolean, options: GradScalerOptions = {}) {
    this.options = { ...GRAD_SCALER_DEFAULTS, ...options };
    if (!Number.isInteger(this.options.growthInterval) || this.options.growthInterval < 1) {
      throw new RangeError(
        `GradScaler: growthInterval must be a positive integer, got ${options.growthInterval}`,
      );
    }
    // torch keeps the scale as a float32 tensor.
    this.#scale = Math.fround(this.options.initScale);
  }

  /** The factor the loss is multiplied by (1 when disabled). */
  get scale(): number {
    return this.enabled ? this.#scale : 1;
  }

  /** What unscale multiplies the gradients by: float32(1 / float64(S)), as torch computes it. */
  get invScale(): number {
    return Math.fround(1 / this.scale);
  }

  get skippedSteps(): number {
    return this.#skippedSteps;
  }

  /** scaler.update() after an optimizer step whose gradients held an inf/NaN (`foundInf`) or not. */
  update(foundInf: boolean): void {
    if (!this.enabled) return;
    const o = this.options;
    if (foundInf) {
      this.#scale = Math.fround(this.#scale * o.backoffFactor);
      this.#growthTracker = 0;
      this.#skippedSteps++;
      return;
    }
    this.#growthTracker++;
    if (this.#growthTracker === o.growthInterval) {
      const grown = Math.fround(this.#scale * o.growthFactor);
      if (Number.isFinite(grown)) this.#scale = grown;
      this.#growthTracker = 0;
    }
  }

  state(): GradScalerState {
    return { scale: this.#scale, growthTracker: this.#growthTracker, skippedSteps: this.#skippedSteps };
  }

  /** A checkpoint's state; the skipped-step count is kept even when disabled (it fixes the step count). */
  restore(state: GradScalerState): void {
    this.#scale = state.scale;
    this.#growthTracker = state.growthTracker;
    this.#skippedSteps = state.skippedSteps;
  }
}

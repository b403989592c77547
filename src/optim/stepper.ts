/**
 * train.py's per-iteration optimizer bookkeeping in one place, for a trainer that records each training step into
 * one command encoder and submits once: zero_grad at epoch start, then (after the caller's forward/backward has
 * added this batch's gradients) unscale + clip + step + zero_grad + EMA on stepping iterations, and, once the
 * submit has run, the GradScaler's update from the step's overflow flag (read with the grad norm, no extra sync).
 * As in train.py, a step skipped for overflow still counts as an EMA update (docs/training.md §4).
 */
import type { ProgramCache } from "../gpu/programs.ts";
import { Ema, type EmaSource } from "./ema.ts";
import { GradScaler, type GradScalerOptions, type GradScalerState } from "./grad_scaler.ts";
import { describeGroups, type LayoutEntry, layoutLength } from "./groups.ts";
import { Optimizer } from "./optimizer.ts";
import { type IterationPlan, Schedule, type ScheduleOptions } from "./schedule.ts";

/** The schedule's options (hyp before train.py's nominal-batch scaling: the Schedule scales weight_decay) plus the
 * step's own settings. */
export interface StepperSettings extends ScheduleOptions {
  maxGradNorm?: number;
  ema?: { decay: number; tau: number };
  /** src/gpu/runs.ts streamChunk(gpu.isFallback). */
  chunk?: number;
  /** Mixed precision: the loss is scaled by a GradScaler with these options (needs StepperBuffers.lossScale). */
  amp?: GradScalerOptions;
}

/** What an iteration's trace line takes from the optimizer once the iteration's submit has run. */
export interface IterationReadback {
  /** pre-clip gradient norm of a stepping iteration, null on iterations that only accumulate */
  gradNorm: number | null;
  /** the scale this iteration's loss was multiplied by (1 without amp) */
  lossScale: number;
}

export interface StepperBuffers {
  params: GPUBuffer;
  grads: GPUBuffer;
  /** Further float state the EMA averages, e.g. BatchNorm running stats. */
  emaExtra?: EmaSource[];
  /** [S, f32(1/S)] the loss backward multiplies by (TrainProgram.loss.scale); written here when S changes. */
  lossScale?: GPUBuffer;
}

export class OptimizerStepper {
  readonly schedule: Schedule;
  readonly optimizer: Optimizer;
  readonly ema: Ema;
  readonly scaler: GradScaler;
  readonly #device: GPUDevice;
  readonly #lossScale?: GPUBuffer;

  constructor(
    device: GPUDevice,
    programs: ProgramCache,
    readonly layout: readonly LayoutEntry[],
    buffers: StepperBuffers,
    readonly settings: StepperSettings,
  ) {
    this.schedule = new Schedule(settings);
    if (settings.amp && !buffers.lossScale) {
      throw new Error("OptimizerStepper: amp needs the loss-scale buffer the loss backward reads");
    }
    this.#device = device;
    this.scaler = new GradScaler(settings.amp !== undefined, settings.amp);
    this.#lossScale = settings.amp && buffers.lossScale;
    this.#writeScale();
    this.optimizer = new Optimizer(
      device,
      programs,
      layout,
      { params: buffers.params, grads: buffers.grads },
      {
        kind: settings.optimizer,
        weightDecay: this.schedule.weightDecay,
        maxGradNorm: settings.maxGradNorm,
        chunk: settings.chunk,
        lossScale: this.#lossScale,
      },
    );
    const sources = [{ buffer: buffers.params, size: layoutLength(layout), label: "params" }];
    this.ema = new Ema(device, programs, [...sources, ...(buffers.emaExtra ?? [])], {
      ...settings.ema,
      chunk: settings.chunk,
    });
  }

  /** train.py's "optimizer: SGD(lr=0.01) with parameter groups ..." line. */
  describe(): string {
    return describeGroups(
      this.settings.optimizer,
      this.settings.hyp.lr0,
      this.schedule.weightDecay,
      this.layout,
    );
  }

  /** Call first for batch i of epoch; records the epoch-start zero_grad before the caller's backward. */
  begin(encoder: GPUCommandEncoder, epoch: number, i: number): IterationPlan {
    const plan = this.schedule.iteration(epoch, i);
    if (plan.zeroGradFirst) this.optimizer.zeroGrad(encoder);
    return plan;
  }

  /** Call after the backward is recorded: on stepping iterations records unscale, clip, step, zero_grad, EMA. */
  finish(encoder: GPUCommandEncoder, plan: IterationPlan): void {
    if (!plan.stepped) return;
    this.optimizer.step(encoder, plan, { readBack: true });
    this.ema.update(encoder);
  }

  /**
   * Call once the iteration's submit has been made (before the next iteration is recorded): reads a stepping
   * iteration's grad norm and overflow flag, and applies scaler.update(); a skipped step does not count as an
   * optimizer step (Adam's t, SGD's first step), and the next iteration's loss uses the updated scale.
   */
  async afterSubmit(plan: IterationPlan): Promise<IterationReadback> {
    const lossScale = this.scaler.scale;
    if (!plan.stepped) return { gradNorm: null, lossScale };
    const { gradNorm, foundInf } = await this.optimizer.readStep();
    this.scaler.update(foundInf);
    if (foundInf) this.optimizer.restoreSteps(this.optimizer.steps - 1);
    if (this.scaler.scale !== lossScale) this.#writeScale();
    return { gradNorm, lossScale };
  }

  /** A checkpoint's scaler state (call before replay: its skipped steps fix the optimizer's step count). */
  restoreScaler(state: GradScalerState): void {
    this.scaler.restore(state);
    this.#writeScale();
  }

  #writeScale(): void {
    if (!this.#lossScale) return;
    const values = new Float32Array([this.scaler.scale, this.scaler.invScale]);
    this.#device.queue.writeBuffer(this.#lossScale, 0, values);
  }

  /**
   * Resume: brings the schedule, the optimizer's step count and the EMA's update count to batch `iterations`
   * of epoch `epochs` by replaying the host schedule (less the steps the restored scaler skipped); no GPU work
   * (the GPU state comes from the checkpoint).
   */
  replay(epochs: number, iterations = 0): void {
    let steps = 0;
    for (let epoch = 0; epoch <= epochs; epoch++) {
      const batches = epoch < epochs ? this.settings.nb : iterations;
      for (let i = 0; i < batches; i++) if (this.schedule.iteration(epoch, i).stepped) steps++;
      if (epoch < epochs) this.schedule.endEpoch(epoch);
    }
    this.optimizer.restoreSteps(this.optimizer.steps + steps - this.scaler.skippedSteps);
    this.ema.restoreUpdates(this.ema.updates + steps);
  }

  /** Frees the optimizer state and the EMA copies (not the params or grads they update). */
  destroy(): void {
    this.optimizer.destroy();
    this.ema.destroy();
  }

  /** scheduler.step() after the epoch's last batch. */
  endEpoch(epoch: number): void {
    this.schedule.endEpoch(epoch);
  }
}

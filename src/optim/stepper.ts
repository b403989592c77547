/**
 * train.py's per-iteration optimizer bookkeeping in one place, for a trainer that records each training step into
 * one command encoder and submits once: zero_grad at epoch start, then (after the caller's forward/backward has
 * added this batch's gradients) clip + step + zero_grad + EMA on stepping iterations.
 */
import type { ProgramCache } from "../gpu/programs.ts";
import { Ema, type EmaSource } from "./ema.ts";
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
}

export interface StepperBuffers {
  params: GPUBuffer;
  grads: GPUBuffer;
  /** Further float state the EMA averages, e.g. BatchNorm running stats. */
  emaExtra?: EmaSource[];
}

export class OptimizerStepper {
  readonly schedule: Schedule;
  readonly optimizer: Optimizer;
  readonly ema: Ema;

  constructor(
    device: GPUDevice,
    programs: ProgramCache,
    readonly layout: readonly LayoutEntry[],
    buffers: StepperBuffers,
    readonly settings: StepperSettings,
  ) {
    this.schedule = new Schedule(settings);
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

  /** Call after the backward is recorded: on stepping iterations records clip, step, zero_grad and EMA. */
  finish(encoder: GPUCommandEncoder, plan: IterationPlan): void {
    if (!plan.stepped) return;
    this.optimizer.step(encoder, plan, { readGradNorm: true });
    this.ema.update(encoder);
  }

  /**
   * Resume: brings the schedule, the optimizer's step count and the EMA's update count to batch `iterations`
   * of epoch `epochs` by replaying the host schedule; no GPU work (the GPU state comes from the checkpoint).
   */
  replay(epochs: number, iterations = 0): void {
    let steps = 0;
    for (let epoch = 0; epoch <= epochs; epoch++) {
      const batches = epoch < epochs ? this.settings.nb : iterations;
      for (let i = 0; i < batches; i++) if (this.schedule.iteration(epoch, i).stepped) steps++;
      if (epoch < epochs) this.schedule.endEpoch(epoch);
    }
    this.optimizer.restoreSteps(this.optimizer.steps + steps);
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

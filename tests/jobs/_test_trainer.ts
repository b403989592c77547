/**
 * TEST DOUBLE, not product code: a deterministic stand-in for the real trainer, so the queue, state machine
 * and persistence can be tested without a GPU. It "trains" `ITERATIONS_PER_EPOCH` iterations per epoch,
 * reports progress after each, checkpoints after each epoch and, when suspended, after the iteration it stops
 * at (its state: the position and the iterations done), resumes from a checkpoint, and can be paused at a
 * chosen iteration or made to fail.
 */
import type { Job, Trainer, TrainerContext, TrainerResult } from "../../src/jobs/types.ts";

export const ITERATIONS_PER_EPOCH = 3;

export interface TrainerCall {
  jobId: string;
  /** epoch the run started at (from the checkpoint), and the checkpoint's own record of iterations */
  startEpoch: number;
  startIterations: number;
}

/** A point the trainer stops at until released (`before` iteration number `iteration` of the whole job). */
interface Hold {
  jobId?: string;
  iteration: number;
  reached: PromiseWithResolvers<void>;
  release: PromiseWithResolvers<void>;
}

export class TestTrainer implements Trainer {
  readonly suspends = true;
  readonly calls: TrainerCall[] = [];
  /** adapter -> jobs running on it right now, and the most ever seen at once */
  readonly active = new Map<string, number>();
  maxActivePerAdapter = 0;
  private holds: Hold[] = [];
  /** throw this message instead of running iteration `iteration` */
  failAt: { iteration: number; message: string } | null = null;

  /** Pause before the job's `iteration`-th iteration (0-based over the job); resolves when it gets there. */
  holdAt(iteration: number, jobId?: string): { reached: Promise<void>; release: () => void } {
    const hold = {
      jobId,
      iteration,
      reached: Promise.withResolvers<void>(),
      release: Promise.withResolvers<void>(),
    };
    this.holds.push(hold);
    return { reached: hold.reached.promise, release: () => hold.release.resolve() };
  }

  async run(job: Readonly<Job>, ctx: TrainerContext): Promise<TrainerResult> {
    // Like the real trainer, it writes its outputs into the work directory the service provides.
    await Deno.writeTextFile(`${ctx.workDir}/trace.jsonl`, "", { append: true });
    const resumed = await ctx.checkpoint.load();
    const state: { epoch: number; i: number; iterations: number } = resumed
      ? JSON.parse(new TextDecoder().decode(resumed.state))
      : { epoch: 0, i: 0, iterations: 0 };
    const save = () =>
      ctx.checkpoint.save({
        epoch: state.epoch,
        iteration: state.i,
        state: new TextEncoder().encode(JSON.stringify(state)),
      });
    this.calls.push({ jobId: job.id, startEpoch: state.epoch, startIterations: state.iterations });
    const running = (this.active.get(job.adapter) ?? 0) + 1;
    this.active.set(job.adapter, running);
    this.maxActivePerAdapter = Math.max(this.maxActivePerAdapter, running);
    try {
      const epochs = job.config.epochs;
      const iterations = epochs * ITERATIONS_PER_EPOCH;
      let trained = 0;
      for (let epoch = state.epoch; epoch < epochs; epoch++) {
        for (let i = epoch === state.epoch ? state.i : 0; i < ITERATIONS_PER_EPOCH; i++) {
          const ni = epoch * ITERATIONS_PER_EPOCH + i;
          await this.pauseIfHeld(job.id, ni, ctx);
          ctx.signal.throwIfAborted();
          if (ctx.suspend?.aborted) {
            // Before this attempt trained anything, its checkpoint is where it stands already.
            if (trained > 0) {
              Object.assign(state, { epoch, i });
              await save();
            }
            throw ctx.suspend.reason;
          }
          if (this.failAt?.iteration === ni) throw new Error(this.failAt.message);
          state.iterations++;
          trained++;
          ctx.onProgress({
            epoch,
            epochs,
            iteration: ni + 1,
            iterations,
            lossItems: [1 / (ni + 1), 2 / (ni + 1), 3 / (ni + 1)],
            lr: [0.01, 0.01, 0.01],
            imagesPerSecond: 10,
          });
        }
        Object.assign(state, { epoch: epoch + 1, i: 0 });
        await save();
      }
      return { resultVersion: 2, activated: true, metrics: { map50_95: state.iterations / 100 } };
    } finally {
      this.active.set(job.adapter, (this.active.get(job.adapter) ?? 1) - 1);
    }
  }

  /** A hold ends when released, or when the run is aborted or suspended. */
  private async pauseIfHeld(jobId: string, iteration: number, ctx: TrainerContext): Promise<void> {
    const hold = this.holds.find((h) =>
      h.iteration === iteration && (h.jobId === undefined || h.jobId === jobId)
    );
    if (!hold) return;
    this.holds = this.holds.filter((h) => h !== hold);
    hold.reached.resolve();
    const signals = [ctx.signal, ...(ctx.suspend ? [ctx.suspend] : [])];
    if (signals.some((s) => s.aborted)) return;
    const stopped = signals.map((s) =>
      new Promise<void>((resolve) => s.addEventListener("abort", () => resolve(), { once: true }))
    );
    await Promise.race([hold.release.promise, ...stopped]);
  }
}

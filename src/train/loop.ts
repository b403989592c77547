/**
 * train.py's batch loop (docs/training.md §3.4) over a WGSL training step: per iteration, one command encoder
 * holds the epoch-start zero_grad, forward + loss + backward (gradients added into the flat grads buffer)
 * and, on stepping iterations, clip + optimizer step + zero_grad + EMA; ONE submit, then the loss items (and
 * the grad norm the trace wants) are the only readback. The next batch is prepared on the host while the GPU
 * runs the step. Between iterations the loop checks for cancellation and yields to the event loop, so a
 * server training in-process keeps answering requests.
 *
 * @example
 * ```ts
 * const result = await trainLoop({
 *   step: program, optimizer, epochs: 5, batches: (e) => loader.epoch(e),
 *   onIteration: ({ line }) => trace.write(line),
 * });
 * ```
 * @module
 */
import type { OptimizerStepper } from "../optim/stepper.ts";
import { type TraceLine, traceLine } from "../optim/trace.ts";
import type { Batch, EpochCursor } from "./data/loader.ts";
import type { LossItems } from "./loss.ts";

/** What the loop drives (TrainProgram, in either mode). */
export interface StepProgram {
  readonly device: GPUDevice;
  /** Queues this batch's uploads ahead of the next submit. */
  load(batch: Batch): void;
  /** Records forward + loss + backward (gradients added into the flat grads) and the loss-items copy. */
  encodeStep(encoder: GPUCommandEncoder): void;
  /** The loss items of the last submitted step. */
  readItems(): Promise<LossItems>;
}

export interface IterationReport {
  line: TraceLine;
  /** images in this batch */
  images: number;
  /** iterations per epoch */
  nb: number;
  /** seconds from submit-ready inputs to the items being read (the GPU step) */
  stepSeconds: number;
  /** seconds of the whole iteration, data loading included */
  seconds: number;
}

/**
 * A point between two iterations, where a run can stop and resume: `iteration` batches of `epoch` trained (0 at
 * an epoch start; nb when the epoch's batches are done and its end is not yet applied), and where the epoch's
 * batch stream continues (null at an epoch start).
 */
export interface LoopPosition {
  epoch: number;
  iteration: number;
  cursor: EpochCursor | null;
}

/** The start of epoch `epoch` (what an epoch-end checkpoint resumes at). */
export const epochStart = (epoch: number): LoopPosition => ({ epoch, iteration: 0, cursor: null });

export interface LoopOptions {
  step: StepProgram;
  optimizer: OptimizerStepper;
  /** The batches of an epoch, in train.py's order (BatchLoader.epoch), from `from` when given. */
  batches(epoch: number, from?: EpochCursor): AsyncIterable<Batch>;
  epochs: number;
  /**
   * Where a resumed run continues (default: the start). What comes before is replayed (schedule and step
   * counts), not trained; the GPU state must be the checkpoint's.
   */
  start?: LoopPosition;
  /** Aborting stops the loop between iterations; it rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Aborting stops the loop after the iteration in flight, once `onSuspend` has saved where it stopped; it then
   * rejects with the signal's reason. Aborted before this run trained anything, it stops at once (there is
   * nothing new to save).
   */
  suspend?: AbortSignal;
  /** Saves the state at `position` (the GPU state right after the iteration before it). */
  onSuspend?(position: LoopPosition): Promise<void>;
  onIteration?(report: IterationReport): void;
  /** After each epoch's scheduler step (a checkpoint here resumes at epoch + 1). */
  onEpochEnd?(epoch: number): Promise<void>;
}

export interface LoopResult {
  iterations: number;
  images: number;
  /** wall seconds of the trained iterations, data loading included */
  seconds: number;
  /** seconds spent in GPU steps (submit to readback) */
  stepSeconds: number;
}

export async function trainLoop(o: LoopOptions): Promise<LoopResult> {
  const device = o.step.device;
  const nb = o.optimizer.settings.nb;
  const start = o.start ?? epochStart(0);
  // A resumed run's schedule and step counters are replayed; its GPU state comes from the checkpoint.
  o.optimizer.replay(start.epoch, start.iteration);
  const result: LoopResult = { iterations: 0, images: 0, seconds: 0, stepSeconds: 0 };
  const checkedSizes = new Set<number>();
  for (let epoch = start.epoch; epoch < o.epochs; epoch++) {
    const resumed = epoch === start.epoch && start.iteration > 0;
    let i = resumed ? start.iteration : 0;
    let t0 = performance.now();
    const batches = resumed ? o.batches(epoch, start.cursor ?? undefined) : o.batches(epoch);
    for await (const batch of prefetch(batches)) {
      o.signal?.throwIfAborted();
      if (o.suspend?.aborted && result.iterations === 0) throw o.suspend.reason;
      if (i >= nb) throw new Error(`trainLoop: epoch ${epoch} yielded more than nb = ${nb} batches`);
      const tStep = performance.now();
      // The first iteration of each batch size (a short last batch may run on a program of its own, short_batch.ts)
      // is checked for GPU errors: an invalid step would otherwise train silently on zeros.
      const checked = !checkedSizes.has(batch.size);
      if (checked) {
        checkedSizes.add(batch.size);
        device.pushErrorScope("validation");
      }
      o.step.load(batch);
      const encoder = device.createCommandEncoder({ label: `train ni ${epoch * nb + i}` });
      const plan = o.optimizer.begin(encoder, epoch, i);
      o.step.encodeStep(encoder);
      o.optimizer.finish(encoder, plan);
      device.queue.submit([encoder.finish()]);
      const error = checked ? await device.popErrorScope() : null;
      if (error) throw new Error(`trainLoop: the GPU rejected the training step: ${error.message}`);
      // Both readbacks of a stepping iteration (the grad norm carries amp's overflow flag) wait on the same
      // submit: mapping them together costs one sync.
      const [items, opt] = await Promise.all([o.step.readItems(), o.optimizer.afterSubmit(plan)]);
      const line = traceLine(
        plan,
        items.loss,
        [items.box, items.obj, items.cls],
        opt.gradNorm,
        opt.lossScale,
      );
      const now = performance.now();
      const report = {
        line,
        images: batch.size,
        nb,
        stepSeconds: (now - tStep) / 1000,
        seconds: (now - t0) / 1000,
      };
      result.iterations++;
      result.images += batch.size;
      result.seconds += report.seconds;
      result.stepSeconds += report.stepSeconds;
      o.onIteration?.(report);
      i++;
      if (o.suspend?.aborted) {
        await o.onSuspend?.({ epoch, iteration: i, cursor: batch.next });
        throw o.suspend.reason;
      }
      await yieldToEventLoop();
      t0 = performance.now();
    }
    if (i !== nb) throw new Error(`trainLoop: epoch ${epoch} yielded ${i} batches, expected nb = ${nb}`);
    o.signal?.throwIfAborted();
    o.optimizer.endEpoch(epoch);
    await o.onEpochEnd?.(epoch);
  }
  return result;
}

/** A macrotask turn: lets timers and I/O (HTTP requests) run between training iterations. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Yields `source`'s items while the next one is already being prepared, so the host's batch preparation
 * (letterbox, augmentation) overlaps the GPU step instead of adding to it.
 */
export async function* prefetch<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  try {
    let next = it.next();
    while (true) {
      const r = await next;
      if (r.done) return;
      next = it.next();
      // Rethrown when awaited above; meanwhile this keeps a failing batch from counting as an unhandled rejection.
      next.catch(() => {});
      yield r.value;
    }
  } finally {
    await it.return?.();
  }
}

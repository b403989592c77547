/**
 * Where a whole fine-tune's wall time goes (issue 18, time to an adapted model): each stage of runFinetune in
 * seconds, so the summary line and the `time_to_adapt` bench show whether the step, the cache, evaluation or
 * start-up is what to make faster.
 * @module
 */

/** Seconds of each stage of one fine-tune run, in the order they run. */
export interface StageSeconds {
  /** reading and checking the dataset (every image decoded once, every label parsed) */
  dataset: number;
  /** planning the training program: graph, memory, pipelines (shader compiles) */
  program: number;
  /** filling the frozen-feature cache (0 without it) */
  cache: number;
  /** evaluating the base model on the held-out images (0 without any) */
  eval_base: number;
  /** the training loop: every trained iteration, data loading and checkpoints included */
  train: number;
  /** the part of `train` not spent in GPU steps (batches the prefetch did not hide, trace, checkpoints) */
  train_host: number;
  /** reading back the weights and writing last.onnx and ema.onnx */
  write: number;
  /** evaluating the EMA model on the held-out images (0 without any) */
  eval_result: number;
}

/** Measures consecutive stages: each `lap()` returns the seconds since the previous one (or since creation). */
export class StageClock {
  #last = performance.now();

  lap(): number {
    const now = performance.now();
    const seconds = (now - this.#last) / 1000;
    this.#last = now;
    return seconds;
  }
}

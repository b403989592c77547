/**
 * An epoch's short last batch at its own size (issue 18, time to an adapted model). train.py's last batch of an
 * epoch is smaller (no drop_last: 67 images in batches of 16 end each epoch with 3); a program planned for 16
 * runs it padded, 13 images of work that give nothing, in a fifth of that scenario's steps. SizedSteps runs full
 * batches on the main program and short ones on a program planned for their size that trains the same weights
 * (TrainProgram.createSharing), so every step does the work of its real images only.
 * @module
 */
import type { Batch } from "./data/loader.ts";
import type { StepProgram } from "./loop.ts";
import type { LossItems } from "./loss.ts";

/** A step program and the batch size it is planned for (TrainProgram). */
export interface SizedProgram extends StepProgram {
  readonly options: { readonly batch: number };
}

/** The size of an epoch's short last batch, or null when `images` fill every batch of `batchSize`. */
export function shortBatchSize(images: number, batchSize: number): number | null {
  return images % batchSize || null;
}

/** The loop's step: each batch on the program planned for its size (`short`'s, else `main`'s, padded). */
export class SizedSteps<P extends SizedProgram> implements StepProgram {
  #loaded: P;

  constructor(readonly main: P, readonly short?: P) {
    this.#loaded = main;
  }

  get device(): GPUDevice {
    return this.main.device;
  }

  load(batch: Batch): void {
    this.#loaded = batch.size === this.short?.options.batch ? this.short : this.main;
    this.#loaded.load(batch);
  }

  encodeStep(encoder: GPUCommandEncoder): void {
    this.#loaded.encodeStep(encoder);
  }

  readItems(): Promise<LossItems> {
    return this.#loaded.readItems();
  }
}

/**
 * The fine-tune trace: one JSON line per iteration with train.py's field names and group order (0 biases,
 * 1 weights, 2 norm weights), comparable line by line with shared/golden/finetune-sgd/trace.jsonl.
 */
import type { IterationPlan } from "./schedule.ts";

export interface TraceLine {
  ni: number;
  epoch: number;
  i: number;
  accumulate: number;
  stepped: boolean;
  lr: number[];
  momentum: number[];
  loss: number;
  /** (box, obj, cls) */
  loss_items: number[];
  /** Gradient L2 norm before clipping; null on iterations that only accumulate. */
  grad_norm: number | null;
  /** the GradScaler scale this iteration's loss was multiplied by (1 with amp off, as torch reports it) */
  loss_scale: number;
}

export function traceLine(
  plan: IterationPlan,
  loss: number,
  lossItems: readonly number[],
  gradNorm: number | null,
  lossScale: number,
): TraceLine {
  if (plan.stepped !== (gradNorm !== null)) {
    throw new Error(`traceLine: ni ${plan.ni} stepped=${plan.stepped} but grad_norm is ${gradNorm}`);
  }
  return {
    ni: plan.ni,
    epoch: plan.epoch,
    i: plan.i,
    accumulate: plan.accumulate,
    stepped: plan.stepped,
    lr: [...plan.lr],
    momentum: [...plan.momentum],
    loss,
    loss_items: [...lossItems],
    grad_norm: gradNorm,
    loss_scale: lossScale,
  };
}

/** Appends trace lines to a .jsonl file as they come, so a crashed run keeps its trace. */
export class TraceWriter {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();

  constructor(path: string | URL) {
    this.#file = Deno.openSync(path, { write: true, create: true, truncate: true });
  }

  write(line: TraceLine): void {
    let bytes = this.#encoder.encode(JSON.stringify(line) + "\n");
    while (bytes.length > 0) bytes = bytes.subarray(this.#file.writeSync(bytes));
  }

  close(): void {
    this.#file.close();
  }
}

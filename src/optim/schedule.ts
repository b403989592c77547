/**
 * train.py v7.0's host-side schedule (docs/training.md §3): nominal-batch accumulation, weight-decay scaling,
 * warmup of lr, momentum and accumulate, the per-epoch LambdaLR with its one-epoch lag, and the
 * optimizer-step condition. All arithmetic is float64 like Python's, with Python's half-to-even rounding
 * where train.py rounds.
 */
import type { OptimizerName } from "./groups.ts";

export interface Hyp {
  lr0: number;
  lrf: number;
  momentum: number;
  weight_decay: number;
  warmup_epochs: number;
  warmup_momentum: number;
  warmup_bias_lr: number;
}

export type Triple = [number, number, number];

/** Python's round() and numpy's np.round(): ties go to the even neighbour (JS Math.round goes up). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.interp for two points: exact endpoints, else slope * (x - x0) + y0 in float64, clamped outside. */
export function interp(x: number, xp: [number, number], fp: [number, number]): number {
  if (x <= xp[0]) return fp[0];
  if (x >= xp[1]) return fp[1];
  const slope = (fp[1] - fp[0]) / (xp[1] - xp[0]);
  return slope * (x - xp[0]) + fp[0];
}

/** accumulate = max(round(nbs / batch_size), 1). */
export function accumulate0(batchSize: number, nbs = 64): number {
  return Math.max(roundHalfEven(nbs / batchSize), 1);
}

/** weight_decay *= batch_size * accumulate / nbs, once, with the steady-state accumulate. */
export function scaledWeightDecay(weightDecay: number, batchSize: number, nbs = 64): number {
  return weightDecay * batchSize * accumulate0(batchSize, nbs) / nbs;
}

/** nb = len(train_loader); drop_last is False. */
export function batchesPerEpoch(images: number, batchSize: number): number {
  return Math.ceil(images / batchSize);
}

/** nw = max(round(warmup_epochs * nb), 100). */
export function warmupIterations(warmupEpochs: number, nb: number): number {
  return Math.max(roundHalfEven(warmupEpochs * nb), 100);
}

/** The LambdaLR factor lf(epoch): one_cycle cosine from 1 to lrf, or linear (1 - x/epochs)(1 - lrf) + lrf. */
export function lrLambda(cosLr: boolean, epochs: number, lrf: number): (x: number) => number {
  return cosLr
    ? (x) => ((1 - Math.cos(x * Math.PI / epochs)) / 2) * (lrf - 1) + 1
    : (x) => (1 - x / epochs) * (1.0 - lrf) + lrf;
}

/** Warmup accumulate: max(1, np.round(np.interp(ni, [0, nw], [1, nbs / batch_size]))). */
export function warmupAccumulate(ni: number, nw: number, batchSize: number, nbs = 64): number {
  return Math.max(1, roundHalfEven(interp(ni, [0, nw], [1, nbs / batchSize])));
}

export interface ScheduleOptions {
  optimizer: OptimizerName;
  hyp: Hyp;
  batchSize: number;
  /** Batches per epoch (nb). */
  nb: number;
  epochs: number;
  cosLr: boolean;
  nbs?: number;
}

/** What the trainer does in one iteration, and what the trace records for it. */
export interface IterationPlan {
  ni: number;
  epoch: number;
  i: number;
  accumulate: number;
  /** Whether this iteration ends with an optimizer step (clip, step, zero grads, EMA). */
  stepped: boolean;
  /** Zero the gradients before this batch's backward: train.py's optimizer.zero_grad() at each epoch start. */
  zeroGradFirst: boolean;
  lr: Triple;
  /** SGD's warmed-up momentum; Adam/AdamW's beta1, which warmup leaves alone (their groups have no 'momentum'). */
  momentum: Triple;
}

/**
 * The mutable schedule state train.py keeps in its optimizer groups, scheduler and loop variables. Call
 * iteration(epoch, i) for every batch in order and endEpoch() after each epoch's last batch.
 */
export class Schedule {
  readonly nbs: number;
  readonly nw: number;
  readonly accumulate0: number;
  /** The scaled weight decay of group 1 (the others have none). */
  readonly weightDecay: number;
  readonly lf: (x: number) => number;
  #lr: Triple;
  #momentum: Triple;
  #accumulate: number;
  #lastOptStep = -1;
  #epochsDone = 0;

  constructor(readonly options: ScheduleOptions) {
    const { hyp, batchSize } = options;
    this.nbs = options.nbs ?? 64;
    this.nw = warmupIterations(hyp.warmup_epochs, options.nb);
    this.accumulate0 = accumulate0(batchSize, this.nbs);
    this.weightDecay = scaledWeightDecay(hyp.weight_decay, batchSize, this.nbs);
    this.lf = lrLambda(options.cosLr, options.epochs, hyp.lrf);
    this.#accumulate = this.accumulate0;
    // LambdaLR's constructor steps once, writing lr0 * lf(0); train.py's last_epoch = -1 leaves it in place.
    const lr = hyp.lr0 * this.lf(0);
    this.#lr = [lr, lr, lr];
    const m = hyp.momentum;
    this.#momentum = [m, m, m];
  }

  iteration(epoch: number, i: number): IterationPlan {
    if (epoch !== this.#epochsDone) {
      throw new Error(`Schedule.iteration: epoch ${epoch} out of order (expected ${this.#epochsDone})`);
    }
    const { hyp, nb, batchSize, optimizer } = this.options;
    const ni = i + nb * epoch;
    if (ni <= this.nw) {
      const xi: [number, number] = [0, this.nw];
      this.#accumulate = warmupAccumulate(ni, this.nw, batchSize, this.nbs);
      const target = hyp.lr0 * this.lf(epoch);
      for (let j = 0; j < 3; j++) {
        this.#lr[j] = interp(ni, xi, [j === 0 ? hyp.warmup_bias_lr : 0.0, target]);
        if (optimizer === "SGD") this.#momentum[j] = interp(ni, xi, [hyp.warmup_momentum, hyp.momentum]);
      }
    }
    const stepped = ni - this.#lastOptStep >= this.#accumulate;
    if (stepped) this.#lastOptStep = ni;
    return {
      ni,
      epoch,
      i,
      accumulate: this.#accumulate,
      stepped,
      zeroGradFirst: i === 0,
      lr: [...this.#lr],
      momentum: [...this.#momentum],
    };
  }

  /** scheduler.step() after the epoch's batch loop: the next epoch trains with lr0 * lf(epoch). */
  endEpoch(epoch: number): void {
    if (epoch !== this.#epochsDone) {
      throw new Error(`Schedule.endEpoch: epoch ${epoch} out of order (expected ${this.#epochsDone})`);
    }
    const lr = this.options.hyp.lr0 * this.lf(epoch);
    this.#lr = [lr, lr, lr];
    this.#epochsDone++;
  }
}

/**
 * Serving comes first while training: detect latencies (lease wait + inference + postprocess, not the upload)
 * over the last few seconds are kept, and while their p95 is over the budget a shared flag tells the training
 * worker to wait between steps (trainer_worker.ts blocks on it with Atomics.wait), so the GPU/CPU goes to
 * detect until it recovers. Too few recent samples (no traffic) never pause training.
 */

import { Gauge, ReadCounter, type Registry } from "./metrics.ts";

/** Seconds of detect latencies the p95 is taken over. */
export const SERVE_BUDGET_WINDOW_MS = 5_000;
/** Fewer detects than this in the window say too little to pause training on. */
export const SERVE_BUDGET_MIN_SAMPLES = 10;
/** How often the flag is re-evaluated, so a pause ends once old slow samples leave the window. */
const CHECK_MS = 250;
const P95 = 0.95;

export class ServeBudget {
  /** 1 while the trainer must wait; shared with the training worker. */
  readonly flag = new Int32Array(new SharedArrayBuffer(4));
  /** Times the trainer was told to pause, for /metrics. */
  pauses = 0;
  private samples: { at: number; ms: number }[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly budgetMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records one detect's latency and re-evaluates. */
  observe(ms: number): void {
    this.samples.push({ at: this.now(), ms });
    this.update();
  }

  get paused(): boolean {
    return Atomics.load(this.flag, 0) === 1;
  }

  /** p95 of the latencies in the window, or null with too few of them. */
  p95(): number | null {
    const since = this.now() - SERVE_BUDGET_WINDOW_MS;
    this.samples = this.samples.filter((s) => s.at >= since);
    if (this.samples.length < SERVE_BUDGET_MIN_SAMPLES) return null;
    const sorted = this.samples.map((s) => s.ms).sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(P95 * sorted.length) - 1)];
  }

  update(): void {
    const p95 = this.p95();
    const pause = p95 !== null && p95 > this.budgetMs;
    if (pause === this.paused) return;
    if (pause) this.pauses++;
    Atomics.store(this.flag, 0, pause ? 1 : 0);
    if (!pause) Atomics.notify(this.flag, 0);
  }

  /** Re-evaluates on a timer until stop(), so a pause ends without new traffic. */
  start(): void {
    this.timer ??= setInterval(() => this.update(), CHECK_MS);
    Deno.unrefTimer(this.timer);
  }

  /** Stops the timer and releases a waiting trainer. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    Atomics.store(this.flag, 0, 0);
    Atomics.notify(this.flag, 0);
  }
}

/** /metrics: whether training is paused for serving now, and how many times it was. */
export function addServeBudgetMetrics(registry: Registry, budget: ServeBudget): void {
  registry.add(
    new Gauge(
      "kestrel_trainer_paused",
      "1 while training waits for detect to get back under --serve-budget-ms",
      () => [
        [{}, budget.paused ? 1 : 0],
      ],
    ),
  );
  registry.add(
    new ReadCounter(
      "kestrel_trainer_pauses_total",
      "Times training paused for detect",
      () => [[{}, budget.pauses]],
    ),
  );
}

/**
 * Capture: detect routes offer each frame they served; the model's policy decides at once (a few comparisons)
 * whether to keep it, and kept frames go through a bounded queue to the store, so the answer is never delayed.
 * Counters for /metrics say what happened to offered frames that were meant to be kept.
 */
import { join } from "node:path";
import { readImageHeader } from "../image/header.ts";
import { PolicyBook } from "./policies.ts";
import { keeps } from "./policy.ts";
import { BoundedQueue } from "./queue.ts";
import { RegressionSets } from "./regression_set.ts";
import { CaptureStore } from "./store.ts";
import type { CapturePrediction, NewCapture } from "./types.ts";

/** Frames waiting for the disk before more are dropped: a few seconds of a busy camera. */
export const CAPTURE_QUEUE_CAPACITY = 64;
const HOUR_MS = 3_600_000;

/** A frame as a route offers it; the predictions may be computed only when a policy needs them. */
export interface CaptureOffer extends Omit<NewCapture, "predictions" | "format"> {
  predictions: CapturePrediction[] | (() => CapturePrediction[]);
}

/** Why a frame the policy kept was not stored. */
export type DropReason = "queue_full" | "rate_limit" | "over_budget" | "write_failed";

export class CaptureService {
  /** Frames stored, captures evicted for room, frames dropped by reason: read by /metrics. */
  readonly counts = {
    stored: 0,
    evicted: 0,
    dropped: { queue_full: 0, rate_limit: 0, over_budget: 0, write_failed: 0 } as Record<DropReason, number>,
  };
  private readonly queue: BoundedQueue<Omit<NewCapture, "format">>;
  /** Per model: the start of the current hour window and the frames kept in it. */
  private readonly hourly = new Map<string, { start: number; count: number }>();

  private constructor(
    readonly policies: PolicyBook,
    readonly store: CaptureStore,
    /** Each model's regression set, for the forgetting guard. */
    readonly regression: RegressionSets,
    private readonly log: (message: string) => void,
    capacity: number,
  ) {
    this.queue = new BoundedQueue(capacity, (c) => this.write(c), (err) => {
      this.counts.dropped.write_failed++;
      this.log(`capture write failed: ${(err as Error).message}`);
    });
  }

  /** Opens the policies and captures under `<dataDir>/captures`. */
  static async open(
    dataDir: string,
    log: (message: string) => void,
    capacity = CAPTURE_QUEUE_CAPACITY,
  ): Promise<CaptureService> {
    const root = join(dataDir, "captures");
    const policies = await PolicyBook.open(join(root, "policies"), log);
    const store = await CaptureStore.open(join(root, "frames"), log);
    const regression = await RegressionSets.open(join(root, "regression"));
    return new CaptureService(policies, store, regression, log, capacity);
  }

  get queueDepth(): number {
    return this.queue.depth;
  }

  /** Decides on `offer` and queues it when kept; returns at once. */
  offer(offer: CaptureOffer): void {
    const policy = this.policies.get(offer.model);
    if (policy.mode === "off") return;
    const predictions = typeof offer.predictions === "function" ? offer.predictions() : offer.predictions;
    if (!keeps(policy, predictions, Math.random())) return;
    if (this.queue.full) {
      this.counts.dropped.queue_full++;
      return;
    }
    if (!this.withinHourlyLimit(offer.model, policy.max_per_hour, offer.time.getTime())) {
      this.counts.dropped.rate_limit++;
      return;
    }
    this.queue.push({ ...offer, predictions });
  }

  private withinHourlyLimit(model: string, max: number, now: number): boolean {
    let window = this.hourly.get(model);
    if (!window || now - window.start >= HOUR_MS) this.hourly.set(model, window = { start: now, count: 0 });
    if (window.count >= max) return false;
    window.count++;
    return true;
  }

  private async write(frame: Omit<NewCapture, "format">) {
    // The detect route decoded these bytes, so the header reads; the format names the file in exports.
    const capture = { ...frame, format: readImageHeader(frame.image).format };
    // The budget in force when the frame is written, so a lowered max_bytes applies to the next frame.
    const outcome = await this.store.add(capture, this.policies.get(capture.model).max_bytes);
    if (outcome.stored) {
      this.counts.stored++;
      this.counts.evicted += outcome.evicted;
    } else {
      this.counts.dropped.over_budget++;
    }
  }

  /** Resolves once every queued frame is written (tests; shutdown). */
  idle(): Promise<void> {
    return this.queue.idle();
  }
}

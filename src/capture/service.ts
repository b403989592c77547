/**
 * Capture: detect routes offer each frame they served; the model's policy decides at once (a few comparisons)
 * whether to keep it, and kept frames go through a bounded queue to the store, so the answer is never delayed.
 * Counters for /metrics say what happened to offered frames that were meant to be kept.
 */
import { join } from "node:path";
import { readImageHeader } from "../image/header.ts";
import { PolicyBook } from "./policies.ts";
import { type BoxedDetection, disagree, keeps } from "./policy.ts";
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

/**
 * The model's previous version's detections on a frame the active version served (null when the model has no
 * previous version): `uncertain` also keeps frames the two versions disagree on.
 */
export type SecondOpinion = (frame: { model: string; version: number; image: Uint8Array }) => Promise<
  BoxedDetection[] | null
>;

/** A queued frame; `check`: kept only if the previous version disagrees (asked in the queue's worker). */
interface QueuedFrame {
  frame: Omit<NewCapture, "format">;
  check: boolean;
}

/** Why a frame the policy kept (or sent to the previous version) was not stored. */
export type DropReason = "queue_full" | "rate_limit" | "over_budget" | "write_failed";

export class CaptureService {
  /** Frames stored, captures evicted for room, frames dropped by reason: read by /metrics. */
  readonly counts = {
    stored: 0,
    evicted: 0,
    dropped: { queue_full: 0, rate_limit: 0, over_budget: 0, write_failed: 0 } as Record<DropReason, number>,
    /** `uncertain` frames outside the band not compared with the previous version: the queue was half full. */
    unchecked: 0,
  };
  private readonly queue: BoundedQueue<QueuedFrame>;
  private secondOpinion: SecondOpinion | null = null;
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
    this.queue = new BoundedQueue(capacity, (q) => this.handle(q), (err) => {
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

  /**
   * Lets `uncertain` ask the previous version about frames outside the band. It runs in the queue's worker,
   * after the answer, so it costs the detect path nothing; with the queue full such frames are dropped.
   */
  useSecondOpinion(opinion: SecondOpinion): void {
    this.secondOpinion = opinion;
  }

  /** Decides on `offer` and queues it when kept (or when the previous version must be asked); returns at once. */
  offer(offer: CaptureOffer): void {
    const policy = this.policies.get(offer.model);
    if (policy.mode === "off") return;
    const predictions = typeof offer.predictions === "function" ? offer.predictions() : offer.predictions;
    const kept = keeps(policy, predictions, Math.random());
    const check = !kept && policy.mode === "uncertain" && this.secondOpinion !== null;
    if (!kept && !check) return;
    // Checks take at most half the queue, so a busy camera's comparisons never crowd out frames kept outright.
    if (check && this.queue.depth >= this.queue.capacity / 2) {
      this.counts.unchecked++;
      return;
    }
    if (this.queue.full) {
      this.counts.dropped.queue_full++;
      return;
    }
    // A frame still to be checked counts against the hour only once the previous version disagrees.
    if (kept && !this.withinHourlyLimit(offer.model, policy.max_per_hour, offer.time.getTime())) {
      this.counts.dropped.rate_limit++;
      return;
    }
    this.queue.push({ frame: { ...offer, predictions }, check });
  }

  private async handle({ frame, check }: QueuedFrame) {
    if (check) {
      const other = await this.secondOpinion!(frame);
      const policy = this.policies.get(frame.model);
      if (!other || !disagree(frame.predictions, other, policy.classes)) return;
      if (!this.withinHourlyLimit(frame.model, policy.max_per_hour, frame.time.getTime())) {
        this.counts.dropped.rate_limit++;
        return;
      }
    }
    await this.write(frame);
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

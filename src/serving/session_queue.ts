/** Requests one model version may hold waiting (admitted, not yet running on its session) by default. */
export const DEFAULT_MAX_QUEUE = 16;

/**
 * A request refused because its model's queue is full: an edge camera would rather drop a frame than get its
 * answer late, so it is refused at once instead of waiting without bound. The message is safe for clients.
 */
export class ModelOverloadedError extends Error {
  constructor(readonly model: string, readonly maxQueue: number) {
    super(`Model '${model}' has ${maxQueue} requests queued already (--max-queue); retry shortly`);
    this.name = "ModelOverloadedError";
  }
}

/** One admitted request: runs its inference when a slot is free, or gives its place back unused. */
export interface Admission {
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Leaves the queue without running (decode failed, bad input); idempotent, and a no-op after `run`. */
  withdraw(): void;
}

/**
 * The line in front of one session: at most `slots` runs at once (1 where the engine rejects overlapping runs),
 * at most `maxQueue` requests admitted and not yet running. A request counts from admission, before its image
 * is decoded: shedding then costs no decode, and the wait a request can meet is bounded by the queue's length.
 * Slots are handed out first come, first served.
 */
export class SessionQueue {
  private running = 0;
  private admitted = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly model: string, readonly slots: number, readonly maxQueue: number) {}

  /** Requests admitted and not yet running (preparing their input or waiting for a slot). */
  get queued(): number {
    return this.admitted;
  }

  /** Admits one request, or throws {@link ModelOverloadedError} when `maxQueue` are already queued. */
  admit(): Admission {
    if (this.admitted >= this.maxQueue) throw new ModelOverloadedError(this.model, this.maxQueue);
    this.admitted++;
    let queued = true;
    const leave = () => {
      if (!queued) return false;
      queued = false;
      this.admitted--;
      return true;
    };
    return {
      run: async <T>(work: () => Promise<T>): Promise<T> => {
        if (!queued) throw new Error("an admission runs once");
        await this.slot();
        leave();
        try {
          return await work();
        } finally {
          this.free();
        }
      },
      withdraw: () => void leave(),
    };
  }

  /** Runs `work` outside the admission limit (the warm-up run of a version not yet served). */
  async runNow<T>(work: () => Promise<T>): Promise<T> {
    await this.slot();
    try {
      return await work();
    } finally {
      this.free();
    }
  }

  private slot(): Promise<void> {
    if (this.running < this.slots) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Hands a finished run's slot to the first waiter, else frees it. */
  private free(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

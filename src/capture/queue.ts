/**
 * A bounded queue drained by one worker, so detect routes hand a frame over and answer at once: the disk write
 * happens after the response. When the queue is full the frame is dropped (and counted by the caller) rather
 * than letting a slow disk hold memory or the detect path.
 */
export class BoundedQueue<T> {
  private readonly items: T[] = [];
  private draining: Promise<void> | null = null;

  constructor(
    readonly capacity: number,
    private readonly work: (item: T) => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  get depth(): number {
    return this.items.length;
  }

  get full(): boolean {
    return this.items.length >= this.capacity;
  }

  /** Queues `item`; false (nothing queued) when full. */
  push(item: T): boolean {
    if (this.full) return false;
    this.items.push(item);
    this.draining ??= this.drain();
    return true;
  }

  private async drain() {
    // Yield first: the route that pushed answers before any work starts.
    await new Promise((resolve) => setTimeout(resolve, 0));
    for (let item = this.items.shift(); item !== undefined; item = this.items.shift()) {
      try {
        await this.work(item);
      } catch (err) {
        this.onError(err);
      }
    }
    this.draining = null;
  }

  /** Resolves once everything queued so far is done. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }
}

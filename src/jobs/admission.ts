/**
 * The job service's door: it refuses a new upload or job while the service is closing, while the queue is full
 * (jobs waiting plus submissions being stored), while the data dir's filesystem is below its free-space floor,
 * and an upload while every upload slot is taken (limits.ts has the numbers and why).
 * @module
 */
import { JobRequestError } from "./errors.ts";
import {
  freeBytes,
  type JobLimits,
  QUEUE_RETRY_AFTER_SECONDS,
  UPLOAD_RETRY_AFTER_SECONDS,
} from "./limits.ts";

/** One of the upload slots {@link JobAdmission.reserveUpload} hands out. */
export interface UploadSlot {
  /** Give the slot back (once the upload was submitted or refused); later calls do nothing. */
  release(): void;
}

export class JobAdmission {
  #closed = false;
  #uploads = 0;
  /** submissions admitted but not yet stored: they count against the queue limit */
  #submitting = 0;

  /**
   * `root`: a directory on the data dir's filesystem (its free space is checked); `queued`: how many stored
   * jobs wait to run.
   */
  constructor(
    readonly limits: JobLimits,
    private readonly root: string,
    private readonly queued: () => number,
  ) {}

  /** True once {@link close} was called: nothing new is admitted. */
  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#closed = true;
  }

  /**
   * Take an upload slot before reading an upload's body, so at most `maxConcurrentUploads` uploads are held
   * and unpacked at once. Throws what {@link admit} throws, and `busy` when every slot is taken.
   */
  async reserveUpload(): Promise<UploadSlot> {
    await this.check();
    if (this.#uploads >= this.limits.maxConcurrentUploads) {
      throw new JobRequestError(
        "busy",
        `${this.#uploads} dataset uploads are already being received (the limit); retry shortly`,
        UPLOAD_RETRY_AFTER_SECONDS,
      );
    }
    this.#uploads++;
    let held = true;
    return {
      release: () => {
        if (held) this.#uploads--;
        held = false;
      },
    };
  }

  /**
   * Runs `store` (storing a new job) once the job is admitted, counting it against the queue limit until it is
   * stored. Throws `unavailable` once closed, `busy` when `maxQueuedJobs` jobs already wait and
   * `insufficient_storage` when the filesystem has less than `minFreeBytes` free.
   */
  async admit<T>(store: () => Promise<T>): Promise<T> {
    await this.check();
    this.#submitting++;
    try {
      return await store();
    } finally {
      this.#submitting--;
    }
  }

  private async check(): Promise<void> {
    if (this.#closed) {
      throw new JobRequestError(
        "unavailable",
        "The job service is shutting down; submit the job again later",
      );
    }
    const waiting = this.queued() + this.#submitting;
    if (waiting >= this.limits.maxQueuedJobs) {
      throw new JobRequestError(
        "busy",
        `${waiting} jobs are already waiting (the limit is ${this.limits.maxQueuedJobs}); retry later`,
        QUEUE_RETRY_AFTER_SECONDS,
      );
    }
    const free = await freeBytes(this.root);
    if (free < this.limits.minFreeBytes) {
      throw new JobRequestError(
        "insufficient_storage",
        `The data dir has ${free} bytes free, under the ${this.limits.minFreeBytes} a new job needs`,
      );
    }
  }
}

/**
 * Job change events for server-sent events: a hub the service publishes to, and a per-subscriber stream that
 * starts with a snapshot and then follows changes. A slow reader never makes the trainer wait: consecutive
 * progress events of one job collapse into the newest, status changes are always kept.
 * @module
 */
import { type Job, TERMINAL_STATUSES } from "./types.ts";

/** `status`: the job was created or changed status; `progress`: training reported progress. */
export interface JobEvent {
  type: "status" | "progress";
  job: Job;
}

export type JobEventListener = (event: JobEvent) => void;

export class JobEventHub {
  private readonly listeners = new Set<JobEventListener>();

  publish(event: JobEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: JobEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export interface StreamOptions {
  /** only this job's events; the stream then ends after the job's terminal status */
  jobId?: string;
  /** events to deliver first (the current state) */
  initial: JobEvent[];
  /** ends the stream (client went away) */
  signal?: AbortSignal;
}

/** Follow the hub as an async iterable (for `for await` in an SSE handler). */
export async function* streamEvents(hub: JobEventHub, options: StreamOptions): AsyncGenerator<JobEvent> {
  const { jobId, signal } = options;
  const buffer: JobEvent[] = [];
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };
  const unsubscribe = hub.subscribe((event) => {
    if (jobId !== undefined && event.job.id !== jobId) return;
    const last = buffer[buffer.length - 1];
    if (event.type === "progress" && last?.type === "progress" && last.job.id === event.job.id) {
      buffer[buffer.length - 1] = event;
    } else buffer.push(event);
    notify();
  });
  signal?.addEventListener("abort", notify, { once: true });
  buffer.unshift(...options.initial);
  try {
    while (!signal?.aborted) {
      const event = buffer.shift();
      if (!event) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      yield event;
      if (jobId !== undefined && TERMINAL_STATUSES.has(event.job.status)) return;
    }
  } finally {
    unsubscribe();
    signal?.removeEventListener("abort", notify);
  }
}

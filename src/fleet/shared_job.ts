/**
 * A fleet job's shared state (job_state.ts) as the node running it writes it: each write puts the newest record,
 * in order, so a stale one never lands last; {@link SharedJob.close} ends the writes with a last one and tells
 * when it landed, so the node hands a job back only after its last word on it (a checkpoint pointer, the state
 * the next node finds) reached the KV.
 * @module
 */
import type { TrainerProgress } from "../jobs/types.ts";
import { type FleetJob, FleetJobSchema } from "./job_state.ts";
import type { FleetLink } from "./link.ts";

export class SharedJob {
  private writes: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** `state`: the record this node just wrote itself (taking the job), else the first {@link read} sets it. */
  constructor(
    private readonly link: FleetLink,
    private readonly id: string,
    private state: FleetJob | null = null,
  ) {}

  async read(): Promise<FleetJob | null> {
    const entry = await this.link.jobs.get(this.id);
    if (!entry || entry.operation !== "PUT") return null;
    const state = FleetJobSchema.parse(entry.json());
    // A cancel from the submitter is the only write another node makes while this one runs it.
    if (this.state && state.status === "cancelled") this.state.status = "cancelled";
    this.state ??= state;
    return state;
  }

  progress(update: TrainerProgress): void {
    if (!this.state) return;
    const defined = Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined));
    this.state = { ...this.state, progress: { ...this.state.progress, ...defined } };
  }

  write(change: Partial<FleetJob>): Promise<unknown> {
    if (!this.state) return Promise.reject(new Error(`job ${this.id} has no shared state`));
    if (this.closed) return Promise.reject(new Error(`job ${this.id} is no longer this node's`));
    this.state = { ...this.state, ...change };
    const record = JSON.stringify(this.state);
    this.writes = this.writes.catch(() => {}).then(() => this.link.jobs.put(this.id, record));
    return this.writes;
  }

  /**
   * The job is handed back: `last` is this node's last write, after every one made before; later writes are
   * refused (a heartbeat already under way must not put this node's record over the next node's). Resolves once
   * `last` landed; rejects when it did not.
   */
  close(last: Partial<FleetJob>): Promise<unknown> {
    const written = this.write(last);
    this.closed = true;
    return written;
  }
}

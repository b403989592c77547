/**
 * A fleet job's shared state (job_state.ts) as the node running it writes it: each write puts the newest record,
 * in order, so a stale one never lands last; {@link SharedJob.settled} tells when every write went out, so the
 * node hands a job back only after its last word on it (a checkpoint pointer, a heartbeat) reached the KV.
 * @module
 */
import type { TrainerProgress } from "../jobs/types.ts";
import { type FleetJob, FleetJobSchema } from "./job_state.ts";
import type { FleetLink } from "./link.ts";

export class SharedJob {
  private state: FleetJob | null = null;
  private writes: Promise<unknown> = Promise.resolve();

  constructor(private readonly link: FleetLink, private readonly id: string) {}

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
    this.state = { ...this.state, ...change };
    const record = JSON.stringify(this.state);
    this.writes = this.writes.catch(() => {}).then(() => this.link.jobs.put(this.id, record));
    return this.writes;
  }

  /** Resolves once every write so far landed or failed. */
  settled(): Promise<void> {
    return this.writes.then(() => {}, () => {});
  }
}

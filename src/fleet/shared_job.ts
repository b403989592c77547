/**
 * A fleet job's shared state (job_state.ts) as the node running it writes it: each write puts the newest record,
 * in order, so a stale one never lands last; {@link SharedJob.close} ends the writes with a last one and tells
 * when it landed, so the node hands a job back only after its last word on it (a checkpoint pointer, the state
 * the next node finds) reached the KV.
 *
 * Each write is a compare-and-set on the revision of this node's previous one: when anyone else wrote the job
 * meanwhile (the submitter cancelled it, or a node took it over from this one, taken for dead) the write fails
 * and every later one is refused, so this node never puts its record over theirs.
 * @module
 */
import type { TrainerProgress } from "../jobs/types.ts";
import { isCasConflict } from "./fleet_store.ts";
import { type FleetJob, FleetJobSchema } from "./job_state.ts";
import type { FleetLink } from "./link.ts";

export class SharedJob {
  private writes: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** A write found the entry written by someone else: the job is no longer this node's. */
  private lost = false;
  private state: FleetJob | null = null;
  /** The revision this node's next write expects: of its last write, or of its first read. */
  private revision = 0;
  /** The run that writes: its node and attempt, as first read or taken. */
  private run: Pick<FleetJob, "node" | "attempts"> | null = null;

  /** `taken`: the record this node just wrote (taking the job), else the first {@link read} sets it. */
  constructor(
    private readonly link: FleetLink,
    private readonly id: string,
    taken: { state: FleetJob; revision: number } | null = null,
  ) {
    if (taken) this.begin(taken.state, taken.revision);
  }

  private begin(state: FleetJob, revision: number): void {
    [this.state, this.revision, this.run] = [state, revision, { node: state.node, attempts: state.attempts }];
  }

  async read(): Promise<FleetJob | null> {
    const entry = await this.link.jobs.get(this.id);
    if (!entry || entry.operation !== "PUT") return null;
    const state = FleetJobSchema.parse(entry.json());
    if (this.state && state.status === "cancelled") this.state.status = "cancelled";
    if (!this.state) this.begin(state, entry.revision);
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
    this.writes = this.writes.catch(() => {}).then(() => this.store(record));
    return this.writes;
  }

  private async store(record: string): Promise<void> {
    if (this.lost) throw this.notOurs();
    try {
      this.revision = await this.link.jobs.update(this.id, record, this.revision);
    } catch (err) {
      if (!isCasConflict(err)) throw err;
      // A write of this run whose answer was lost may have landed: the entry then still shows this run.
      const entry = await this.link.jobs.get(this.id);
      const now = entry?.operation === "PUT" ? FleetJobSchema.parse(entry.json()) : null;
      const run = this.run;
      if (entry && now?.status === "running" && now.node === run?.node && now.attempts === run?.attempts) {
        this.revision = await this.link.jobs.update(this.id, record, entry.revision);
        return;
      }
      this.lost = this.closed = true;
      throw this.notOurs();
    }
  }

  private notOurs(): Error {
    return new Error(`job ${this.id} is no longer this node's: it was cancelled or taken over meanwhile`);
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

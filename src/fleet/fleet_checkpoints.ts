/**
 * A fleet job's checkpoints, on the node running it: each goes to the fleet's object store under a name of its
 * own (its position, job_state.ts) and becomes the job's checkpoint only when the job's shared state names it.
 * An object is readable only once its last chunk and then its meta are stored (a cut-off upload stays invisible),
 * and the pointer is written after, so a node that takes the job over finds the previous checkpoint or the new
 * one, whole. A job handed back while its checkpoint uploads never gets its pointer written by this node.
 *
 * The checkpoint of a drain (the node stops; see Fleet.drain) that cannot be uploaded (NATS is down) is kept on
 * this node instead, and used when this node runs the job again and the fleet's own checkpoint is not as far.
 * @module
 */
import { FsCheckpoints } from "../jobs/checkpoint.ts";
import type { Checkpoint, CheckpointHooks } from "../jobs/types.ts";
import { checkpointObject } from "./job_state.ts";
import type { FleetLink } from "./link.ts";
import type { SharedJob } from "./shared_job.ts";

export interface FleetCheckpointsOptions {
  link: FleetLink;
  id: string;
  shared: SharedJob;
  /** Where this node keeps a drain's checkpoint it could not upload (survives the job's run here). */
  localDir: string;
  /** Aborted when this node drains: only then is a checkpoint that cannot be uploaded kept locally. */
  draining: AbortSignal;
  /** Whether the NATS connection is up now: a drain does not wait for an upload that cannot go out. */
  connected: () => boolean;
  log: (message: string) => void;
}

type Position = Pick<Checkpoint, "epoch" | "iteration">;

const isAhead = (a: Position, b: Position) =>
  a.epoch > b.epoch || (a.epoch === b.epoch && a.iteration > b.iteration);

export class FleetCheckpoints implements CheckpointHooks {
  private readonly local: FsCheckpoints;
  private handedBack = false;

  constructor(private readonly o: FleetCheckpointsOptions) {
    this.local = new FsCheckpoints(o.localDir);
  }

  /** The fleet's checkpoint, or the one this node kept when it is further along. */
  async load(): Promise<Checkpoint | null> {
    const fleet = await this.loadShared();
    const kept = await this.local.load().catch((err) => {
      this.o.log(`fleet: job ${this.o.id}: the checkpoint kept on this node is not used: ${err.message}`);
      return null;
    });
    if (kept && (!fleet || isAhead(kept, fleet))) {
      this.o.log(
        `fleet: job ${this.o.id}: resuming from the checkpoint kept on this node` +
          ` (epoch ${kept.epoch}, iteration ${kept.iteration})`,
      );
      return kept;
    }
    return fleet;
  }

  async save(checkpoint: Checkpoint): Promise<void> {
    const { link, id, shared } = this.o;
    const { epoch, iteration } = checkpoint;
    const name = checkpointObject(id, checkpoint);
    if (this.o.draining.aborted && !this.o.connected()) {
      return await this.keep(checkpoint, "NATS is not connected");
    }
    let previous;
    try {
      previous = (await shared.read())?.checkpoint;
      await link.jobData.putBlob({ name }, checkpoint.state);
    } catch (err) {
      // Outside a drain the run fails as before (the queue hands the job on); a drain keeps what it trained.
      if (!this.o.draining.aborted) throw err;
      return await this.keep(checkpoint, (err as Error).message);
    }
    if (this.handedBack) {
      // The node taking the job over may have read the pointer already: this object must stay unnamed.
      await link.jobData.delete(name).catch(() => {});
      throw new Error(
        `job ${id}: handed back before its checkpoint of epoch ${epoch}, iteration ${iteration} was uploaded`,
      );
    }
    // Written in the same turn as the check above, so handBack() either stops it or finds it queued.
    await shared.write({ checkpoint: { epoch, iteration, savedAt: new Date().toISOString() } });
    // Any checkpoint this node kept is behind the one the fleet has now: this run started from it or from one
    // further along.
    await Deno.remove(this.o.localDir, { recursive: true }).catch(() => {});
    if (previous && checkpointObject(id, previous) !== name) {
      await link.jobData.delete(checkpointObject(id, previous)).catch(() => {});
    }
  }

  /**
   * The job goes back to the queue: a save still uploading is given up (its pointer is never written), while a
   * pointer write already queued stays queued, so waiting for the shared state's writes then makes the pointer
   * the next node reads final.
   */
  handBack(): void {
    this.handedBack = true;
  }

  private async keep(checkpoint: Checkpoint, why: string): Promise<void> {
    await this.local.save(checkpoint);
    this.o.log(
      `fleet: job ${this.o.id}: the checkpoint of epoch ${checkpoint.epoch}, iteration ${checkpoint.iteration}` +
        ` is kept on this node, not in the fleet: ${why}`,
    );
  }

  private async loadShared(): Promise<Checkpoint | null> {
    const state = await this.o.shared.read();
    if (!state?.checkpoint) return null;
    const { epoch, iteration } = state.checkpoint;
    const bytes = await this.o.link.jobData.getBlob(checkpointObject(this.o.id, state.checkpoint));
    if (!bytes) {
      throw new Error(
        `job ${this.o.id}: the checkpoint of epoch ${epoch}, iteration ${iteration} is missing`,
      );
    }
    return { epoch, iteration, state: bytes };
  }
}

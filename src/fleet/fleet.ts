/**
 * A node's membership in a fleet (`--nats`): wraps the registry's local store so changes go through the fleet,
 * and once the server has loaded its models, connects in the background (serving never waits for NATS) and
 * keeps the registry in step with the fleet's KV. Without `--nats` none of this exists and a box runs alone.
 *
 * @example
 * ```ts
 * const fleet = new Fleet({ servers: "nats://127.0.0.1:4222", fleet: "kestrel", node: "a" }, log);
 * const registry = await openServingRegistry(config, pool, fleet.wrapStore(new FsStore(dataDir)));
 * // ... load the active models ...
 * fleet.start(registry);
 * ```
 * @module
 */
import { join } from "node:path";
import type { Trainer } from "../jobs/types.ts";
import type { Registry } from "../registry/registry.ts";
import type { Store } from "../registry/store.ts";
import { FleetStore } from "./fleet_store.ts";
import { FleetDispatchTrainer } from "./job_dispatch.ts";
import { runJobWorker } from "./job_worker.ts";
import { connectFleet, type FleetLink, type FleetLinkOptions } from "./link.ts";
import { RegistrySync } from "./registry_sync.ts";
import { RegistryView } from "./registry_view.ts";

/** Pause before reconnecting the registry watch after it failed (NATS up, but JetStream not ready yet). */
const REWATCH_DELAY_MS = 1000;

export interface FleetOptions extends FleetLinkOptions {
  /** Whether this node takes fine-tune jobs from the fleet's queue. */
  jobs: boolean;
  /** The node's data dir: fleet jobs unpack their datasets under `<dataDir>/fleet-jobs`. */
  dataDir: string;
  /** Aborted when the server shuts down (a job followed from here then stays the fleet's). */
  shutdown: AbortSignal;
}

export class Fleet {
  private readonly view = new RegistryView();
  private store: FleetStore | null = null;
  private sync: RegistrySync | null = null;
  private link: FleetLink | null = null;
  private readonly stopping = new AbortController();
  private running: Promise<void> = Promise.resolve();
  private worker: Promise<void> = Promise.resolve();
  private readonly linked = Promise.withResolvers<FleetLink>();
  private localTrainer: Trainer | null = null;

  constructor(readonly options: FleetOptions, private readonly log: (message: string) => void) {}

  /**
   * The trainer the job service runs jobs through on a fleet node: it hands each job to the fleet's queue and
   * follows it. `local` is this node's own trainer, which runs the jobs this node takes (with jobs on).
   */
  jobTrainer(local: Trainer): Trainer {
    this.localTrainer = local;
    return new FleetDispatchTrainer(() => this.linked.promise, this.options.shutdown);
  }

  /** The registry's store on this node: `local` keeps the copy it serves from. */
  wrapStore(local: Store): Store {
    this.store = new FleetStore(local, this.view);
    return this.store;
  }

  /** Join: from now on registry changes go through the fleet; connecting and following happen in the background. */
  start(registry: Registry): void {
    const store = this.store;
    if (!store) {
      throw new Error("Fleet.start before wrapStore: the registry must be opened on the fleet's store");
    }
    store.start();
    this.sync = new RegistrySync(registry, store, this.view, this.log);
    this.running = this.follow(store, this.sync);
  }

  /** Whether the NATS connection is up now (followed from the connection's status events). */
  connected = false;

  /** KV revisions the local registry is behind the newest one this node has seen. */
  get lag(): number {
    return this.sync ? Math.max(0, this.view.revision - this.sync.appliedRevision) : 0;
  }

  /** Resolves once every change seen so far is applied (tests). */
  settled(): Promise<unknown> {
    return this.sync?.settled() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    this.stopping.abort();
    await this.worker; // a running job is handed back to the queue first
    await this.link?.nc.close();
    await this.running;
    await this.sync?.settled();
  }

  /** Take jobs until closed; a failed pull (NATS down) is retried. */
  private async work(link: FleetLink, trainer: Trainer): Promise<void> {
    const stop = this.stopping.signal;
    const options = {
      node: this.options.node,
      trainer,
      workRoot: join(this.options.dataDir, "fleet-jobs"),
      log: this.log,
    };
    while (!stop.aborted && !link.nc.isClosed()) {
      try {
        await runJobWorker(link, options, stop);
      } catch (err) {
        if (!stop.aborted) this.log(`fleet: job queue: ${(err as Error).message}; pulling again`);
      }
      if (!stop.aborted) await new Promise((resolve) => setTimeout(resolve, REWATCH_DELAY_MS));
    }
  }

  private async follow(store: FleetStore, sync: RegistrySync): Promise<void> {
    const stop = this.stopping.signal;
    try {
      const stopped = new Promise<null>((resolve) => stop.addEventListener("abort", () => resolve(null)));
      const connecting = connectFleet(this.options);
      const link = await Promise.race([connecting, stopped]);
      // Closed before NATS answered: close the connection once it comes.
      if (link === null) return void connecting.then((l) => l.nc.close(), () => {});
      this.link = link;
    } catch (err) {
      if (!stop.aborted) this.log(`fleet: cannot join ${this.options.servers}: ${(err as Error).message}`);
      return;
    }
    store.connected(this.link);
    this.linked.resolve(this.link);
    this.connected = true;
    if (this.options.jobs && this.localTrainer) this.worker = this.work(this.link, this.localTrainer);
    void this.watchStatus(this.link);
    this.log(
      `fleet: node ${this.options.node} joined fleet ${this.options.fleet} at ${this.options.servers}`,
    );
    while (!stop.aborted && !this.link.nc.isClosed()) {
      try {
        await sync.run(this.link, stop);
      } catch (err) {
        if (!stop.aborted) {
          this.log(`fleet: registry watch stopped (${(err as Error).message}); watching again`);
        }
      }
      if (!stop.aborted) await new Promise((resolve) => setTimeout(resolve, REWATCH_DELAY_MS));
    }
  }

  private async watchStatus(link: FleetLink): Promise<void> {
    for await (const status of link.nc.status()) {
      if (status.type === "disconnect") this.connected = false;
      if (status.type === "reconnect") this.connected = true;
    }
    this.connected = false;
  }
}

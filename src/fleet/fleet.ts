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
import type { JobEvent } from "../jobs/events.ts";
import { type Job, TERMINAL_STATUSES, type Trainer } from "../jobs/types.ts";
import type { KV } from "@nats-io/kv";
import { RegistryError } from "../registry/errors.ts";
import type { Registry } from "../registry/registry.ts";
import type { VersionMeta } from "../registry/store.ts";
import type { Store } from "../registry/store.ts";
import type { CaptureStore } from "../capture/store.ts";
import { CaptureReplication } from "./capture_sync.ts";
import { fleetCall, FleetStore } from "./fleet_store.ts";
import { DetectWindow } from "./detect_window.ts";
import { FleetDispatchTrainer } from "./job_dispatch.ts";
import { asJobRecord, type FleetJob, FleetJobSchema } from "./job_state.ts";
import { runJobWorker } from "./job_worker.ts";
import { connectFleet, type FleetLink, type FleetLinkOptions } from "./link.ts";
import { type NodeInfo, openPresence, PRESENCE_EVERY_MS, readPresence } from "./presence.ts";
import { RegistrySync } from "./registry_sync.ts";
import { RegistryView } from "./registry_view.ts";

/** Pause before reconnecting the registry watch after it failed (NATS up, but JetStream not ready yet). */
const REWATCH_DELAY_MS = 1000;

export interface FleetOptions extends FleetLinkOptions {
  /**
   * Whether this node takes fine-tune jobs from the fleet's queue; `auto` decides when it joins: on with a
   * hardware GPU adapter, or when no other node in the fleet takes jobs on one.
   */
  jobs: "on" | "off" | "auto";
  /** Whether this box has a hardware GPU adapter. */
  hardwareGpu: boolean;
  /** The node's data dir: fleet jobs unpack their datasets under `<dataDir>/fleet-jobs`. */
  dataDir: string;
  /** Aborted when the server shuts down (a job followed from here then stays the fleet's). */
  shutdown: AbortSignal;
  /** This node's inference backend and GPU adapter (null without one), for its presence record. */
  backend: string;
  adapter: string | null;
}

/** What `GET /v1/fleet` reports. */
export interface FleetReport {
  fleet: string;
  node: string;
  connected: boolean;
  kv_lag: number;
  /** Models this node cannot follow, with the reason (e.g. a version that does not load on its backend). */
  problems: Record<string, string>;
  /** Every node's presence record (only this node's own while NATS is unreachable). */
  nodes: NodeInfo[];
}

export class Fleet {
  private readonly view = new RegistryView();
  private store: FleetStore | null = null;
  private sync: RegistrySync | null = null;
  private link: FleetLink | null = null;
  private readonly stopping = new AbortController();
  /** Aborted by {@link drain}: take no more jobs, suspend the running one and hand it back. */
  private readonly draining = new AbortController();
  private running: Promise<void> = Promise.resolve();
  private worker: Promise<void> = Promise.resolve();
  private readonly linked = Promise.withResolvers<FleetLink>();
  private localTrainer: Trainer | null = null;
  /** Whether this node takes jobs (`--jobs auto` is settled when the node joins). */
  private jobsOn: boolean;
  private registry: Registry | null = null;
  private presence: KV | null = null;
  private presenceTimer: ReturnType<typeof setInterval> | undefined;
  private captures: CaptureReplication | null = null;
  private readonly detects = new DetectWindow();

  constructor(readonly options: FleetOptions, private readonly log: (message: string) => void) {
    this.jobsOn = options.jobs === "on" || (options.jobs === "auto" && options.hardwareGpu);
  }

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
    this.store = new FleetStore(local, this.view, this.options.node);
    return this.store;
  }

  /** Share this node's labelled captures with the fleet (from when it connects) and read the others'. */
  replicateCaptures(store: CaptureStore): void {
    this.captures = new CaptureReplication(store, this.options.node, this.log);
  }

  /**
   * A captures dataset's share from the fleet: the labelled captures of `model` other nodes hold, written under
   * `dir` (see capture_sync.ts); null while NATS is not connected or without {@link replicateCaptures}.
   */
  async writeFleetCaptures(dir: string, model: string): Promise<{ train: number; val: number } | null> {
    const captures = this.captures;
    if (!this.connected || !captures) return null;
    // A read that fails midway (NATS went away) refuses the dataset with 503 rather than training on part.
    return await fleetCall("read the fleet's captures", () => captures.writeDataset(dir, model));
  }

  /** Resolves once every capture change seen so far reached the fleet (tests). */
  capturesSettled(): Promise<unknown> {
    return this.captures?.settled() ?? Promise.resolve();
  }

  /** Join: from now on registry changes go through the fleet; connecting and following happen in the background. */
  start(registry: Registry): void {
    const store = this.store;
    if (!store) {
      throw new Error("Fleet.start before wrapStore: the registry must be opened on the fleet's store");
    }
    store.start();
    this.registry = registry;
    this.sync = new RegistrySync(registry, store, this.view, this.options.node, this.log);
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

  /**
   * `POST /v1/models/{name}/activate` on a fleet node. With `nodes`, a canary: only those nodes serve `version`
   * (the fleet's active version stays). Without, the fleet's active version moves to `version` and any canary
   * ends, so every node serves it (a promotion when it was the canary's version).
   */
  async activate(name: string, version: number, nodes: string[] | null): Promise<VersionMeta> {
    const store = this.store;
    const registry = this.registry;
    if (!store || !registry) throw new RegistryError("unavailable", "The fleet has not started yet");
    const meta = registry.version(name, version);
    if (nodes !== null) {
      await store.setCanary(name, { version, nodes });
      return meta;
    }
    await store.publishActive(store.requireLink(), name, version);
    await store.setCanary(name, null);
    return await registry.activate(name, version);
  }

  /**
   * `GET /v1/fleet/jobs`: every fleet job's shared state (where it runs or ran, attempts, progress), oldest
   * first; null while NATS is not connected.
   */
  async jobs(): Promise<FleetJob[] | null> {
    return (await this.readJobs())?.map(({ state }) => state) ?? null;
  }

  /**
   * Every fleet job as a job record, oldest first, for `/v1/jobs` on any node (merged there with the node's own
   * records); null while NATS is not connected.
   */
  async jobRecords(): Promise<Job[] | null> {
    return (await this.readJobs())?.map(({ state, updatedAt }) => asJobRecord(state, updatedAt)) ?? null;
  }

  /** One fleet job as a job record; null when the fleet has no such job or NATS is not connected. */
  async jobRecord(id: string): Promise<Job | null> {
    if (!this.link || !this.connected) return null;
    const entry = await this.link.jobs.get(id).catch(() => null);
    if (entry?.operation !== "PUT") return null;
    return asJobRecord(FleetJobSchema.parse(entry.json()), entry.created);
  }

  /**
   * A fleet job's events as `/v1/jobs/{id}/events` streams them, from its shared state: its current record, then
   * one per change (`status` when the status or the node moved, else `progress`), ending after its final status or when
   * `signal` aborts. Nothing while NATS is not connected.
   */
  async *jobEvents(id: string, signal: AbortSignal): AsyncGenerator<JobEvent> {
    if (!this.link || !this.connected) return;
    const watch = await this.link.jobs.watch({ key: id });
    const stop = () => watch.stop();
    signal.addEventListener("abort", stop, { once: true });
    try {
      let last: Job | null = null;
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        const job = asJobRecord(FleetJobSchema.parse(entry.json()), entry.created);
        const moved = job.status !== last?.status || job.node !== last.node; // a takeover is a status change too
        yield { type: moved ? "status" : "progress", job };
        last = job;
        if (TERMINAL_STATUSES.has(job.status)) return;
      }
    } finally {
      signal.removeEventListener("abort", stop);
      watch.stop();
    }
  }

  private async readJobs(): Promise<{ state: FleetJob; updatedAt: Date }[] | null> {
    if (!this.link || !this.connected) return null;
    const kv = this.link.jobs;
    const jobs: { state: FleetJob; updatedAt: Date }[] = [];
    for await (const key of await kv.keys()) {
      const entry = await kv.get(key);
      if (entry?.operation === "PUT") {
        jobs.push({ state: FleetJobSchema.parse(entry.json()), updatedAt: entry.created });
      }
    }
    return jobs.sort((a, b) => a.state.job.createdAt.localeCompare(b.state.job.createdAt));
  }

  /** A detect served here (`ms`: server time), for the last minute's numbers in the presence record. */
  observeDetect(model: string, version: number, ms: number): void {
    this.detects.observe(model, version, ms);
  }

  /** This node's presence record as of now. */
  self(): NodeInfo {
    return {
      name: this.options.node,
      last_seen: new Date().toISOString(),
      backend: this.options.backend,
      adapter: this.options.adapter,
      hardware_gpu: this.options.hardwareGpu,
      jobs: this.jobsOn,
      active: Object.fromEntries(
        (this.registry?.models() ?? []).filter((m) => m.active !== null).map((m) => [m.name, m.active!]),
      ),
      kv_lag: this.lag,
      detect: this.detects.summary(),
    };
  }

  /** `GET /v1/fleet`: every node's record from the presence bucket, or this node's alone while disconnected. */
  async report(): Promise<FleetReport> {
    const head = {
      fleet: this.options.fleet,
      node: this.options.node,
      connected: this.connected,
      kv_lag: this.lag,
      problems: Object.fromEntries(this.sync?.problems ?? []),
    };
    let nodes = [this.self()];
    if (this.connected && this.presence) {
      const read = await readPresence(this.presence).catch(() => null);
      if (read) nodes = [...read.filter((n) => n.name !== this.options.node), this.self()];
    }
    return { ...head, nodes: nodes.sort((a, b) => a.name.localeCompare(b.name)) };
  }

  /**
   * The first step of a stop (the server's drain): take no more jobs, and have the one running here checkpoint
   * the iteration in flight, upload the checkpoint and hand the job back to the queue, so the node taking it
   * over resumes there. Resolves once the job is handed back (or ended meanwhile); bound the wait and call
   * {@link close}, which hands it back at once with the checkpoint the fleet had.
   */
  async drain(): Promise<void> {
    this.draining.abort(new DOMException("Node shutting down", "AbortError"));
    await this.worker;
  }

  async close(): Promise<void> {
    clearInterval(this.presenceTimer);
    this.draining.abort(new DOMException("Node shutting down", "AbortError"));
    this.stopping.abort();
    await this.worker; // a running job is handed back to the queue first
    await this.captures?.settled();
    await this.link?.nc.close();
    await this.running;
    await this.sync?.settled();
  }

  /** Take jobs until closed; a failed pull (NATS down) is retried. */
  private async work(link: FleetLink, trainer: Trainer): Promise<void> {
    const signals = { stop: this.stopping.signal, drain: this.draining.signal };
    const options = {
      node: this.options.node,
      trainer,
      workRoot: join(this.options.dataDir, "fleet-jobs"),
      log: this.log,
      connected: () => this.connected,
    };
    const ending = () => signals.stop.aborted || signals.drain.aborted;
    while (!ending() && !link.nc.isClosed()) {
      try {
        await runJobWorker(link, options, signals);
      } catch (err) {
        if (!ending()) this.log(`fleet: job queue: ${(err as Error).message}; pulling again`);
      }
      if (!ending()) await new Promise((resolve) => setTimeout(resolve, REWATCH_DELAY_MS));
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
    this.presence = await openPresence(this.link, this.options.fleet).catch((err) => {
      this.log(`fleet: no presence bucket: ${(err as Error).message}`);
      return null;
    });
    if (this.options.jobs === "auto" && !this.jobsOn && this.presence) {
      const others = await readPresence(this.presence).catch(() => []);
      this.jobsOn = !others.some((n) => n.name !== this.options.node && n.hardware_gpu && n.jobs);
    }
    if (this.jobsOn && this.localTrainer) this.worker = this.work(this.link, this.localTrainer);
    const announce = () =>
      void this.presence?.put(this.options.node, JSON.stringify(this.self())).catch(() => {});
    announce();
    this.presenceTimer = setInterval(announce, PRESENCE_EVERY_MS);
    void this.watchStatus(this.link);
    void this.captures?.connected(this.link);
    this.log(
      `fleet: node ${this.options.node} joined fleet ${this.options.fleet} at ${this.options.servers}` +
        ` (jobs ${this.jobsOn ? "on" : "off"})`,
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
      if (status.type === "disconnect") {
        this.connected = false;
        this.captures?.disconnected();
      }
      if (status.type === "reconnect") {
        this.connected = true;
        void this.captures?.connected(link); // changes that failed while NATS was down
      }
    }
    this.connected = false;
  }
}

/**
 * Keeps a node's registry equal to the fleet's: watches the KV, and for each model adopts the versions it lacks
 * (fetched from the object store, checked against their sha256, loaded like an upload), activates the fleet's
 * active version through the registry (so serving swaps exactly as for a local activation: build, warm up,
 * drain) and deletes what the fleet deleted. On joining it first publishes what only this node holds (the
 * default or `--model` files registered at startup, versions kept while the fleet was unreachable), so
 * nothing local is lost. Every step is idempotent: after a NATS outage the watcher replays the latest entries
 * and the node converges on the KV's state.
 * @module
 */
import type { KvWatchEntry } from "@nats-io/kv";
import { RegistryError } from "../registry/errors.ts";
import { type Registry, sha256 } from "../registry/registry.ts";
import { fleetCall, type FleetStore, isCasConflict, publishVersion } from "./fleet_store.ts";
import { activeKey, objectName } from "./keys.ts";
import type { FleetLink } from "./link.ts";
import type { RegistryView } from "./registry_view.ts";

export class RegistrySync {
  /** The KV revision this node's registry reflects (for the lag behind the fleet). */
  appliedRevision = 0;
  /** Why the last reconcile failed, per model; cleared once it succeeds. */
  readonly problems = new Map<string, string>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly registry: Registry,
    private readonly store: FleetStore,
    private readonly view: RegistryView,
    private readonly node: string,
    private readonly log: (message: string) => void,
  ) {}

  /** Take in the KV's current state, publish what only this node holds, converge, then follow changes. */
  async run(link: FleetLink, stop: AbortSignal): Promise<void> {
    const watch = await link.registry.watch();
    stop.addEventListener("abort", () => watch.stop(), { once: true });
    const empty = (await link.registry.status()).values === 0;
    let joined = false;
    const join = () => {
      joined = true;
      this.enqueue(async () => {
        await this.publishLocal(link);
        for (const name of new Set([...this.view.names(), ...this.registry.models().map((m) => m.name)])) {
          await this.reconcile(link, name);
        }
      });
    };
    if (empty) join();
    for await (const entry of watch) {
      const name = this.view.apply(entry);
      if (!joined) {
        if (entry.delta === 0) join();
        continue;
      }
      if (name !== null) this.enqueue(() => this.reconcile(link, name), entry);
      else this.appliedRevision = Math.max(this.appliedRevision, entry.revision);
    }
  }

  /** Wait for every queued step (tests, and before reporting state). */
  settled(): Promise<unknown> {
    return this.queue;
  }

  private enqueue(step: () => Promise<void>, entry?: KvWatchEntry): void {
    const revision = entry?.revision ?? this.view.revision;
    this.queue = this.queue.then(step).then(() => {
      this.appliedRevision = Math.max(this.appliedRevision, revision);
    }).catch((err) => this.log(`fleet: ${(err as Error).message}`));
  }

  /** Publish versions and active pointers that only this node holds (ids the fleet has not used). */
  private async publishLocal(link: FleetLink): Promise<void> {
    for (const model of this.registry.models()) {
      const fleet = this.view.get(model.name);
      for (const meta of model.versions) {
        if (fleet?.versions.has(meta.version) || fleet?.deleted.has(meta.version)) continue;
        await this.store.allocate(link, model.name, meta.version);
        try {
          await publishVersion(link, meta, await this.registry.read(model.name, meta.version));
          this.log(`fleet: published local ${model.name} v${meta.version}`);
        } catch (err) {
          // Another node published the same id meanwhile: the reconcile compares the two.
          if (!(err instanceof RegistryError && err.code === "conflict")) throw err;
        }
      }
      if (model.active !== null && !fleet?.active) {
        try {
          const revision = await fleetCall(
            "publish the active version",
            () => link.registry.create(activeKey(model.name), JSON.stringify({ version: model.active })),
          );
          this.view.setActive(model.name, model.active, revision);
        } catch (err) {
          if (!isCasConflict(err)) throw err;
        }
      }
    }
  }

  /** Make the local registry's `name` match the fleet's view of it. */
  private async reconcile(link: FleetLink, name: string): Promise<void> {
    const fleet = this.view.get(name);
    if (!fleet) return;
    try {
      const local = () => this.registry.models().find((m) => m.name === name);
      for (
        const { value: meta } of [...fleet.versions.values()].sort((a, b) =>
          a.value.version - b.value.version
        )
      ) {
        if (local()?.versions.some((v) => v.version === meta.version && v.sha256 === meta.sha256)) continue;
        const bytes = await fleetCall(
          "fetch the ONNX",
          () => link.models.getBlob(objectName(name, meta.version)),
        );
        if (bytes === null) throw new Error(`the fleet has no ONNX for ${name} v${meta.version}`);
        if (await sha256(bytes) !== meta.sha256) {
          throw new Error(`${name} v${meta.version}: ONNX sha256 mismatch`);
        }
        if ((await this.registry.adopt(meta, bytes)).added) {
          this.log(`fleet: copied ${name} v${meta.version}`);
        }
      }
      const target = this.view.target(name, this.node);
      if (target !== null && local()?.active !== target) {
        await this.registry.activate(name, target);
        this.log(`fleet: serving ${name} v${target}`);
      }
      for (const version of fleet.deleted.keys()) {
        const here = local();
        if (here?.versions.some((v) => v.version === version) && here.active !== version) {
          try {
            await this.registry.remove(name, version);
            this.log(`fleet: deleted ${name} v${version}`);
          } catch (err) {
            // The delete that this node made itself finished first.
            if (!(err instanceof RegistryError && err.code === "not_found")) throw err;
          }
        }
      }
      this.problems.delete(name);
    } catch (err) {
      this.problems.set(name, (err as Error).message);
      throw new Error(`cannot follow ${name}: ${(err as Error).message}`);
    }
  }
}

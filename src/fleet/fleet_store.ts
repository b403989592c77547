/**
 * The registry's {@link Store} on a fleet node: the local store (the node's data dir) stays the copy it loads and
 * serves from, and every change made on this node is first written to the fleet's KV and object store with
 * compare-and-set, so two nodes never hand out the same version id and a concurrent activation elsewhere is a
 * 409, never silently overwritten. Before the fleet layer starts (startup registration of `--model` files) writes
 * go to the local store only; the sync publishes them when it joins. Once started, a write while NATS is
 * unreachable is refused (`unavailable`) and changes nothing.
 * @module
 */
import { JetStreamApiError } from "@nats-io/jetstream";
import { RegistryError } from "../registry/errors.ts";
import type { NewVersion, Store, VersionMeta } from "../registry/store.ts";
import { activeKey, canaryKey, metaKey, nextKey, objectName } from "./keys.ts";
import type { FleetLink } from "./link.ts";
import type { Canary, RegistryView } from "./registry_view.ts";

/** JetStream's "wrong last sequence": the entry moved since the revision a compare-and-set expected. */
const WRONG_LAST_SEQUENCE = 10071;
/** Compare-and-set retries for the id counter: each retry means another node just took an id. */
const ALLOCATE_ATTEMPTS = 32;

export function isCasConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE;
}

/** A fleet call; a failure other than a compare-and-set conflict means the fleet is unreachable. */
export async function fleetCall<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (isCasConflict(err) || err instanceof RegistryError) throw err;
    throw new RegistryError("unavailable", `The fleet is unreachable (${what}): ${(err as Error).message}`);
  }
}

const json = (value: unknown) => JSON.stringify(value);

export class FleetStore implements Store {
  /** Set once the fleet layer starts: from then on every change goes through the fleet. */
  private started = false;
  /** The open link; null until connected. */
  private link: FleetLink | null = null;

  /** `node`: this node's name, to tell the canary activations that name it. */
  constructor(
    private readonly local: Store,
    private readonly view: RegistryView,
    private readonly node: string,
  ) {}

  /** From now on changes go through the fleet (refused while `link` is null). */
  start(): void {
    this.started = true;
  }

  connected(link: FleetLink): void {
    this.link = link;
  }

  load(): ReturnType<Store["load"]> {
    return this.local.load();
  }

  readModel(name: string, version: number): Promise<Uint8Array> {
    return this.local.readModel(name, version);
  }

  openModel(name: string, version: number): Promise<ReadableStream<Uint8Array>> {
    return this.local.openModel(name, version);
  }

  /** A replica copy of a version that is already in the fleet: local only. */
  putVersion(meta: VersionMeta, bytes: Uint8Array): Promise<void> {
    return this.local.putVersion(meta, bytes);
  }

  async addVersion(name: string, bytes: Uint8Array, meta: NewVersion): Promise<VersionMeta> {
    if (!this.started) return this.local.addVersion(name, bytes, meta);
    const link = this.requireLink();
    const full: VersionMeta = { name, version: await this.allocate(link, name, null), ...meta };
    await publishVersion(link, full, bytes);
    await this.local.putVersion(full, bytes);
    return full;
  }

  async setActive(name: string, version: number): Promise<void> {
    if (!this.started) return this.local.setActive(name, version);
    const link = this.requireLink();
    const canary = this.view.get(name)?.canary?.value;
    // This node following a canary activation that names it: local only, the fleet's active pointer stays.
    if (!(canary?.version === version && canary.nodes.includes(this.node))) {
      await this.publishActive(link, name, version);
    }
    await this.local.setActive(name, version);
  }

  /** Point the fleet's active version of `name` at `version` by compare-and-set (nothing when it already does). */
  async publishActive(link: FleetLink, name: string, version: number): Promise<void> {
    const known = this.view.get(name)?.active ?? null;
    if (known?.value === version) {
      // The fleet already says so (this node is following it): confirm nothing moved since.
      const current = await fleetCall("read the active version", () => link.registry.get(activeKey(name)));
      if (current && current.revision !== known.revision) throw activeMoved(name);
      return;
    }
    const value = json({ version });
    let revision: number;
    try {
      revision = await fleetCall(
        "activate",
        () =>
          known
            ? link.registry.update(activeKey(name), value, known.revision)
            : link.registry.create(activeKey(name), value),
      );
    } catch (err) {
      if (isCasConflict(err)) throw activeMoved(name);
      throw err;
    }
    this.view.setActive(name, version, revision);
  }

  /** Start (`canary`) or end (null) a canary activation of `name`, by compare-and-set on the canary entry. */
  async setCanary(name: string, canary: Canary | null): Promise<void> {
    const link = this.requireLink();
    const known = this.view.get(name)?.canary ?? null;
    if (canary === null && known === null) return;
    try {
      await fleetCall<unknown>("set the canary", () => {
        if (canary === null) return link.registry.delete(canaryKey(name), { previousSeq: known!.revision });
        const value = json(canary);
        return known
          ? link.registry.update(canaryKey(name), value, known.revision)
          : link.registry.create(canaryKey(name), value);
      });
    } catch (err) {
      if (isCasConflict(err)) {
        throw new RegistryError(
          "conflict",
          `The canary of '${name}' was changed on another node meanwhile; retry`,
        );
      }
      throw err;
    }
  }

  /** The open link, or `unavailable` while NATS is not connected. */
  requireLink(): FleetLink {
    if (this.link === null || this.link.nc.isClosed()) {
      throw new RegistryError("unavailable", "The fleet (NATS) is not connected; nothing was changed");
    }
    return this.link;
  }

  async deleteVersion(name: string, version: number): Promise<void> {
    if (!this.started) return this.local.deleteVersion(name, version);
    const fleet = this.view.get(name);
    const known = fleet?.versions.get(version);
    if (known) {
      const link = this.requireLink();
      if (fleet?.active?.value === version || fleet?.canary?.value.version === version) {
        throw new RegistryError(
          "conflict",
          `Version ${version} of '${name}' is active (or a canary) in the fleet; activate another one first`,
        );
      }
      try {
        await fleetCall(
          "delete",
          () => link.registry.delete(metaKey(name, version), { previousSeq: known.revision }),
        );
      } catch (err) {
        if (isCasConflict(err)) {
          throw new RegistryError("conflict", `Version ${version} of '${name}' changed in the fleet; retry`);
        }
        throw err;
      }
      await fleetCall("delete the ONNX", () => link.models.delete(objectName(name, version)));
    }
    await this.local.deleteVersion(name, version);
  }

  /**
   * The next version id for `name`, taken from the fleet's counter by compare-and-set (or, with `atLeast`,
   * raise the counter to cover an id this node already holds).
   */
  async allocate(link: FleetLink, name: string, atLeast: number | null): Promise<number> {
    for (let attempt = 0; attempt < ALLOCATE_ATTEMPTS; attempt++) {
      const entry = await fleetCall("read the id counter", () => link.registry.get(nextKey(name)));
      const last = entry?.operation === "PUT" ? (entry.json<{ version: number }>().version) : 0;
      const version = atLeast ?? Math.max(last, this.view.maxVersion(name)) + 1;
      if (atLeast !== null && last >= atLeast) return atLeast;
      try {
        await fleetCall(
          "take a version id",
          () =>
            entry
              ? link.registry.update(nextKey(name), json({ version }), entry.revision)
              : link.registry.create(nextKey(name), json({ version })),
        );
        return version;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    throw new RegistryError("unavailable", `Could not take a version id for '${name}': too much contention`);
  }
}

/** The ONNX first, then the meta that makes it visible, so a node that sees the meta finds the file. */
export async function publishVersion(link: FleetLink, meta: VersionMeta, bytes: Uint8Array): Promise<void> {
  await fleetCall(
    "store the ONNX",
    () => link.models.putBlob({ name: objectName(meta.name, meta.version) }, bytes),
  );
  try {
    await fleetCall(
      "publish the version",
      () => link.registry.create(metaKey(meta.name, meta.version), json(meta)),
    );
  } catch (err) {
    if (isCasConflict(err)) {
      throw new RegistryError(
        "conflict",
        `Version ${meta.version} of '${meta.name}' already exists in the fleet`,
      );
    }
    throw err;
  }
}

function activeMoved(name: string): RegistryError {
  return new RegistryError(
    "conflict",
    `The active version of '${name}' was changed on another node meanwhile; reload and retry`,
  );
}

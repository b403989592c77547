/**
 * This node's copy of the fleet registry as the KV last told it: per model, the active version and each
 * version's meta (or its delete marker), with the KV revision of each entry for compare-and-set writes.
 * @module
 */
import type { KvEntry } from "@nats-io/kv";
import { type VersionMeta, VersionMetaSchema } from "../registry/store.ts";
import { parseRegistryKey } from "./keys.ts";

export interface Revised<T> {
  value: T;
  revision: number;
}

export interface FleetModel {
  active: Revised<number> | null;
  versions: Map<number, Revised<VersionMeta>>;
  /** Versions deleted fleet-wide (their delete markers), so a node that was away deletes them too. */
  deleted: Map<number, number>;
}

const ActiveSchema = VersionMetaSchema.pick({ version: true });

export class RegistryView {
  private readonly models = new Map<string, FleetModel>();
  /** The highest KV revision taken in. */
  revision = 0;

  /** Take in one KV entry; returns the model it concerns, or null for a key that is not a model's. */
  apply(entry: KvEntry): string | null {
    this.revision = Math.max(this.revision, entry.revision);
    const key = parseRegistryKey(entry.key);
    if (!key || key.kind === "next") return null;
    const model = this.model(key.name);
    const put = entry.operation === "PUT";
    if (key.kind === "active") {
      if (model.active && model.active.revision > entry.revision) return key.name;
      model.active = put
        ? { value: ActiveSchema.parse(entry.json()).version, revision: entry.revision }
        : null;
    } else {
      const known = model.versions.get(key.version)?.revision ?? model.deleted.get(key.version) ?? 0;
      if (known > entry.revision) return key.name;
      if (put) {
        model.versions.set(key.version, {
          value: VersionMetaSchema.parse(entry.json()),
          revision: entry.revision,
        });
        model.deleted.delete(key.version);
      } else {
        model.versions.delete(key.version);
        model.deleted.set(key.version, entry.revision);
      }
    }
    return key.name;
  }

  /** Record this node's own successful write before the watcher echoes it, so the next CAS uses its revision. */
  setActive(name: string, version: number, revision: number): void {
    const model = this.model(name);
    if (!model.active || model.active.revision < revision) model.active = { value: version, revision };
  }

  get(name: string): FleetModel | null {
    return this.models.get(name) ?? null;
  }

  names(): string[] {
    return [...this.models.keys()];
  }

  /** Highest version id the fleet has seen for `name`, deleted ones included. */
  maxVersion(name: string): number {
    const model = this.models.get(name);
    return model ? Math.max(0, ...model.versions.keys(), ...model.deleted.keys()) : 0;
  }

  private model(name: string): FleetModel {
    let model = this.models.get(name);
    if (!model) {
      model = { active: null, versions: new Map(), deleted: new Map() };
      this.models.set(name, model);
    }
    return model;
  }
}

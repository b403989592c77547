/**
 * This node's copy of the fleet registry as the KV last told it: per model, the active version and each
 * version's meta (or its delete marker), with the KV revision of each entry for compare-and-set writes.
 * @module
 */
import type { KvEntry } from "@nats-io/kv";
import { z } from "zod";
import { type VersionMeta, VersionMetaSchema } from "../registry/store.ts";
import { parseRegistryKey } from "./keys.ts";

export interface Revised<T> {
  value: T;
  revision: number;
}

/** A canary activation: the listed nodes serve `version` instead of the active one. */
export const CanarySchema = z.object({ version: z.number().int().positive(), nodes: z.array(z.string()) });
export type Canary = z.infer<typeof CanarySchema>;

export interface FleetModel {
  active: Revised<number> | null;
  canary: Revised<Canary> | null;
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
    if (key.kind === "canary") {
      if (model.canary && model.canary.revision > entry.revision) return key.name;
      model.canary = put ? { value: CanarySchema.parse(entry.json()), revision: entry.revision } : null;
    } else if (key.kind === "active") {
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

  /** The version `node` should serve for `name`: its canary version, else the fleet's active one. */
  target(name: string, node: string): number | null {
    const model = this.models.get(name);
    const canary = model?.canary?.value;
    return canary?.nodes.includes(node) ? canary.version : model?.active?.value ?? null;
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
      model = { active: null, canary: null, versions: new Map(), deleted: new Map() };
      this.models.set(name, model);
    }
    return model;
  }
}

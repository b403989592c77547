/** An in-memory {@link Store}: for tests, and for serving without a data directory (nothing survives a restart). */
import type { NewVersion, Store, VersionMeta } from "./store.ts";

interface Entry {
  versions: Map<number, { meta: VersionMeta; bytes: Uint8Array }>;
  active: number | null;
  last: number;
}

export class MemoryStore implements Store {
  private readonly models = new Map<string, Entry>();

  load(): Promise<Map<string, { versions: VersionMeta[]; active: number | null }>> {
    const out = new Map<string, { versions: VersionMeta[]; active: number | null }>();
    for (const [name, e] of this.models) {
      out.set(name, { versions: [...e.versions.values()].map((v) => v.meta), active: e.active });
    }
    return Promise.resolve(out);
  }

  addVersion(name: string, bytes: Uint8Array, meta: NewVersion): Promise<VersionMeta> {
    const entry = this.models.get(name) ?? { versions: new Map(), active: null, last: 0 };
    this.models.set(name, entry);
    const full: VersionMeta = { name, version: ++entry.last, ...meta };
    entry.versions.set(full.version, { meta: full, bytes: bytes.slice() });
    return Promise.resolve(full);
  }

  putVersion(meta: VersionMeta, bytes: Uint8Array): Promise<void> {
    const entry = this.models.get(meta.name) ?? { versions: new Map(), active: null, last: 0 };
    this.models.set(meta.name, entry);
    entry.last = Math.max(entry.last, meta.version);
    entry.versions.set(meta.version, { meta, bytes: bytes.slice() });
    return Promise.resolve();
  }

  readModel(name: string, version: number): Promise<Uint8Array> {
    const v = this.models.get(name)?.versions.get(version);
    return v
      ? Promise.resolve(v.bytes.slice())
      : Promise.reject(new Error(`No version ${version} of '${name}'`));
  }

  openModel(name: string, version: number): Promise<ReadableStream<Uint8Array>> {
    const v = this.models.get(name)?.versions.get(version);
    return v
      ? Promise.resolve(new Blob([v.bytes as Uint8Array<ArrayBuffer>]).stream())
      : Promise.reject(new Error(`No version ${version} of '${name}'`));
  }

  setActive(name: string, version: number): Promise<void> {
    this.models.get(name)!.active = version;
    return Promise.resolve();
  }

  deleteVersion(name: string, version: number): Promise<void> {
    this.models.get(name)?.versions.delete(version);
    return Promise.resolve();
  }
}

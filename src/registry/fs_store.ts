/**
 * The registry on disk, under `--data-dir`:
 * ```
 * models/<name>/versions/<v>/model.onnx, meta.json   one directory per version, published by one rename
 * models/<name>/active.json                          {"version": v}, replaced atomically
 * models/<name>/last_version.json                    high-water mark, so deleted ids are never reused
 * models/<name>/.staging/, .trash/                   work areas; anything left there after a crash is dropped
 * ```
 * A version directory is staged completely (both files fsynced, directory fsynced) before the rename that
 * makes it visible, so after a kill -9 a version is either absent or whole.
 * @module
 */
import { join } from "node:path";
import { syncDir, writeJsonAtomic, writeSynced } from "./atomic.ts";
import type { NewVersion, Store, VersionMeta } from "./store.ts";
import { VersionMetaSchema } from "./store.ts";

const PointerSchema = VersionMetaSchema.pick({ version: true });

export class FsStore implements Store {
  private readonly root: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, "models");
  }

  async load(): Promise<Map<string, { versions: VersionMeta[]; active: number | null }>> {
    await mkdirSynced(this.root);
    const models = new Map<string, { versions: VersionMeta[]; active: number | null }>();
    for await (const entry of Deno.readDir(this.root)) {
      if (!entry.isDirectory) continue;
      const name = entry.name;
      for await (const item of Deno.readDir(this.dir(name))) {
        if (item.name === ".staging" || item.name === ".trash" || item.name.includes(".tmp-")) {
          await Deno.remove(join(this.dir(name), item.name), { recursive: true });
        }
      }
      const versions = await this.readVersions(name);
      const active = (await readJson(join(this.dir(name), "active.json"), PointerSchema))?.version ?? null;
      if (active !== null && !versions.some((v) => v.version === active)) {
        throw new Error(
          `Registry ${this.dir(name)}: active.json points at version ${active}, which does not exist`,
        );
      }
      models.set(name, { versions, active });
    }
    return models;
  }

  async addVersion(name: string, bytes: Uint8Array, meta: NewVersion): Promise<VersionMeta> {
    const dir = this.dir(name);
    await mkdirSynced(join(dir, "versions"));
    const existing = await this.readVersions(name);
    const last = (await readJson(join(dir, "last_version.json"), PointerSchema))?.version ?? 0;
    const full: VersionMeta = {
      name,
      version: Math.max(last, ...existing.map((v) => v.version)) + 1,
      ...meta,
    };
    await this.putVersion(full, bytes);
    return full;
  }

  async putVersion(meta: VersionMeta, bytes: Uint8Array): Promise<void> {
    const { name, version } = meta;
    const dir = this.dir(name);
    await mkdirSynced(join(dir, "versions"));
    const last = (await readJson(join(dir, "last_version.json"), PointerSchema))?.version ?? 0;
    // The high-water mark goes first: a crash after it only leaves a gap in the ids.
    if (version > last) await writeJsonAtomic(join(dir, "last_version.json"), { version });
    const staging = join(dir, ".staging", crypto.randomUUID());
    await Deno.mkdir(staging, { recursive: true });
    try {
      await writeSynced(join(staging, "model.onnx"), bytes);
      await writeSynced(
        join(staging, "meta.json"),
        new TextEncoder().encode(JSON.stringify(meta, null, 2) + "\n"),
      );
      await syncDir(staging);
      await Deno.rename(staging, this.versionDir(name, version));
    } catch (err) {
      await Deno.remove(staging, { recursive: true }).catch(() => {}); // e.g. disk full: leave no half version
      throw err;
    }
    await syncDir(join(dir, "versions"));
  }

  readModel(name: string, version: number): Promise<Uint8Array> {
    return Deno.readFile(join(this.versionDir(name, version), "model.onnx"));
  }

  async openModel(name: string, version: number): Promise<ReadableStream<Uint8Array>> {
    return (await Deno.open(join(this.versionDir(name, version), "model.onnx"))).readable;
  }

  async setActive(name: string, version: number): Promise<void> {
    await writeJsonAtomic(join(this.dir(name), "active.json"), { version });
  }

  async deleteVersion(name: string, version: number): Promise<void> {
    const trash = join(this.dir(name), ".trash");
    await Deno.mkdir(trash, { recursive: true });
    const doomed = join(trash, `${version}-${crypto.randomUUID()}`);
    await Deno.rename(this.versionDir(name, version), doomed);
    await syncDir(join(this.dir(name), "versions"));
    await Deno.remove(doomed, { recursive: true });
  }

  private dir(name: string): string {
    return join(this.root, name);
  }

  private versionDir(name: string, version: number): string {
    return join(this.dir(name), "versions", String(version));
  }

  private async readVersions(name: string): Promise<VersionMeta[]> {
    const versions: VersionMeta[] = [];
    try {
      for await (const entry of Deno.readDir(join(this.dir(name), "versions"))) {
        if (!entry.isDirectory || !/^\d+$/.test(entry.name)) continue;
        const path = join(this.dir(name), "versions", entry.name, "meta.json");
        const meta = await readJson(path, VersionMetaSchema);
        if (!meta || meta.version !== Number(entry.name) || meta.name !== name) {
          throw new Error(`Registry ${path}: expected the meta of ${name} version ${entry.name}`);
        }
        versions.push(meta);
      }
    } catch (err) {
      ignoreNotFound(err);
    }
    return versions.sort((a, b) => a.version - b.version);
  }
}

async function readJson<T>(path: string, schema: { parse(value: unknown): T }): Promise<T | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    ignoreNotFound(err);
    return null;
  }
  try {
    return schema.parse(JSON.parse(text));
  } catch (err) {
    throw new Error(`Registry file ${path} is not valid: ${(err as Error).message}`);
  }
}

/** mkdir -p, then fsync the parent so a fresh directory's entry survives a crash. */
async function mkdirSynced(path: string): Promise<void> {
  try {
    await Deno.mkdir(path);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return;
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await mkdirSynced(join(path, ".."));
    await Deno.mkdir(path).catch((e) => {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    });
  }
  await syncDir(join(path, ".."));
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}

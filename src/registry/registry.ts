/**
 * The model registry: named models, each with numbered immutable versions and one active version. It validates
 * candidates (a parseable YOLO detector, then an optional `verify` hook such as a warm-up run), persists through
 * a {@link Store}, has serving load a version before the active pointer moves and switch after (the activator),
 * and reports changes.
 *
 * @example
 * ```ts
 * const registry = await Registry.open(new FsStore(dataDir), { maxBytes: 256 << 20 });
 * registry.setActivator((meta, bytes) => pool.prepare(meta.name, meta.version, bytes));
 * const meta = await registry.add("yolov5n", bytes, { source: { type: "upload" }, activate: true });
 * ```
 * @module
 */
import { OnnxModel } from "../onnx/model.ts";
import { inspectYolo, type YoloInfo } from "../onnx/yolo.ts";
import { RegistryError } from "./errors.ts";
import type { Source, Store, VersionMeta } from "./store.ts";

/** Model names are path components and URL segments. */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface RegistryOptions {
  /** Largest accepted ONNX file in bytes. */
  maxBytes: number;
  /** Further checks on a candidate (e.g. build a session and run it once); throw to reject it. */
  verify?: (bytes: Uint8Array, info: YoloInfo) => Promise<void>;
}

/** A version loaded and ready to serve, switched to only once the active pointer is durable. */
export interface PreparedActivation {
  /** Serve the version now. */
  commit(): Promise<unknown>;
  /** Free what was loaded; serving stays as it was. */
  discard(): Promise<unknown>;
}

/**
 * Readies serving for a version; throwing leaves the active pointer where it was. Returning a
 * {@link PreparedActivation} lets the registry switch only after it has written the pointer, so a failed write
 * leaves serving and the registry agreeing; an activator that returns nothing must already have switched.
 */
export type Activator = (meta: VersionMeta, bytes: Uint8Array) => Promise<PreparedActivation | void>;

export type RegistryEvent =
  | { type: "added"; meta: VersionMeta }
  | { type: "activated"; meta: VersionMeta; previous: number | null }
  | { type: "deleted"; name: string; version: number };

export interface ModelState {
  name: string;
  active: number | null;
  versions: VersionMeta[];
}

export interface AddOptions {
  source: Source;
  parent?: number | null;
  metrics?: Record<string, number> | null;
  /** Switch to the new version; if switching fails the new version is removed again. */
  activate?: boolean;
}

export class Registry {
  private activator: Activator = () => Promise.resolve();
  private readonly listeners = new Set<(event: RegistryEvent) => void>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly store: Store,
    private readonly options: RegistryOptions,
    private readonly state: Map<string, ModelState>,
  ) {}

  /** Load what the store holds (a restart resumes the persisted active versions). */
  static async open(store: Store, options: RegistryOptions): Promise<Registry> {
    const state = new Map<string, ModelState>();
    for (const [name, { versions, active }] of await store.load()) {
      state.set(name, { name, active, versions });
    }
    return new Registry(store, options, state);
  }

  /** Largest accepted ONNX file in bytes. */
  get maxBytes(): number {
    return this.options.maxBytes;
  }

  /** Called with the version about to become active, before the pointer is persisted (see {@link Activator}). */
  setActivator(activator: Activator): void {
    this.activator = activator;
  }

  /** Subscribe to changes after they are durable; returns the unsubscribe function. */
  onChange(listener: (event: RegistryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every model, by name. */
  models(): ModelState[] {
    return [...this.state.values()].sort((a, b) => a.name.localeCompare(b.name))
      .map((m) => ({ ...m, versions: [...m.versions] }));
  }

  model(name: string): ModelState {
    const model = this.state.get(name);
    if (!model) throw new RegistryError("not_found", `No model named '${name}'`);
    return { ...model, versions: [...model.versions] };
  }

  version(name: string, version: number): VersionMeta {
    const meta = this.model(name).versions.find((v) => v.version === version);
    if (!meta) throw new RegistryError("not_found", `Model '${name}' has no version ${version}`);
    return meta;
  }

  /** The ONNX bytes of a version, checked against the sha256 recorded when it was added. */
  async read(name: string, version: number): Promise<Uint8Array> {
    const meta = this.version(name, version);
    let bytes: Uint8Array;
    try {
      bytes = await this.store.readModel(name, version);
    } catch (err) {
      // A delete takes the file before the meta: a read caught between them finds a version that is going away.
      const gone = !this.state.get(name)?.versions.some((v) => v.version === version);
      if (gone || err instanceof Deno.errors.NotFound) {
        throw new RegistryError("not_found", `Model '${name}' version ${version} was deleted`);
      }
      throw err;
    }
    const sha = await sha256(bytes);
    if (sha !== meta.sha256) {
      throw new Error(
        `Model '${name}' version ${version}: stored file has sha256 ${sha}, meta says ${meta.sha256}`,
      );
    }
    return bytes;
  }

  /**
   * A version's ONNX bytes as a stream, for downloads: not hashed here (the recorded sha256 goes to the client
   * to check) so a download costs no more than its copy. {@link read} checks the hash before loading.
   */
  async stream(
    name: string,
    version: number,
  ): Promise<{ meta: VersionMeta; body: ReadableStream<Uint8Array> }> {
    const meta = this.version(name, version);
    try {
      return { meta, body: await this.store.openModel(name, version) };
    } catch (err) {
      // Deleted between the lookup and the open.
      if (err instanceof Deno.errors.NotFound) {
        throw new RegistryError("not_found", `Model '${name}' has no version ${version}`);
      }
      throw err;
    }
  }

  /** Validate and store a new version; rejects leave the registry unchanged. */
  add(name: string, bytes: Uint8Array, options: AddOptions): Promise<VersionMeta> {
    return this.serial(async () => {
      const meta = await this.addLocked(name, bytes, options);
      if (options.activate) {
        try {
          await this.activateLocked(meta);
        } catch (err) {
          await this.removeLocked(name, meta.version);
          throw err;
        }
      }
      return meta;
    });
  }

  /** Make `version` the one served (a swap or a roll back). */
  activate(name: string, version: number): Promise<VersionMeta> {
    return this.serial(() => this.activateLocked(this.version(name, version)));
  }

  /** Delete a version that is not active. */
  remove(name: string, version: number): Promise<void> {
    return this.serial(() => this.removeLocked(name, version));
  }

  /**
   * `--model PATH` at startup: register the file under its stem unless a version with the same sha256 exists,
   * and activate it only when the model has no active version (a persisted choice always wins).
   */
  registerFile(path: string): Promise<{ meta: VersionMeta; added: boolean; activated: boolean }> {
    return this.serial(async () => {
      const name = path.replace(/^.*[\\/]/, "").replace(/\.onnx$/i, "");
      const bytes = await Deno.readFile(path);
      const sha = await sha256(bytes);
      const existing = this.state.get(name)?.versions.find((v) => v.sha256 === sha);
      const meta = existing ?? await this.addLocked(name, bytes, { source: { type: "startup", path } });
      const activated = this.state.get(name)!.active === null;
      if (activated) await this.activateLocked(meta);
      return { meta, added: !existing, activated };
    });
  }

  /**
   * Take in a version another fleet node added, under its id and meta as they are (no activation): checked like
   * an upload (it must load here and match its recorded sha256). The same version already here is a no-op
   * (`added` false); the same id with other bytes is a conflict.
   */
  adopt(meta: VersionMeta, bytes: Uint8Array): Promise<{ meta: VersionMeta; added: boolean }> {
    return this.serial(async () => {
      const known = this.state.get(meta.name)?.versions.find((v) => v.version === meta.version);
      if (known) {
        if (known.sha256 === meta.sha256) return { meta: known, added: false };
        throw new RegistryError(
          "conflict",
          `Model '${meta.name}' version ${meta.version} here has sha256 ${known.sha256}, not ${meta.sha256}`,
        );
      }
      await this.validate(meta.name, bytes);
      const sha = await sha256(bytes);
      if (sha !== meta.sha256) {
        throw new RegistryError(
          "invalid_model",
          `Model '${meta.name}' version ${meta.version}: sha256 ${sha}, meta says ${meta.sha256}`,
        );
      }
      await this.store.putVersion(meta, bytes);
      const model = this.state.get(meta.name) ?? { name: meta.name, active: null, versions: [] };
      model.versions = [...model.versions, meta].sort((a, b) => a.version - b.version);
      this.state.set(meta.name, model);
      this.emit({ type: "added", meta });
      return { meta, added: true };
    });
  }

  /** Name, size and graph checks of a candidate, then the `verify` hook; returns what inspectYolo found. */
  private async validate(name: string, bytes: Uint8Array): Promise<YoloInfo> {
    if (!MODEL_NAME.test(name)) {
      throw new RegistryError("invalid_name", `Model name '${name}' must match ${MODEL_NAME}`);
    }
    if (bytes.length > this.options.maxBytes) {
      throw new RegistryError(
        "too_large",
        `Model is ${bytes.length} bytes; the limit is ${this.options.maxBytes}`,
      );
    }
    try {
      const info = inspectYolo(OnnxModel.parse(bytes));
      await this.options.verify?.(bytes, info);
      return info;
    } catch (err) {
      throw new RegistryError("invalid_model", (err as Error).message);
    }
  }

  private async addLocked(name: string, bytes: Uint8Array, options: AddOptions): Promise<VersionMeta> {
    const info = await this.validate(name, bytes);
    if (options.parent != null) this.version(name, options.parent);
    const meta = await this.store.addVersion(name, bytes, {
      sha256: await sha256(bytes),
      size: bytes.length,
      created: new Date().toISOString(),
      parent: options.parent ?? null,
      source: options.source,
      metrics: options.metrics ?? null,
      nc: info.nc,
      names: info.names,
      input_height: info.inputHeight,
      input_width: info.inputWidth,
    });
    const model = this.state.get(name) ?? { name, active: null, versions: [] };
    model.versions.push(meta);
    this.state.set(name, model);
    this.emit({ type: "added", meta });
    return meta;
  }

  private async activateLocked(meta: VersionMeta): Promise<VersionMeta> {
    const model = this.state.get(meta.name)!;
    const previous = model.active;
    if (previous === meta.version) return meta;
    const bytes = await this.read(meta.name, meta.version);
    let prepared: PreparedActivation | void;
    try {
      prepared = await this.activator(meta, bytes);
    } catch (err) {
      const why = (err as Error).message;
      throw new RegistryError("invalid_model", `Cannot serve '${meta.name}' version ${meta.version}: ${why}`);
    }
    try {
      await this.store.setActive(meta.name, meta.version);
    } catch (err) {
      await prepared?.discard();
      throw err;
    }
    model.active = meta.version;
    await prepared?.commit();
    this.emit({ type: "activated", meta, previous });
    return meta;
  }

  private async removeLocked(name: string, version: number): Promise<void> {
    this.version(name, version);
    const model = this.state.get(name)!;
    if (model.active === version) {
      throw new RegistryError(
        "conflict",
        `Version ${version} of '${name}' is active; activate another one first`,
      );
    }
    await this.store.deleteVersion(name, version);
    model.versions = model.versions.filter((v) => v.version !== version);
    this.emit({ type: "deleted", name, version });
  }

  private emit(event: RegistryEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Mutations run one at a time, in call order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }
}

export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

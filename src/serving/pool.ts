import type { Backend } from "./backend.ts";
import { DEFAULT_LOAD_TIMEOUT_MS, LoadedModel, type ModelRef } from "./loaded_model.ts";
import { readModelSpec } from "./model_spec.ts";
import { DEFAULT_MAX_QUEUE } from "./session_queue.ts";

/** A model version lent to one request; `release()` must be called when the request is done with it. */
export interface Lease {
  model: LoadedModel;
  release(): Promise<void>;
}

/** A loaded, warmed-up version waiting to be served (see {@link ModelPool.prepare}). */
export interface PreparedSwap {
  commit(): Promise<ModelRef>;
  discard(): Promise<void>;
}

/**
 * The active version of every served model, by name. `swap` builds and warms the new session before switching,
 * so requests never see a half-loaded model, and in-flight requests finish on the version they started with.
 */
export class ModelPool {
  private readonly active = new Map<string, LoadedModel>();
  private readonly swapping = new Map<string, Promise<unknown>>();

  constructor(
    readonly backend: Backend,
    private readonly imgsz?: number,
    /** Most milliseconds a version may take to load and warm up (LoadedModel.create). */
    readonly loadTimeoutMs = DEFAULT_LOAD_TIMEOUT_MS,
    /** Requests each model may hold queued before more are shed (`--max-queue`, see SessionQueue). */
    readonly maxQueue = DEFAULT_MAX_QUEUE,
  ) {}

  /** Loads `onnx` as `name` version `version` and makes it active; on any error the old version stays. */
  swap(name: string, version: number, onnx: Uint8Array): Promise<ModelRef> {
    return this.serial(name, async () => (await this.load(name, version, onnx)).commit());
  }

  /**
   * Loads and warms up `onnx` as `name` version `version` without serving it: `commit()` switches to it,
   * `discard()` frees it. Lets the registry switch only once its active pointer is written.
   */
  prepare(name: string, version: number, onnx: Uint8Array): Promise<PreparedSwap> {
    return this.serial(name, () => this.load(name, version, onnx));
  }

  /** One load per name at a time, so versions become active in the order they were asked for. */
  private serial<T>(name: string, work: () => Promise<T>): Promise<T> {
    const run = (this.swapping.get(name) ?? Promise.resolve()).then(work);
    const settled = run.catch(() => {});
    this.swapping.set(name, settled);
    settled.then(() => this.swapping.get(name) === settled && this.swapping.delete(name));
    return run;
  }

  private async load(name: string, version: number, onnx: Uint8Array): Promise<PreparedSwap> {
    const ref = { name, version };
    const spec = readModelSpec(onnx, `model '${name}' v${version}`, this.imgsz);
    const next = await LoadedModel.create(ref, spec, this.backend, onnx, this.loadTimeoutMs, this.maxQueue);
    return {
      commit: async () => {
        const previous = this.active.get(name);
        this.active.set(name, next);
        await previous?.retire();
        return ref;
      },
      discard: () => next.retire(),
    };
  }

  /** Stops serving `name`; requests already running on it complete. Returns false when it was not served. */
  async remove(name: string): Promise<boolean> {
    const model = this.active.get(name);
    if (!model) return false;
    this.active.delete(name);
    await model.retire();
    return true;
  }

  lease(name: string): Lease | undefined {
    const model = this.active.get(name);
    if (!model) return undefined;
    model.acquire();
    let released = false;
    return {
      model,
      release: () => {
        if (released) return Promise.resolve();
        released = true;
        return model.releaseRef();
      },
    };
  }

  get(name: string): LoadedModel | undefined {
    return this.active.get(name);
  }

  list(): LoadedModel[] {
    return [...this.active.values()].sort((a, b) => a.ref.name.localeCompare(b.ref.name));
  }

  /** Requests queued for a session (admitted, not yet running), over all models (the /metrics queue depth). */
  queueDepth(): number {
    return this.list().reduce((n, m) => n + m.queued, 0);
  }

  /** Releases every session (server shutdown). */
  async close(): Promise<void> {
    const models = this.list();
    this.active.clear();
    await Promise.all(models.map((m) => m.retire()));
  }
}

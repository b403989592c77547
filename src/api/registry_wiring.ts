/**
 * Joins the registry to serving: activations swap the pool (build and warm up, switch once the active pointer is
 * written, drain), uploads must load
 * on the server's backend, `--model` files are registered at startup, and a restart serves what was active.
 */
import { FsStore } from "../registry/fs_store.ts";
import { Registry } from "../registry/registry.ts";
import type { Store } from "../registry/store.ts";
import { LoadedModel, type ModelRef } from "../serving/loaded_model.ts";
import { readModelSpec } from "../serving/model_spec.ts";
import type { ModelPool } from "../serving/pool.ts";

export interface RegistryConfig {
  dataDir: string;
  maxModelBytes: number;
  imgsz?: number;
}

/** Open the registry under `dataDir` (or on `store`, for tests) with the pool as its activator. */
export async function openServingRegistry(
  config: RegistryConfig,
  pool: ModelPool,
  store: Store = new FsStore(config.dataDir),
): Promise<Registry> {
  const registry = await Registry.open(store, {
    maxBytes: config.maxModelBytes,
    // A version that cannot run here must not enter the registry, even when it is not activated yet.
    verify: async (bytes) => {
      const ref = { name: "candidate", version: 0 };
      const model = await LoadedModel.create(
        ref,
        readModelSpec(bytes, "upload", config.imgsz),
        pool.backend.thisThread ?? pool.backend,
        bytes,
        pool.loadTimeoutMs,
      );
      await model.retire();
    },
  });
  registry.setActivator((meta, bytes) => pool.prepare(meta.name, meta.version, bytes));
  return registry;
}

/**
 * Startup: register each `--model` file (an unseen file becomes active only where nothing is active yet), or
 * `defaultPath` when there are no flags and the registry is empty; then load every persisted active version.
 */
export async function loadActiveModels(
  registry: Registry,
  pool: ModelPool,
  modelPaths: string[],
  defaultPath: string,
): Promise<ModelRef[]> {
  const paths = modelPaths.length > 0 || registry.models().length > 0 ? modelPaths : [defaultPath];
  for (const path of paths) await registry.registerFile(path);
  const served: ModelRef[] = [];
  for (const { name, active } of registry.models()) {
    if (active === null) continue;
    if (pool.get(name)?.ref.version !== active) {
      await pool.swap(name, active, await registry.read(name, active));
    }
    served.push({ name, version: active });
  }
  return served;
}

/**
 * Joins the registry to serving: activations swap the pool (build, warm up, switch, drain), uploads must load
 * on the server's backend, `--model` files are registered at startup, and a restart serves what was active.
 */
import { FsStore } from "../registry/fs_store.ts";
import { Registry } from "../registry/registry.ts";
import { LoadedModel, type ModelRef } from "../serving/loaded_model.ts";
import { readModelSpec } from "../serving/model_spec.ts";
import type { ModelPool } from "../serving/pool.ts";

export interface RegistryConfig {
  dataDir: string;
  maxModelBytes: number;
  imgsz?: number;
}

/** Open the registry under `dataDir` with the pool as its activator. */
export async function openServingRegistry(config: RegistryConfig, pool: ModelPool): Promise<Registry> {
  const registry = await Registry.open(new FsStore(config.dataDir), {
    maxBytes: config.maxModelBytes,
    // A version that cannot run here must not enter the registry, even when it is not activated yet.
    verify: async (bytes) => {
      const ref = { name: "candidate", version: 0 };
      const model = await LoadedModel.create(
        ref,
        readModelSpec(bytes, "upload", config.imgsz),
        pool.backend,
        bytes,
      );
      await model.retire();
    },
  });
  registry.setActivator(async (meta, bytes) => {
    await pool.swap(meta.name, meta.version, bytes);
  });
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

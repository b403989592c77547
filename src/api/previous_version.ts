/**
 * The capture policy's second opinion (`uncertain`): the model's previous version run on a frame the active
 * version served. The previous version is the highest version below the one that answered; its session is
 * loaded on first use and kept, at most one extra session per model (a newer previous version replaces it).
 * Runs in capture's queue worker, so it never delays an answer.
 */
import type { SecondOpinion } from "../capture/service.ts";
import { RegistryError } from "../registry/errors.ts";
import type { Registry } from "../registry/registry.ts";
import type { Backend } from "../serving/backend.ts";
import { detect } from "../serving/detector.ts";
import { LoadedModel } from "../serving/loaded_model.ts";
import { readModelSpec } from "../serving/model_spec.ts";
import { DEFAULT_DETECT_OPTIONS } from "../serving/postprocess.ts";

/** The version before `version` of `name` in the registry, or null. */
function previousVersion(registry: Registry, name: string, version: number): number | null {
  let state;
  try {
    state = registry.model(name);
  } catch (err) {
    // A model served from a file without the registry, or deleted meanwhile: no previous version to ask.
    if (err instanceof RegistryError && err.code === "not_found") return null;
    throw err;
  }
  const older = state.versions.map((v) => v.version).filter((v) => v < version);
  return older.length ? Math.max(...older) : null;
}

/** `imgsz`: the size serving runs models with a dynamic input at (--imgsz), as the pool does. */
export function previousVersionOpinion(registry: Registry, backend: Backend, imgsz?: number): SecondOpinion {
  const loaded = new Map<string, LoadedModel>();
  /** Versions that failed to load ("name vN"): not tried again on every frame; the first failure is logged. */
  const unloadable = new Set<string>();
  return async ({ model, version, image }) => {
    const previous = previousVersion(registry, model, version);
    if (previous === null || unloadable.has(`${model} v${previous}`)) return null;
    let session = loaded.get(model);
    if (session?.ref.version !== previous) {
      loaded.delete(model);
      await session?.retire();
      const what = `${model} v${previous}`;
      try {
        const bytes = await registry.read(model, previous);
        const spec = readModelSpec(bytes, what, imgsz);
        session = await LoadedModel.create({ name: model, version: previous }, spec, backend, bytes);
      } catch (err) {
        unloadable.add(what);
        throw err;
      }
      loaded.set(model, session);
    }
    return (await detect(session, image, DEFAULT_DETECT_OPTIONS)).detections;
  };
}

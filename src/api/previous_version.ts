/**
 * The capture policy's second opinion (`uncertain`): the model's previous version run on a frame the active
 * version served. The previous version is the highest version below the one that answered; its session is
 * loaded on first use and kept, at most one extra session per model (a newer previous version replaces it).
 * Runs in capture's queue worker, so it never delays an answer.
 */
import type { SecondOpinion } from "../capture/service.ts";
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
  } catch {
    return null;
  }
  const older = state.versions.map((v) => v.version).filter((v) => v < version);
  return older.length ? Math.max(...older) : null;
}

/** `imgsz`: the size serving runs models with a dynamic input at (--imgsz), as the pool does. */
export function previousVersionOpinion(registry: Registry, backend: Backend, imgsz?: number): SecondOpinion {
  const loaded = new Map<string, LoadedModel>();
  return async ({ model, version, image }) => {
    const previous = previousVersion(registry, model, version);
    if (previous === null) return null;
    let session = loaded.get(model);
    if (session?.ref.version !== previous) {
      loaded.delete(model);
      await session?.retire();
      const bytes = await registry.read(model, previous);
      const ref = { name: model, version: previous };
      session = await LoadedModel.create(
        ref,
        readModelSpec(bytes, `${model} v${previous}`, imgsz),
        backend,
        bytes,
      );
      loaded.set(model, session);
    }
    return (await detect(session, image, DEFAULT_DETECT_OPTIONS)).detections;
  };
}

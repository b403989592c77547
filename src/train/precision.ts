/**
 * Which precision a fine-tune trains in: the config's `amp` against the adapter. train.py turns AMP on where
 * CUDA runs it; here "auto" turns it on for hardware adapters with shader-f16 and leaves fallback adapters
 * (lavapipe: f16 is emulated on the CPU, no faster) in float32. An explicit `amp: true` runs wherever
 * shader-f16 exists, lavapipe included.
 * @module
 */
import type { FinetuneConfig } from "../config/finetune.ts";
import type { Gpu } from "../gpu/device.ts";
import { ensureRuntimeDir } from "../gpu/runtime_dir.ts";

/** What resolveAmp reads of an adapter. */
export type AdapterPrecision = Pick<Gpu, "adapterName" | "isFallback" | "hasF16">;

/** `amp: true` on an adapter without shader-f16. */
export class AmpUnavailableError extends Error {
  constructor(adapterName: string) {
    super(
      `amp: true needs an adapter with the shader-f16 feature; '${adapterName}' has none (use amp: false)`,
    );
    this.name = "AmpUnavailableError";
  }
}

/** Whether this run trains with mixed precision; throws AmpUnavailableError for `true` without shader-f16. */
export function resolveAmp(
  amp: FinetuneConfig["amp"],
  gpu: Pick<Gpu, "adapterName" | "isFallback" | "hasF16">,
) {
  if (amp === "auto") return gpu.hasF16 && !gpu.isFallback;
  if (amp && !gpu.hasF16) throw new AmpUnavailableError(gpu.adapterName);
  return amp;
}

let local: Promise<AdapterPrecision | null> | undefined;

/** This machine's WebGPU adapter as resolveAmp sees it, or null without one; asked once per process. */
export function localAdapterPrecision(): Promise<AdapterPrecision | null> {
  local ??= (async () => {
    ensureRuntimeDir();
    try {
      const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
      if (!adapter) return null;
      const info = adapter.info;
      return {
        adapterName: info.description || `${info.vendor} ${info.architecture} ${info.device}`.trim(),
        isFallback: info.isFallbackAdapter ?? false,
        hasF16: adapter.features.has("shader-f16"),
      };
    } catch {
      return null;
    }
  })();
  return local;
}

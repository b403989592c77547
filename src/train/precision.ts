/**
 * Which precision a fine-tune trains in: the config's `amp` against the adapter. train.py turns AMP on where
 * CUDA runs it; here "auto" turns it on for hardware adapters with shader-f16 and leaves fallback adapters
 * (lavapipe: f16 is emulated on the CPU, no faster) in float32. An explicit `amp: true` runs wherever
 * shader-f16 exists, lavapipe included.
 * @module
 */
import type { FinetuneConfig } from "../config/finetune.ts";
import type { Gpu } from "../gpu/device.ts";

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

/**
 * A fine-tune's dataset from captures: the base model's labelled captures written into the job's staging dir
 * in YOLO split layout, so labelled `val` captures are the split the job evaluates on (its map50, map50_95,
 * base_map50, base_map50_95) and labelled `train` captures what it trains on. On a fleet node, the fleet's labelled
 * captures of the model are in it too.
 */
import { writeCaptureDataset } from "../capture/dataset.ts";
import type { VersionMeta } from "../registry/store.ts";
import type { RouteContext } from "./app.ts";
import { ApiError } from "./errors.ts";

/** The writer for `base`'s captures, or null on a server without capture. */
export function capturesWriter(
  ctx: RouteContext,
  base: VersionMeta,
): ((dir: string) => Promise<void>) | null {
  const capture = ctx.capture;
  if (!capture) return null;
  return async (dir) => {
    const own = await writeCaptureDataset(capture.store, base.name, base.names, dir);
    // In a fleet, the frames other boxes captured and labelled too (only this node's while NATS is down).
    const shared = await ctx.fleet?.writeFleetCaptures(dir, base.name);
    if (own.train + (shared?.train ?? 0) === 0) {
      throw new ApiError(
        400,
        "no_labelled_captures",
        `Model '${base.name}' has no labelled train captures; label some at /v1/captures first`,
      );
    }
  };
}

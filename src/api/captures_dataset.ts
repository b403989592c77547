/**
 * A fine-tune's dataset from captures: the base model's labelled captures written into the job's staging dir
 * in YOLO split layout, so labelled `val` captures are the split the job evaluates on (its map50, map50_95,
 * base_map50, base_map50_95) and labelled `train` captures what it trains on.
 */
import { labelledCaptures, withReplay, writeCaptureDataset } from "../capture/dataset.ts";
import type { FinetuneConfig } from "../config/finetune.ts";
import type { VersionMeta } from "../registry/store.ts";
import type { RouteContext } from "./app.ts";
import { ApiError } from "./errors.ts";

/**
 * The writer for `base`'s captures, or null on a server without capture. With `replay_fraction` set, the train
 * captures are this round's (captured since `base` was made) plus that share drawn from earlier rounds'.
 */
export function capturesWriter(
  ctx: RouteContext,
  base: VersionMeta,
): ((dir: string, config: FinetuneConfig) => Promise<void>) | null {
  const capture = ctx.capture;
  if (!capture) return null;
  return async (dir, config) => {
    let captures = labelledCaptures(capture.store, base.name);
    if (config.replay_fraction !== undefined) {
      const train = captures.filter((c) => c.split !== "val");
      const replayed = withReplay(train, new Date(base.created), config.replay_fraction, Math.random);
      captures = [...replayed, ...captures.filter((c) => c.split === "val")];
    }
    const { train } = await writeCaptureDataset(
      capture.store,
      base.name,
      base.names,
      dir,
      undefined,
      captures,
    );
    if (train === 0) {
      throw new ApiError(
        400,
        "no_labelled_captures",
        `Model '${base.name}' has no labelled train captures; label some at /v1/captures first`,
      );
    }
  };
}

/**
 * A fine-tune's dataset from captures: the base model's labelled captures written into the job's staging dir
 * in YOLO split layout, so labelled `val` captures are the split the job evaluates on (its map50, map50_95,
 * base_map50, base_map50_95) and labelled `train` captures what it trains on. On a fleet node, the fleet's labelled
 * captures of the model are in it too.
 */
import { basename, join } from "node:path";
import { labelledCaptures, withReplay, writeCaptureDataset } from "../capture/dataset.ts";
import type { FinetuneConfig } from "../config/finetune.ts";
import type { VersionMeta } from "../registry/store.ts";
import { readLayout } from "../train/data/layout.ts";
import { Rng } from "../train/data/rng.ts";
import { DatasetError, type DatasetProblem } from "../train/data/problems.ts";
import type { RouteContext } from "./app.ts";
import { ApiError } from "./errors.ts";

/** Writes a fine-tune's dataset into the job's dataset dir. */
export type DatasetDirWriter = (dir: string, config: FinetuneConfig) => Promise<void>;

/** Where an upload sent with `source: captures` is unpacked before it joins the captures (a dot dir: unread). */
const UPLOAD_STAGING = ".upload";

/**
 * The captures plus an uploaded dataset in one job: the captures are written in split layout, the upload is
 * unpacked beside them and its images (with their labels) moved under `images/{train,val}/upload/`, its own val
 * split (if it has one) joining the captures' val split.
 */
export function withUpload(
  captures: DatasetDirWriter,
  upload: (dir: string) => Promise<void>,
): DatasetDirWriter {
  return async (dir, config) => {
    await captures(dir, config);
    const staged = join(dir, UPLOAD_STAGING);
    try {
      await Deno.mkdir(staged);
      await upload(staged);
      const problems: DatasetProblem[] = [];
      const layout = await readLayout(staged, 0, problems);
      if (problems.length) throw new DatasetError(problems);
      for (const [split, samples] of [["train", layout.train], ["val", layout.val]] as const) {
        for (const [i, sample] of samples.entries()) {
          // Numbered, so images of the same name in different folders of the upload stay apart.
          const file = `${i}_${basename(sample.imagePath)}`;
          const image = join(dir, "images", split, "upload", file);
          await Deno.mkdir(join(image, ".."), { recursive: true });
          await Deno.rename(sample.imagePath, image);
          if (sample.labelPath === null) continue;
          const label = join(dir, "labels", split, "upload", `${file.slice(0, file.lastIndexOf("."))}.txt`);
          await Deno.mkdir(join(label, ".."), { recursive: true });
          await Deno.rename(sample.labelPath, label);
        }
      }
    } finally {
      await Deno.remove(staged, { recursive: true }).catch(() => {});
    }
  };
}

/**
 * The writer for `base`'s captures, or null on a server without capture. With `replay_fraction` set, the train
 * captures are this round's (captured since `base` was made) plus that share drawn from earlier rounds'.
 */
export function capturesWriter(
  ctx: RouteContext,
  base: VersionMeta,
): DatasetDirWriter | null {
  const capture = ctx.capture;
  if (!capture) return null;
  return async (dir, config) => {
    let captures = labelledCaptures(capture.store, base.name);
    if (config.replay_fraction !== undefined) {
      const train = captures.filter((c) => c.split !== "val");
      // Drawn with the job's seed, so a config replays the same captures again.
      const rng = new Rng(config.seed);
      const replayed = withReplay(train, new Date(base.created), config.replay_fraction, () => rng.random());
      captures = [...replayed, ...captures.filter((c) => c.split === "val")];
    }
    const own = await writeCaptureDataset(
      capture.store,
      base.name,
      base.names,
      dir,
      undefined,
      captures,
    );
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

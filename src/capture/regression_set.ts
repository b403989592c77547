/**
 * A model's regression set: images it must keep getting right (an uploaded YOLO dataset, or a snapshot of its
 * labelled val captures), and how much mAP@0.5:0.95 a fine-tune may lose on them and still be activated under
 * `if_better`. One directory per model under `<captures>/regression/`: a new set is staged beside it and
 * renamed into place, so a reader sees the old set or the new one, never a half-written one.
 */
import { join } from "node:path";
import { z } from "zod";
import { writeJsonAtomic } from "../registry/atomic.ts";

/** How much mAP@0.5:0.95 on the regression set a result may lose (the default). */
export const DEFAULT_MAX_REGRESSION = 0.01;
const STAGING = ".staging-";

export const RegressionSetMetaSchema = z.object({
  source: z.enum(["upload", "captures"]),
  images: z.number().int(),
  max_regression: z.number().min(0).max(1),
  created: z.string(),
});
export type RegressionSetMeta = z.infer<typeof RegressionSetMetaSchema>;

export interface RegressionSet extends RegressionSetMeta {
  /** The YOLO-layout dataset directory. */
  dir: string;
}

export class RegressionSets {
  private constructor(private readonly root: string) {}

  /** Opens the sets under `root`, removing what an interrupted replacement left. */
  static async open(root: string): Promise<RegressionSets> {
    await Deno.mkdir(root, { recursive: true });
    for await (const entry of Deno.readDir(root)) {
      if (entry.name.startsWith(".")) await Deno.remove(join(root, entry.name), { recursive: true });
    }
    return new RegressionSets(root);
  }

  async get(model: string): Promise<RegressionSet | null> {
    const dir = join(this.root, model);
    try {
      const meta = RegressionSetMetaSchema.parse(JSON.parse(await Deno.readTextFile(join(dir, "meta.json"))));
      return { ...meta, dir: join(dir, "dataset") };
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  }

  /**
   * Replaces `model`'s set with what `fill(datasetDir)` writes (it validates and returns the image count);
   * when `fill` throws, the old set stays.
   */
  async replace(
    model: string,
    source: RegressionSetMeta["source"],
    maxRegression: number,
    fill: (dir: string) => Promise<number>,
  ): Promise<RegressionSetMeta> {
    const staging = join(this.root, `${STAGING}${crypto.randomUUID()}`);
    const old = join(this.root, `.old-${crypto.randomUUID()}`);
    try {
      await Deno.mkdir(join(staging, "dataset"), { recursive: true });
      const images = await fill(join(staging, "dataset"));
      const meta = { source, images, max_regression: maxRegression, created: new Date().toISOString() };
      await writeJsonAtomic(join(staging, "meta.json"), meta);
      const target = join(this.root, model);
      await Deno.rename(target, old).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
      await Deno.rename(staging, target);
      return meta;
    } finally {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
      await Deno.remove(old, { recursive: true }).catch(() => {});
    }
  }

  /** Deletes `model`'s set; false when it had none. */
  async remove(model: string): Promise<boolean> {
    const old = join(this.root, `.old-${crypto.randomUUID()}`);
    try {
      await Deno.rename(join(this.root, model), old);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
    await Deno.remove(old, { recursive: true });
    return true;
  }
}

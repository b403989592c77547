/**
 * Images/s of the training data loader on the synthetic shapes dataset at imgsz 256, batch 16: letterbox only
 * (cached after the first epoch) and with YOLOv5's augmentation (mosaic, random_perspective, HSV, flips). The
 * augmented rate bounds the whole fine-tune step rate when augment is on, since the loader runs on the CPU.
 */
import { loadDataset } from "../train/data/dataset.ts";
import { BatchLoader } from "../train/data/loader.ts";
import { SYNTH_CLASSES, writeSynthDataset } from "../train/synth.ts";

const IMAGES = 64, IMGSZ = 256, BATCH = 16;

export async function bench(): Promise<Record<string, unknown>> {
  const dir = await Deno.makeTempDir();
  try {
    await writeSynthDataset(dir, { n: IMAGES, imgsz: IMGSZ, seed: 1 });
    const ds = await loadDataset(dir, { nc: SYNTH_CLASSES.length });
    const rate = async (augment: boolean) => {
      const loader = new BatchLoader(ds.train, {
        imgsz: IMGSZ,
        batchSize: BATCH,
        shuffle: true,
        augment,
        seed: 1,
      });
      for await (const _ of loader.epoch(0)); // fills the decoded-image cache
      const t0 = performance.now();
      for await (const _ of loader.epoch(1));
      return IMAGES / ((performance.now() - t0) / 1000);
    };
    return {
      imgsz: IMGSZ,
      batch: BATCH,
      images_per_s_letterbox: Number((await rate(false)).toFixed(1)),
      images_per_s_augment: Number((await rate(true)).toFixed(1)),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

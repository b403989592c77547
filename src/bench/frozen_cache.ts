/**
 * Fast adaptation benchmark: fine-tune images/s of a yolov5n-architecture model at 320, batch 8, augmentation
 * off, with every layer trained, with layers 0-9 frozen (whole forward each step), and with layers 0-9 frozen and
 * their features cached (src/train/frozen_cache.ts); the speed-up is cached vs frozen. Images/s count whole
 * iterations (data loading, step, optimizer, readback) after a first warm-up epoch; the cache fill is reported
 * separately, since it is paid once per job.
 */
import { parseFinetuneConfig } from "../config/finetune.ts";
import { getGpu } from "../gpu/device.ts";
import { loadDataset } from "../train/data/dataset.ts";
import { FinetuneSession } from "../train/finetune.ts";
import { newModel } from "../train/new_model.ts";
import { writeSynthDataset } from "../train/synth.ts";

const IMGSZ = 320, BATCH = 8, IMAGES = 8, EPOCHS = 3;

export async function bench(): Promise<Record<string, unknown>> {
  const gpu = await getGpu();
  const dir = await Deno.makeTempDir({ prefix: "kestrel-bench-" });
  try {
    await writeSynthDataset(dir, { n: IMAGES, imgsz: IMGSZ, seed: 1 });
    const { train } = await loadDataset(dir, { nc: 3 });
    const model = newModel({ nc: 3, depth: 0.33, width: 0.25, imgsz: IMGSZ });
    const measure = async (freeze: number, frozenCache: boolean) => {
      const config = parseFinetuneConfig({
        imgsz: IMGSZ,
        batch_size: BATCH,
        epochs: EPOCHS,
        freeze,
        augment: false,
        shuffle: false,
        val_fraction: 0,
      });
      const session = await FinetuneSession.create({ gpu, model, config, train, frozenCache });
      let images = 0, seconds = 0;
      try {
        await session.train({
          onIteration: (r) => {
            if (r.line.epoch === 0) return;
            images += r.images;
            seconds += r.seconds;
          },
        });
        return { imagesPerSecond: images / seconds, cacheSeconds: session.cacheSeconds };
      } finally {
        // The next configuration measures without this one's buffers (and cache) still held.
        session.destroy();
      }
    };
    const all = await measure(0, false);
    const frozen = await measure(10, false);
    const cached = await measure(10, true);
    return {
      adapter: gpu.adapterName,
      model: `yolov5n architecture (nc 3) at ${IMGSZ}, batch ${BATCH}`,
      all_layers_images_per_second: all.imagesPerSecond,
      freeze10_images_per_second: frozen.imagesPerSecond,
      freeze10_cached_images_per_second: cached.imagesPerSecond,
      cache_speedup: cached.imagesPerSecond / frozen.imagesPerSecond,
      cache_fill_seconds: cached.cacheSeconds,
      cache_fill_images: IMAGES,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

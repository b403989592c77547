/**
 * Training and validation batches, as YOLOv5's LoadImagesAndLabels + collate_fn build them (rect off): each image
 * letterboxed to the imgsz square, labels normalised to that square, batches in sorted file order unless shuffled
 * (a seeded permutation per epoch), the last batch possibly smaller (no drop_last). With `augment`: mosaic (and
 * mixup) or letterbox + random_perspective, then hsv, flipud and fliplr, from the hyps, drawn from a seeded Rng
 * (see rng.ts for why the draws cannot be Python's).
 */
import type { Letterbox } from "../../image/letterbox.ts";
import { augmentHsv } from "./augment_color.ts";
import { flipLr, flipUd } from "./flip.ts";
import { randomPerspective } from "./augment_geometry.ts";
import type { Sample } from "./dataset.ts";
import { type AugmentHyp, SCRATCH_LOW_AUGMENT } from "./hyp.ts";
import {
  ImageStore,
  letterboxLabels,
  type PlanarImage,
  toNormalized,
  unpadded,
  writeTensor,
} from "./images.ts";
import { mixup } from "./mixup.ts";
import { loadMosaic } from "./mosaic.ts";
import { Rng, type RngState } from "./rng.ts";

export interface LoaderOptions {
  imgsz: number;
  batchSize: number;
  shuffle: boolean;
  augment: boolean;
  seed?: number;
  /** missing keys take hyp.scratch-low's values (a config's hyp may carry only the loss/optimizer keys) */
  hyp?: Partial<AugmentHyp>;
  /** Most bytes of decoded images kept between epochs (default DEFAULT_IMAGE_CACHE_BYTES). */
  cacheBudgetBytes?: number;
  /**
   * false: batches carry labels and samples but no pixels (`images` empty), for a step that reads cached features
   * instead (frozen_cache.ts); the float conversion would otherwise take CPU from a CPU adapter every epoch.
   */
  pixels?: boolean;
  /** Decoded images shared with other loaders of the same imgsz and augment (default: this loader's own). */
  store?: ImageStore;
}

/**
 * Where an epoch's batch stream stands between two batches: the next batch's index and the random state its
 * draws start from. An epoch continued from it yields exactly the batches the uninterrupted stream would have.
 */
export interface EpochCursor {
  batch: number;
  rng: RngState;
}

export interface Batch {
  /** (size, 3, imgsz, imgsz) RGB in [0, 1]; empty from a loader with `pixels: false` */
  images: Float32Array;
  /** rows [image index in batch, cls, cx, cy, w, h], normalised to the imgsz square */
  targets: Float32Array;
  size: number;
  samples: Sample[];
  /** where each image sits in its square; null for a mosaic */
  letterboxes: (Letterbox | null)[];
  /** where the epoch continues after this batch (a mid-epoch checkpoint keeps it) */
  next: EpochCursor;
}

interface Item {
  img: PlanarImage;
  labels: Float32Array;
  box: Letterbox | null;
}

export class BatchLoader {
  private readonly store: ImageStore;
  private readonly hyp: AugmentHyp;

  constructor(readonly samples: readonly Sample[], readonly opts: LoaderOptions) {
    if (opts.store && (opts.store.imgsz !== opts.imgsz || opts.store.augment !== opts.augment)) {
      throw new Error(
        `BatchLoader: a shared image store of imgsz ${opts.store.imgsz}, augment ${opts.store.augment} ` +
          `cannot serve imgsz ${opts.imgsz}, augment ${opts.augment}`,
      );
    }
    this.store = opts.store ?? new ImageStore(opts.imgsz, opts.augment, opts.cacheBudgetBytes);
    this.hyp = { ...SCRATCH_LOW_AUGMENT, ...opts.hyp };
  }

  get batchesPerEpoch(): number {
    return Math.ceil(this.samples.length / this.opts.batchSize);
  }

  /**
   * The batches of one epoch; the same (seed, epoch) always gives the same batches. From a cursor a batch of
   * this epoch carried, the rest of them: the order is drawn again from the epoch's seed, the augmentation
   * draws continue from the cursor's state.
   */
  async *epoch(epoch = 0, from?: EpochCursor): AsyncGenerator<Batch> {
    const rng = new Rng(((this.opts.seed ?? 0) * 1_000_003 + epoch) >>> 0);
    const order = this.samples.map((_, i) => i);
    if (this.opts.shuffle) rng.shuffle(order);
    if (from) rng.restore(from.rng);
    const { imgsz, batchSize } = this.opts;
    const plane = this.opts.pixels === false ? 0 : 3 * imgsz * imgsz;
    for (let start = (from?.batch ?? 0) * batchSize; start < order.length; start += batchSize) {
      const indices = order.slice(start, start + batchSize);
      const images = new Float32Array(indices.length * plane);
      const targets: number[] = [];
      const letterboxes: (Letterbox | null)[] = [];
      for (let b = 0; b < indices.length; b++) {
        const item = await this.item(indices[b], rng);
        if (plane) writeTensor(item.img, images, b * plane);
        for (let o = 0; o < item.labels.length; o += 5) targets.push(b, ...item.labels.subarray(o, o + 5));
        letterboxes.push(item.box);
      }
      yield {
        images,
        targets: Float32Array.from(targets),
        size: indices.length,
        samples: indices.map((i) => this.samples[i]),
        letterboxes,
        next: { batch: start / batchSize + 1, rng: rng.state() },
      };
    }
  }

  private async item(index: number, rng: Rng): Promise<Item> {
    const { imgsz, augment } = this.opts;
    const hyp = this.hyp;
    let img: PlanarImage, rows: Float32Array, box: Letterbox | null = null;
    if (augment && rng.random() < hyp.mosaic) {
      const tile = async (i: number) => ({
        img: unpadded(await this.store.load(this.samples[i])),
        labels: this.samples[i].labels,
      });
      ({ img, rows } = await loadMosaic(index, this.samples.length, imgsz, tile, hyp, rng));
      if (rng.random() < hyp.mixup) {
        const other = await loadMosaic(
          rng.int(this.samples.length),
          this.samples.length,
          imgsz,
          tile,
          hyp,
          rng,
        );
        ({ img, rows } = mixup({ img, rows }, other, rng));
      }
    } else {
      const loaded = await this.store.load(this.samples[index]);
      box = loaded.box;
      img = augment ? { ...loaded.square, data: loaded.square.data.slice() } : loaded.square;
      rows = letterboxLabels(this.samples[index].labels, loaded.box);
      if (augment) ({ img, rows } = randomPerspective(img, rows, hyp, rng));
    }
    const labels = toNormalized(rows, img.width, img.height);
    if (augment) {
      augmentHsv(img, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v, rng);
      if (rng.random() < hyp.flipud) flipUd(img, labels);
      if (rng.random() < hyp.fliplr) flipLr(img, labels);
    }
    return { img, labels, box };
  }
}

/**
 * Fast adaptation on slow adapters (issue 6), TrainProgram's cached mode: with a frozen prefix and augmentation
 * off, the frozen layers compute the same features for an image every epoch. The cache runs them once per image
 * up front and keeps their outputs that the trainable layers read (the boundary tensors) in GPU buffers; per
 * step the program only copies a batch's cached features into place and runs the trainable forward, the loss and
 * the backward (TrainProgram.encodeStep).
 * Exactness: the frozen layers of a fused export have no batch statistics, so an image's features do not depend
 * on its batch; graphs with BatchNormalization (unfused models) are refused.
 * @module
 */
import type { GpuMemory } from "../gpu/memory.ts";
import type { TrainGraph } from "../onnx/graph.ts";
import { batchStride, recordDispatches } from "../ops/context.ts";
import type { Dispatch, TensorView } from "../ops/types.ts";
import type { Sample } from "./data/dataset.ts";
import type { ImageStore } from "./data/images.ts";
import { type Batch, BatchLoader } from "./data/loader.ts";
import { dataInputs } from "./program_memory.ts";

/** GPU memory the cache may take by default (lavapipe's "GPU memory" is the host's RAM). */
const DEFAULT_CACHE_BUDGET = 1 << 30;

/** The cache cannot serve this run (features over the budget, or batch-dependent): train the whole forward. */
export class CacheUnavailableError extends Error {
  override name = "CacheUnavailableError";
}

export interface FrozenCacheOptions {
  /** The training images; each one's features are cached once, letterboxed and unaugmented. */
  samples: readonly Sample[];
  /** Most bytes the feature cache may take (default 1 GiB, and never past the adapter's maxBufferSize). */
  budgetBytes?: number;
  /** Decoded images (augment off) the fill shares with the run's other loaders, so each image is decoded once. */
  store?: ImageStore;
}

/** Which frozen outputs the trainable part reads, and their floats per image. */
export interface CacheBoundaries {
  names: string[];
  perImage: number[];
  /** The trainable part also reads the image itself: the program uploads it every step. */
  needsImage: boolean;
}

/** What filling the cache runs: a program's image upload and its frozen prefix (TrainProgram), whose outputs are
 * its cache's boundary views. */
export interface FrozenPrefix {
  readonly device: GPUDevice;
  readonly options: { imgsz: number; batch: number };
  readonly prefixDispatches: Dispatch[];
  readonly cache?: { readonly boundaries: readonly { readonly view: TensorView }[] };
  setImages(images: Float32Array, count: number): void;
}

interface Boundary {
  view: TensorView;
  /** floats per image */
  size: number;
  cache: GPUBuffer;
}

/**
 * The boundary tensors of a program whose nodes `inTail` run every step, checked against the memory budget
 * before anything is allocated; throws CacheUnavailableError where the cache cannot serve.
 */
export function cacheBoundaries(
  device: GPUDevice,
  graph: TrainGraph,
  shapes: Map<string, number[]>,
  inTail: (node: number) => boolean,
  options: FrozenCacheOptions,
): CacheBoundaries {
  const bn = graph.nodes.find((n) => n.op === "batchnorm");
  if (bn) {
    throw new CacheUnavailableError(
      `FrozenFeatureCache: ${bn.name} is a BatchNormalization: in train mode even frozen layers normalise ` +
        `with batch statistics and update running statistics, so features depend on the batch`,
    );
  }
  const images = options.samples.length;
  const tailInputs = new Set(graph.nodes.filter((_, i) => inTail(i)).flatMap(dataInputs));
  const names = graph.nodes.filter((n, i) => !inTail(i) && tailInputs.has(n.y)).map((n) => n.y);
  const perImage = names.map((t) => shapes.get(t)!.slice(1).reduce((a, b) => a * b, 1));
  const limit = Math.min(device.limits.maxBufferSize, options.budgetBytes ?? DEFAULT_CACHE_BUDGET);
  const total = perImage.reduce((a, b) => a + b, 0) * 4 * images;
  if (perImage.some((n) => n * 4 * images > device.limits.maxBufferSize) || total > limit) {
    throw new CacheUnavailableError(
      `FrozenFeatureCache: caching the frozen features of ${images} images needs ${total} bytes, over the ` +
        `budget of ${limit} (or one tensor over maxBufferSize ${device.limits.maxBufferSize})`,
    );
  }
  return { names, perImage, needsImage: tailInputs.has(graph.input) };
}

/** The cached features of every training image, and which images the next step reads. */
export class FrozenFeatureCache {
  readonly boundaries: Boundary[];
  /** GPU bytes the cache holds (0 where it reads another cache's storage). */
  readonly bytes: number;
  readonly needsImage: boolean;
  /** Seconds the caching pass took. */
  seconds = 0;
  readonly #index: Map<string, number>;
  #pending: number[] = [];

  /**
   * `storage`: a cache of the same boundaries and samples whose buffers this one reads instead of its own
   * (a program of the same graph at another batch size restores from it into its own boundary tensors).
   */
  constructor(
    memory: GpuMemory,
    plan: CacheBoundaries,
    value: (tensor: string) => TensorView,
    readonly samples: readonly Sample[],
    storage?: FrozenFeatureCache,
  ) {
    if (
      storage &&
      (storage.samples !== samples || storage.boundaries.map((b) => b.size).join() !== plan.perImage.join())
    ) {
      throw new Error("FrozenFeatureCache: the shared cache holds other samples or boundary tensors");
    }
    this.needsImage = plan.needsImage;
    this.boundaries = plan.names.map((t, k) => ({
      view: value(t),
      size: plan.perImage[k],
      cache: storage?.boundaries[k].cache ??
        memory.storage(plan.perImage[k] * samples.length * 4, `frozen cache ${t}`),
    }));
    this.bytes = storage ? 0 : this.boundaries.reduce((s, b) => s + b.cache.size, 0);
    this.#index = new Map(samples.map((s, i) => [s.imagePath, i]));
  }

  /**
   * Runs the frozen forward over every sample once (letterboxed, in order, in batches of the first prefix's
   * size) and stores its boundary outputs. Each batch runs on the prefix planned for its size (a short last batch
   * on a program of its own, TrainProgram.createSharing), else padded on the first.
   */
  async fill(prefixes: FrozenPrefix[], store?: ImageStore): Promise<void> {
    const { device, options } = prefixes[0];
    const t0 = performance.now();
    const loader = new BatchLoader(this.samples, {
      imgsz: options.imgsz,
      batchSize: options.batch,
      shuffle: false,
      augment: false,
      store,
    });
    for await (const batch of loader.epoch()) {
      const prefix = prefixes.find((p) => p.options.batch === batch.size) ?? prefixes[0];
      const views = prefix.cache!.boundaries.map((b) => b.view);
      prefix.setImages(batch.images, batch.size);
      const encoder = device.createCommandEncoder({ label: "frozen cache fill" });
      const pass = encoder.beginComputePass({ label: "frozen prefix" });
      recordDispatches(pass, prefix.prefixDispatches);
      pass.end();
      batch.samples.forEach((s, b) => {
        const index = this.#index.get(s.imagePath)!;
        this.boundaries.forEach(({ size, cache }, k) => {
          encoder.copyBufferToBuffer(views[k].buffer, at(views[k], b), cache, index * size * 4, size * 4);
        });
      });
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
    }
    this.seconds = (performance.now() - t0) / 1000;
  }

  /** Selects the cached images the next step reads (the batch's samples, in batch order). */
  select(batch: Batch): void {
    this.#pending = batch.samples.map((s) => {
      const index = this.#index.get(s.imagePath);
      if (index === undefined) {
        throw new Error(`FrozenFeatureCache: '${s.name}' is not in the cached samples`);
      }
      return index;
    });
  }

  /** Copies the selected images' features into the boundary tensors, ahead of the step's compute pass. */
  encodeRestore(encoder: GPUCommandEncoder): void {
    this.#pending.forEach((index, b) => {
      for (const { view, size, cache } of this.boundaries) {
        encoder.copyBufferToBuffer(cache, index * size * 4, view.buffer, at(view, b), size * 4);
      }
    });
  }
}

/** Byte offset of batch item b of a view. */
function at(view: TensorView, b: number): number {
  return (view.offset + b * batchStride(view)) * 4;
}

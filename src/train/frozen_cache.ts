/**
 * Fast adaptation on slow adapters (issue 6): with a frozen prefix and augmentation off, the frozen layers compute
 * the same features for an image every epoch. This training step runs them once per image up front, keeps their
 * outputs that the trainable layers read (the boundary tensors) in GPU cache buffers, and per step only copies a
 * batch's cached features into place and runs the trainable forward, the loss and the backward: one submit, loss
 * items the only readback, as for TrainProgram.
 *
 * It plans the graph with the same pieces as TrainProgram (program_memory.ts, program_ops.ts, loss.ts) because it
 * needs what TrainProgram keeps private: the per-node forward dispatches and the boundary tensors' views.
 * Exactness: the frozen layers of a fused export have no batch statistics, so an image's features do not depend
 * on its batch; graphs with BatchNormalization (unfused models) are refused.
 * @module
 */
import { createStorage } from "../gpu/buffers.ts";
import { ProgramCache } from "../gpu/programs.ts";
import { buildTrainGraph, inferShapes, type TrainGraph } from "../onnx/graph.ts";
import type { OnnxModel } from "../onnx/model.ts";
import { createOpContext, recordDispatches } from "../ops/context.ts";
import type { Dispatch, TensorView } from "../ops/types.ts";
import type { Sample } from "./data/dataset.ts";
import { type Batch, BatchLoader } from "./data/loader.ts";
import type { StepProgram } from "./loop.ts";
import { type LossItems, type LossPlan, planLoss } from "./loss.ts";
import { lossSettings } from "./loss_settings.ts";
import { buildParamLayout, frozenParams, packParams, type ParamLayout } from "./param_layout.ts";
import { accKey, dataInputs, gradientTensors, planMemory } from "./program_memory.ts";
import { planNode } from "./program_ops.ts";
import type { ProgramOptions } from "./program.ts";

const DEFAULT_TARGETS_PER_IMAGE = 256;
/** GPU memory the cache may take by default (lavapipe's "GPU memory" is the host's RAM). */
const DEFAULT_CACHE_BUDGET = 1 << 30;

/** The cache cannot serve this run (features over the budget, or batch-dependent): train the whole forward. */
export class CacheUnavailableError extends Error {
  override name = "CacheUnavailableError";
}

export interface CacheOptions extends ProgramOptions {
  /** Most bytes the feature cache may take (default 1 GiB, and never past the adapter's maxBufferSize). */
  cacheBudgetBytes?: number;
}

interface Boundary {
  view: TensorView;
  /** floats per image */
  size: number;
  cache: GPUBuffer;
}

export class FrozenCacheProgram implements StepProgram {
  readonly params: GPUBuffer;
  readonly grads: GPUBuffer;
  readonly loss: LossPlan;
  /** Forward of the frozen nodes, run once per batch of images while filling the cache. */
  readonly prefixDispatches: Dispatch[] = [];
  /** Per step: forward of the trainable nodes, loss, backward. */
  readonly stepDispatches: Dispatch[] = [];
  readonly boundaries: Boundary[] = [];
  /** GPU bytes the feature cache holds. */
  readonly cacheBytes: number;
  /** Seconds the caching pass took. */
  cacheSeconds = 0;
  readonly #input: TensorView;
  /** The trainable part also reads the image itself: upload it every step. */
  readonly #needsImage: boolean;
  readonly #clears: GPUBuffer[];
  readonly #staging: GPUBuffer;
  readonly #index: Map<string, number>;
  #pending: number[] = [];

  private constructor(
    readonly device: GPUDevice,
    readonly graph: TrainGraph,
    readonly layout: ParamLayout,
    readonly options: CacheOptions,
    model: OnnxModel,
    readonly samples: readonly Sample[],
  ) {
    const { batch, imgsz, hyp } = options;
    if (!hyp) throw new Error("FrozenCacheProgram: options.hyp (the loss hyperparameters) is required");
    const shapes = inferShapes(model, graph, batch, imgsz, imgsz);
    const trainable = new Set(layout.entries.filter((e) => !e.frozen).map((e) => e.name));
    const needsGrad = new Set([...gradientTensors(graph, trainable), ...graph.heads]);
    const tail = (i: number) => needsGrad.has(graph.nodes[i].y);
    const bn = graph.nodes.find((n) => n.op === "batchnorm");
    if (bn) {
      throw new CacheUnavailableError(
        `FrozenCacheProgram: ${bn.name} is a BatchNormalization: in train mode even frozen layers normalise ` +
          `with batch statistics and update running statistics, so features depend on the batch`,
      );
    }
    // The frozen outputs the trainable part reads, checked against the memory budget before anything is made.
    const tailInputs = new Set(graph.nodes.filter((_, i) => tail(i)).flatMap(dataInputs));
    this.#needsImage = tailInputs.has(graph.input);
    const boundaryNames = graph.nodes.filter((n, i) => !tail(i) && tailInputs.has(n.y)).map((n) => n.y);
    const perImage = boundaryNames.map((t) => shapes.get(t)!.slice(1).reduce((a, b) => a * b, 1));
    const limit = Math.min(device.limits.maxBufferSize, options.cacheBudgetBytes ?? DEFAULT_CACHE_BUDGET);
    const total = perImage.reduce((a, b) => a + b, 0) * 4 * samples.length;
    if (perImage.some((n) => n * 4 * samples.length > device.limits.maxBufferSize) || total > limit) {
      throw new CacheUnavailableError(
        `FrozenCacheProgram: caching the frozen features of ${samples.length} images needs ${total} bytes, ` +
          `over the budget of ${limit} (or one tensor over maxBufferSize ${device.limits.maxBufferSize})`,
      );
    }
    const ctx = createOpContext(device, options.programs ?? new ProgramCache(device));
    this.params = createStorage(device, layout.size * 4, "params");
    device.queue.writeBuffer(this.params, 0, packParams(model, layout));
    this.grads = createStorage(device, layout.size * 4, "grads");
    const order = graph.nodes.map((_, i) => i).reverse().filter(tail);
    const memory = planMemory(device, graph, shapes, needsGrad, order, graph.heads);
    this.#clears = memory.clearEachStep;
    this.#input = memory.values.get(graph.input)!;
    const heads = graph.heads.map((h) => memory.values.get(h)!);
    this.loss = planLoss(
      ctx,
      graph.yolo.layers.map((l, i) => ({
        logits: heads[i],
        grad: memory.grads.get(graph.heads[i])!,
        layer: {
          ny: heads[i].shape[2],
          nx: heads[i].shape[3],
          anchors: l.anchors.map(([w, h]) => [w / l.stride, h / l.stride] as [number, number]),
        },
      })),
      lossSettings(hyp, graph.heads.length, graph.yolo.nc, imgsz),
      batch,
      options.maxTargets ?? DEFAULT_TARGETS_PER_IMAGE * batch,
    );
    const backward: Dispatch[][] = [];
    const tailForward: Dispatch[] = [];
    const view = (buffer: GPUBuffer, name: string): TensorView => {
      const e = layout.byName.get(name)!;
      return { buffer, offset: e.offset, shape: e.shape };
    };
    graph.nodes.forEach((n, i) => {
      const plan = planNode(ctx, n, {
        value: (t) => memory.values.get(t)!,
        grad: (t) => memory.grads.get(t),
        accumulate: (t) => memory.accumulate.get(accKey(i, t)) ?? false,
        param: (name) => view(this.params, name),
        copied: (t) => memory.copies.has(t),
        paramGrad: (name) => (trainable.has(name) ? view(this.grads, name) : undefined),
      });
      (tail(i) ? tailForward : this.prefixDispatches).push(...plan.forward);
      backward[i] = plan.backward;
    });
    this.stepDispatches.push(...tailForward, ...this.loss.dispatches, ...order.flatMap((i) => backward[i]));

    boundaryNames.forEach((t, k) => {
      const bytes = perImage[k] * samples.length * 4;
      const cache = createStorage(device, bytes, `frozen cache ${t}`);
      this.boundaries.push({ view: memory.values.get(t)!, size: perImage[k], cache });
    });
    this.cacheBytes = this.boundaries.reduce((s, b) => s + b.cache.size, 0);
    this.#index = new Map(samples.map((s, i) => [s.imagePath, i]));
    this.#staging = device.createBuffer({
      label: "loss items staging",
      size: 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Plans the program and fills the cache: the frozen forward over every sample once, letterboxed, in order. */
  static async create(
    device: GPUDevice,
    model: OnnxModel,
    samples: readonly Sample[],
    options: CacheOptions,
  ): Promise<FrozenCacheProgram> {
    const graph = buildTrainGraph(model);
    const layout = buildParamLayout(model, graph, frozenParams(graph, options.freeze ?? 0));
    const program = new FrozenCacheProgram(device, graph, layout, options, model, samples);
    await program.#fill();
    return program;
  }

  async #fill(): Promise<void> {
    const t0 = performance.now();
    const loader = new BatchLoader(this.samples, {
      imgsz: this.options.imgsz,
      batchSize: this.options.batch,
      shuffle: false,
      augment: false,
    });
    for await (const batch of loader.epoch()) {
      this.#writeImages(batch);
      const encoder = this.device.createCommandEncoder({ label: "frozen cache fill" });
      const pass = encoder.beginComputePass({ label: "frozen prefix" });
      recordDispatches(pass, this.prefixDispatches);
      pass.end();
      batch.samples.forEach((s, b) => {
        const index = this.#index.get(s.imagePath)!;
        for (const { view, size, cache } of this.boundaries) {
          encoder.copyBufferToBuffer(view.buffer, this.#at(view, b), cache, index * size * 4, size * 4);
        }
      });
      this.device.queue.submit([encoder.finish()]);
      await this.device.queue.onSubmittedWorkDone();
    }
    this.cacheSeconds = (performance.now() - t0) / 1000;
  }

  /** Byte offset of batch item b of a view. */
  #at(view: TensorView, b: number): number {
    const stride = view.batchStride ?? view.shape.slice(1).reduce((x, y) => x * y, 1);
    return (view.offset + b * stride) * 4;
  }

  #writeImages(batch: Batch): void {
    this.device.queue.writeBuffer(this.#input.buffer, 0, batch.images as Float32Array<ArrayBuffer>);
  }

  load(batch: Batch): void {
    if (batch.size > this.options.batch) {
      throw new Error(`FrozenCacheProgram: batch of ${batch.size} images, planned for ${this.options.batch}`);
    }
    this.#pending = batch.samples.map((s) => {
      const index = this.#index.get(s.imagePath);
      if (index === undefined) {
        throw new Error(`FrozenCacheProgram: '${s.name}' is not in the cached samples`);
      }
      return index;
    });
    if (this.#needsImage) this.#writeImages(batch);
    this.loss.setTargets(batch.targets, batch.size);
  }

  encodeStep(encoder: GPUCommandEncoder): void {
    this.#pending.forEach((index, b) => {
      for (const { view, size, cache } of this.boundaries) {
        encoder.copyBufferToBuffer(cache, index * size * 4, view.buffer, this.#at(view, b), size * 4);
      }
    });
    for (const b of this.#clears) encoder.clearBuffer(b);
    const pass = encoder.beginComputePass({ label: "train step (cached frozen prefix)" });
    recordDispatches(pass, this.stepDispatches);
    pass.end();
    encoder.copyBufferToBuffer(this.loss.items, 0, this.#staging, 0, 16);
  }

  /** Frees the feature cache, the bulk of this program's memory (one copy per training image). */
  destroyCache(): void {
    for (const b of this.boundaries) b.cache.destroy();
  }

  async readItems(): Promise<LossItems> {
    await this.#staging.mapAsync(GPUMapMode.READ);
    const [box, obj, cls, loss] = new Float32Array(this.#staging.getMappedRange().slice(0));
    this.#staging.unmap();
    return { box, obj, cls, loss };
  }
}

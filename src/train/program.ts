/**
 * The training program of a YOLOv5 ONNX export for one (batch, imgsz): all buffers, uniforms and pipelines are
 * made once, when it is created (program_plan.ts); a step is one command encoder (gradient clears, then one
 * compute pass: forward, loss, backward in reverse graph order) whose only readback is the 4 loss floats. Weight gradients are ADDED into the
 * flat `grads` buffer (param_layout.ts), so successive steps accumulate until the optimizer zeroes them.
 * BatchNorm (unfused models) runs in PyTorch's train mode in a training program (batch statistics, running
 * statistics updated by every forward) and in eval mode in a forward-only one (running statistics normalise);
 * the running statistics live in the flat `buffers` buffer (param_layout.ts buildBufferLayout).
 *
 * With a frozen prefix and augmentation off the program can run in cached mode (createCached, frozen_cache.ts):
 * the frozen layers' outputs are computed once per training image, and a step starts from them.
 *
 * @example
 * ```ts
 * const program = TrainProgram.create(device, model, { batch: 8, imgsz: 320, hyp, freeze: 0 });
 * const items = await program.step(images, targets); // images: batch*3*320*320 RGB/255, targets: [b,c,x,y,w,h]*
 * // or, per iteration: program.load(batch); stepper.begin(enc, ...); program.encodeStep(enc);
 * // stepper.finish(enc, plan); submit; await program.readItems()   (stepper: optim/stepper.ts)
 * program.destroy(); // frees every GPU buffer the program made
 * ```
 * @module
 */
import { readF32 } from "../gpu/buffers.ts";
import { GpuMemory } from "../gpu/memory.ts";
import { ProgramCache } from "../gpu/programs.ts";
import type { OnnxModel } from "../onnx/model.ts";
import { buildTrainGraph, type TrainGraph } from "../onnx/graph.ts";
import { createOpContext, recordDispatches } from "../ops/context.ts";
import type { KernelFamily } from "../ops/kernel_family.ts";
import type { EmaSource } from "../optim/ema.ts";
import type { Dispatch, OpContext, TensorView } from "../ops/types.ts";
import type { Batch } from "./data/loader.ts";
import type { FrozenCacheOptions, FrozenFeatureCache } from "./frozen_cache.ts";
import type { LossItems, LossPlan } from "./loss.ts";
import {
  buildParamLayout,
  type FlatLayout,
  frozenParams,
  type ParamLayout,
  writeBackParams,
} from "./param_layout.ts";
import { planProgram, type ProgramOptions, type SharedWeights } from "./program_plan.ts";
import { shortBatchSize } from "./short_batch.ts";
import type { TargetRows } from "./targets.ts";
import { type HeadLayer, headLayer } from "./evaluate_decode.ts";

export class TrainProgram {
  /** Flat parameters (layout.size floats) the kernels read; the optimizer updates them in place. */
  readonly params: GPUBuffer;
  /** Flat weight gradients, same layout; added to by every step. Zero-initialised. Absent when not training. */
  readonly grads?: GPUBuffer;
  /** BatchNorm running means and variances (bufferLayout); absent when the model has no BatchNormalization. */
  readonly buffers?: GPUBuffer;
  readonly bufferLayout: FlatLayout;
  /** The image batch (batch, 3, imgsz, imgsz). */
  readonly input: TensorView;
  /** Raw head conv outputs (batch, na*no, ny, nx), P3 first. */
  readonly heads: TensorView[];
  /** Forward of every node, in graph order. */
  readonly forwardDispatches: Dispatch[];
  /** The part of forwardDispatches that computes no gradient-carrying tensor (a frozen prefix): the whole
   * forward minus these is what a cached-mode step runs. */
  readonly prefixDispatches: Dispatch[];
  readonly lossDispatches: Dispatch[];
  /** In recording order (reverse graph order). */
  readonly backwardDispatches: Dispatch[];
  readonly loss?: LossPlan;
  /** Bytes of values and gradients (program_memory.ts). */
  readonly memoryBytes: number;
  /** Bytes of op scratch: per-op buffers plus the transient slots shared by all ops (OpContext.transient). */
  readonly scratchBytes: number;
  /** The conv kernel family the program's convs run (src/ops/kernel_family.ts). */
  readonly kernels: KernelFamily;
  /** Owns every buffer of this program: destroy() frees them. */
  readonly #memory: GpuMemory;
  readonly #clears: GPUBuffer[];
  /** The forward a step runs: all of it, or in cached mode the nodes after the frozen prefix. */
  readonly #stepForward: Dispatch[];
  readonly #cache?: FrozenFeatureCache;
  #short?: TrainProgram;
  readonly #staging?: GPUBuffer;
  readonly #zeros: Float32Array<ArrayBuffer>;
  /** BatchNorm statistics must cover only the real images of a short batch. */
  readonly #setCounts: ((count: number) => void)[];
  #count: number;

  private constructor(
    readonly device: GPUDevice,
    readonly graph: TrainGraph,
    readonly layout: ParamLayout,
    readonly options: ProgramOptions,
    ctx: OpContext & { scratchBytes(): number },
    model: OnnxModel,
    cache?: FrozenCacheOptions,
    /** the program whose weights this one trains (createSharing): its params, grads, buffers, loss scale and
     * feature cache serve this one too */
    main?: TrainProgram,
  ) {
    this.#count = options.batch;
    this.kernels = ctx.kernels;
    this.#memory = ctx.memory;
    const shared: SharedWeights | undefined = main && {
      params: main.params,
      grads: main.grads,
      buffers: main.buffers,
      lossScale: main.loss?.scale,
      cache: main.#cache,
    };
    const plan = planProgram(device, ctx, model, graph, layout, options, cache, shared);
    this.params = plan.params;
    this.grads = plan.grads;
    this.buffers = plan.buffers;
    this.bufferLayout = plan.bufferLayout;
    this.input = plan.input;
    this.heads = plan.heads;
    this.forwardDispatches = plan.forward;
    this.prefixDispatches = plan.prefix;
    this.#stepForward = plan.stepForward;
    this.loss = plan.loss;
    this.lossDispatches = plan.lossDispatches;
    this.backwardDispatches = plan.backward;
    this.#staging = plan.staging;
    this.#clears = plan.clears;
    this.#setCounts = plan.setCounts;
    this.memoryBytes = plan.memoryBytes;
    this.scratchBytes = plan.scratchBytes;
    this.#cache = plan.cache;
    this.#zeros = new Float32Array(options.batch * 3 * options.imgsz ** 2);
  }

  /** Builds the IR, layout and plans for `model`; `device` must be the device every buffer lives on. */
  static create(device: GPUDevice, model: OnnxModel, options: ProgramOptions): TrainProgram {
    return TrainProgram.#plan(device, model, options);
  }

  /**
   * A training program for `batch` images that trains `main`'s weights: it reads and updates main's parameters,
   * gradients, running statistics and loss scale, and in cached mode restores from main's feature cache, so an
   * epoch's short last batch runs at its own size instead of padded to main's (the same training: padding gets no
   * loss, gradient or statistics). `model` is main's. Destroy it before main, whose buffers it uses.
   */
  static createSharing(main: TrainProgram, model: OnnxModel, batch: number): TrainProgram {
    const cache = main.#cache && { samples: main.#cache.samples, budgetBytes: main.#cache.bytes };
    return TrainProgram.#plan(main.device, model, { ...main.options, batch }, cache, main);
  }

  /**
   * A training program in cached mode: plans it, and where the samples leave a short last batch a program of that
   * size (`short`, createSharing), then runs the frozen forward over every sample once (letterboxed, in order;
   * the short batch on the short program) to fill the feature cache. Throws CacheUnavailableError where the cache
   * cannot serve (features over the budget, or a graph with BatchNormalization). Only cached mode plans a short
   * program: its tensors are the trainable tail's, where a whole-forward program of up to batch - 1 images would
   * nearly double the activations a job was admitted with (training_memory.ts).
   */
  static async createCached(
    device: GPUDevice,
    model: OnnxModel,
    options: ProgramOptions,
    cache: FrozenCacheOptions,
  ): Promise<TrainProgram> {
    const program = TrainProgram.#plan(device, model, options, cache);
    try {
      const size = shortBatchSize(cache.samples.length, options.batch);
      if (size !== null) program.#short = TrainProgram.createSharing(program, model, size);
      await program.#cache!.fill([program, ...(program.#short ? [program.#short] : [])], cache.store);
    } catch (err) {
      program.destroy();
      throw err;
    }
    return program;
  }

  /** Plans the program; what it allocated is destroyed again when planning fails part-way. */
  static #plan(
    device: GPUDevice,
    model: OnnxModel,
    options: ProgramOptions,
    cache?: FrozenCacheOptions,
    main?: TrainProgram,
  ): TrainProgram {
    const graph = buildTrainGraph(model);
    const layout = buildParamLayout(model, graph, frozenParams(graph, options.freeze ?? 0));
    const memory = new GpuMemory(device);
    try {
      const ctx = createOpContext(memory, options.programs ?? new ProgramCache(device), options.kernels);
      return new TrainProgram(device, graph, layout, options, ctx, model, cache, main);
    } catch (err) {
      memory.destroy();
      throw err;
    }
  }

  /** True in cached mode (createCached). */
  get cached(): boolean {
    return this.#cache !== undefined;
  }

  /** Cached mode: the program of the samples' short last batch (createSharing), where they leave one. */
  get short(): TrainProgram | undefined {
    return this.#short;
  }

  /** The feature cache of cached mode: its bytes and fill time. */
  get cache(): FrozenFeatureCache | undefined {
    return this.#cache;
  }

  /** What one step records into its compute pass, in order: the step's forward, the loss, the backward. */
  get stepDispatches(): Dispatch[] {
    return [...this.#stepForward, ...this.lossDispatches, ...this.backwardDispatches];
  }

  /** What the EMA averages besides the parameters (OptimizerStepper's `emaExtra`): the running statistics. */
  get emaExtra(): EmaSource[] {
    return this.buffers ? [{ buffer: this.buffers, size: this.bufferLayout.size, label: "buffers" }] : [];
  }

  /**
   * Queues this batch's upload: `images` holds `count` images (count*3*imgsz*imgsz floats, RGB 0..1, NCHW);
   * a short batch is padded with zero images that get no loss, no gradient and no share of BatchNorm statistics.
   */
  setImages(images: Float32Array, count = this.options.batch): void {
    const per = 3 * this.options.imgsz ** 2;
    if (images.length !== count * per || count < 1 || count > this.options.batch) {
      throw new Error(
        `TrainProgram: got ${images.length} floats for ${count} images, expected ${count}*${per}`,
      );
    }
    this.device.queue.writeBuffer(this.input.buffer, 0, images as Float32Array<ArrayBuffer>);
    if (count !== this.#count) {
      for (const set of this.#setCounts) set(count);
      this.#count = count;
    }
    if (count < this.options.batch) {
      this.device.queue.writeBuffer(
        this.input.buffer,
        count * per * 4,
        this.#zeros,
        0,
        (this.options.batch - count) * per,
      );
    }
  }

  /** Images and label rows [b, cls, x, y, w, h] (normalised) of one batch. */
  setBatch(images: Float32Array, targets: TargetRows, count = this.options.batch): void {
    if (!this.loss) throw new Error("TrainProgram: setBatch on a forward-only program");
    if (this.#cache) {
      throw new Error("TrainProgram: a cached-mode step takes load(batch), which names its samples");
    }
    this.setImages(images, count);
    this.loss.setTargets(targets, count);
  }

  /**
   * Queues a loader batch for the next step: its labels, and its images (in cached mode only where the trainable
   * part reads them; its cached features are selected instead).
   */
  load(batch: Batch): void {
    const cache = this.#cache;
    if (!cache) return this.setBatch(batch.images, batch.targets, batch.size);
    if (batch.size > this.options.batch) {
      throw new Error(`TrainProgram: batch of ${batch.size} images, planned for ${this.options.batch}`);
    }
    cache.select(batch);
    if (cache.needsImage) this.setImages(batch.images, batch.size);
    this.loss!.setTargets(batch.targets, batch.size);
  }

  /**
   * Records forward + loss + backward (+ the loss items copy for readItems) into `encoder`, one compute pass; in
   * cached mode the selected images' features are copied in first and the frozen forward is skipped.
   */
  encodeStep(encoder: GPUCommandEncoder): void {
    const staging = this.#requireLoss();
    this.#cache?.encodeRestore(encoder);
    for (const b of this.#clears) encoder.clearBuffer(b);
    const pass = encoder.beginComputePass({
      label: this.#cache ? "train step (cached frozen prefix)" : "train step",
    });
    recordDispatches(pass, this.#stepForward);
    recordDispatches(pass, this.lossDispatches);
    recordDispatches(pass, this.backwardDispatches);
    pass.end();
    encoder.copyBufferToBuffer(this.loss!.items, 0, staging, 0, 16);
  }

  /** Forward only: the raw heads end up in `heads`. */
  encodeForward(encoder: GPUCommandEncoder): void {
    const pass = encoder.beginComputePass({ label: "forward" });
    recordDispatches(pass, this.forwardDispatches);
    pass.end();
  }

  /** Loss + backward on whatever `heads` and activations hold (after encodeForward, possibly in another submit). */
  encodeBackward(encoder: GPUCommandEncoder): void {
    const staging = this.#requireLoss();
    for (const b of this.#clears) encoder.clearBuffer(b);
    const pass = encoder.beginComputePass({ label: "loss + backward" });
    recordDispatches(pass, this.lossDispatches);
    recordDispatches(pass, this.backwardDispatches);
    pass.end();
    encoder.copyBufferToBuffer(this.loss!.items, 0, staging, 0, 16);
  }

  #requireLoss(): GPUBuffer {
    if (!this.loss || !this.#staging) {
      throw new Error("TrainProgram: no loss or backward on a forward-only program");
    }
    return this.#staging;
  }

  /** The loss items of the last submitted step (waits for it). */
  async readItems(): Promise<LossItems> {
    const staging = this.#requireLoss();
    await staging.mapAsync(GPUMapMode.READ);
    const [box, obj, cls, loss] = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    return { box, obj, cls, loss };
  }

  /** One step: upload, forward, loss, backward (grads added into `grads`), optional extra work, one submit. */
  async step(
    images: Float32Array,
    targets: TargetRows,
    count = this.options.batch,
    encodeAfter?: (encoder: GPUCommandEncoder) => void,
  ): Promise<LossItems> {
    this.setBatch(images, targets, count);
    const encoder = this.device.createCommandEncoder({ label: "train step" });
    this.encodeStep(encoder);
    encodeAfter?.(encoder);
    this.device.queue.submit([encoder.finish()]);
    return await this.readItems();
  }

  /** Forward only; returns the raw heads (batch, na*no, ny, nx). Reads back, so for evaluation, not training. */
  async forward(images: Float32Array, count = this.options.batch): Promise<Float32Array[]> {
    this.setImages(images, count);
    const encoder = this.device.createCommandEncoder({ label: "forward" });
    this.encodeForward(encoder);
    this.device.queue.submit([encoder.finish()]);
    return await Promise.all(
      this.heads.map((h) => readF32(this.device, h.buffer, h.shape.reduce((a, b) => a * b, 1))),
    );
  }

  /**
   * Forward only, heads permuted to PyTorch's (count, na, ny, nx, no) layout: the `Forward` evaluate() takes,
   * e.g. `evaluate((images, n) => program.forwardLayers(images, n).then((heads) => ({ heads })), ...)`.
   */
  async forwardLayers(images: Float32Array, count = this.options.batch): Promise<HeadLayer[]> {
    const raw = await this.forward(images, count);
    return raw.map((h, i) => headLayer(h, count, this.graph.yolo.na, this.heads[i].shape));
  }

  async readParams(buffer: GPUBuffer = this.params): Promise<Float32Array> {
    return await readF32(this.device, buffer, this.layout.size);
  }

  /**
   * Copies flat weights from `params` and running statistics from `buffers` (defaults: this program's; pass the
   * EMA's copies, Ema.buffers[0] and [1], for the EMA model) into `model`.
   */
  async writeBack(model: OnnxModel, params: GPUBuffer = this.params, buffers = this.buffers): Promise<void> {
    writeBackParams(model, this.layout, await this.readParams(params));
    if (buffers) {
      writeBackParams(model, this.bufferLayout, await readF32(this.device, buffers, this.bufferLayout.size));
    }
  }

  /** Bytes of GPU memory this program holds (values, gradients, parameters, scratch, cache). */
  get gpuBytes(): number {
    return this.#memory.bytes;
  }

  /** Destroys every GPU buffer of this program; it cannot run after this. */
  destroy(): void {
    this.#short?.destroy();
    this.#memory.destroy();
  }
}

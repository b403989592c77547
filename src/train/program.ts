/**
 * The training program of a YOLOv5 ONNX export for one (batch, imgsz): all buffers, uniforms and pipelines are
 * made here, once; a step is one command encoder (gradient clears, then one compute pass: forward, loss,
 * backward in reverse graph order) whose only readback is the 4 loss floats. Weight gradients are ADDED into the
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
import { inferShapes } from "../onnx/graph_shapes.ts";
import { planCast } from "../ops/cast.ts";
import { createOpContext, recordDispatches } from "../ops/context.ts";
import type { KernelFamily } from "../ops/kernel_family.ts";
import type { EmaSource } from "../optim/ema.ts";
import type { Dispatch, OpContext, TensorView } from "../ops/types.ts";
import type { Batch } from "./data/loader.ts";
import { cacheBoundaries, type FrozenCacheOptions, FrozenFeatureCache } from "./frozen_cache.ts";
import { type LossItems, type LossPlan, planLoss } from "./loss.ts";
import { type LossHyp, lossSettings } from "./loss_settings.ts";
import {
  buildBufferLayout,
  buildParamLayout,
  type FlatLayout,
  frozenParams,
  packParams,
  type ParamLayout,
  writeBackParams,
} from "./param_layout.ts";
import { accKey, gradientTensors, type Memory, planMemory, readGradientChannels } from "./program_memory.ts";
import { convSiluPairs } from "./program_fusion.ts";
import { planNode } from "./program_ops.ts";
import { shortBatchSize } from "./short_batch.ts";
import type { TargetRows } from "./targets.ts";
import { type HeadLayer, headLayer } from "./evaluate_decode.ts";

export interface ProgramOptions {
  batch: number;
  /** Square input side in pixels (a multiple of the largest stride). */
  imgsz: number;
  /** train.py --freeze: N (layers 0..N-1) or an explicit list of layers. */
  freeze?: number | number[];
  /** Loss hyperparameters before train.py's scaling (hyp.scratch-low.yaml keys); required when training. */
  hyp?: LossHyp;
  /** Most labels one batch may carry (sizes the target tables). Default 256 per image. */
  maxTargets?: number;
  /** false: forward only (evaluation), no gradients, loss or backward. */
  training?: boolean;
  /** Convs share one im2col scratch and rebuild their columns in backward: less memory, a slower step
   * (planConv's recomputeColumns). Default false. */
  recomputeColumns?: boolean;
  /** Share compiled pipelines with other programs on the same device. */
  programs?: ProgramCache;
  /**
   * Mixed precision (training programs): the convs' GEMMs read f16 operands (an f16 copy of the params made at
   * the start of each forward, f16 im2col columns and dy copies) and accumulate in f32; everything else,
   * master weights included, stays f32 (docs/architecture.md, "Mixed precision").
   */
  amp?: boolean;
  /** Vec4s per invocation of streaming kernels (src/gpu/runs.ts streamChunk); default 256 (lavapipe's). */
  chunk?: number;
  /** The conv GEMM kernels to plan; default the device's (src/ops/kernel_family.ts: by adapter, or as
   * KESTREL_KERNELS forces). */
  kernels?: KernelFamily;
}

const DEFAULT_TARGETS_PER_IMAGE = 256;

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
  readonly forwardDispatches: Dispatch[] = [];
  /** The part of forwardDispatches that computes no gradient-carrying tensor (a frozen prefix): the whole
   * forward minus these is what a cached-mode step runs. */
  readonly prefixDispatches: Dispatch[] = [];
  readonly lossDispatches: Dispatch[] = [];
  /** In recording order (reverse graph order). */
  readonly backwardDispatches: Dispatch[] = [];
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
  readonly #stepForward: Dispatch[] = [];
  readonly #cache?: FrozenFeatureCache;
  #short?: TrainProgram;
  readonly #staging?: GPUBuffer;
  readonly #zeros: Float32Array<ArrayBuffer>;
  /** BatchNorm statistics must cover only the real images of a short batch. */
  readonly #setCounts: ((count: number) => void)[] = [];
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
    const { batch, imgsz } = options;
    this.#count = batch;
    this.kernels = ctx.kernels;
    const training = options.training ?? true;
    const maxStride = Math.max(...graph.yolo.strides);
    if (imgsz % maxStride !== 0) {
      throw new Error(`TrainProgram: imgsz ${imgsz} is not a multiple of ${maxStride}`);
    }
    const shapes = inferShapes(model, graph, batch, imgsz, imgsz);
    const memory = this.#memory = ctx.memory;
    const trainable = new Set(layout.entries.filter((e) => !e.frozen).map((e) => e.name));
    // The loss always writes the head gradients, even when everything below is frozen.
    const needsGrad = training
      ? new Set([...gradientTensors(graph, trainable), ...graph.heads])
      : new Set<string>();
    const inTail = (i: number) => needsGrad.has(graph.nodes[i].y);
    if (cache && !training) {
      throw new Error("TrainProgram: the frozen-feature cache is for training programs");
    }
    // Checked against the budget before anything is allocated.
    const boundaries = cache && cacheBoundaries(device, graph, shapes, inTail, cache);
    this.bufferLayout = buildBufferLayout(model, graph);
    if (main) {
      this.params = main.params;
      this.buffers = main.buffers;
    } else {
      this.params = memory.storage(layout.size * 4, "params");
      device.queue.writeBuffer(this.params, 0, packParams(model, layout));
      if (this.bufferLayout.size > 0) {
        this.buffers = memory.storage(this.bufferLayout.size * 4, "buffers");
        device.queue.writeBuffer(this.buffers, 0, packParams(model, this.bufferLayout));
      }
    }
    const order = graph.nodes.map((_, i) => i).reverse().filter(inTail);
    const place: Memory = planMemory(memory, graph, shapes, needsGrad, order, graph.heads);
    this.memoryBytes = place.bytes;
    this.#clears = place.clearEachStep;
    this.input = place.values.get(graph.input)!;
    this.heads = graph.heads.map((h) => place.values.get(h)!);
    this.#zeros = new Float32Array(batch * 3 * imgsz * imgsz);
    if (training) {
      this.grads = main?.grads ?? memory.storage(layout.size * 4, "grads");
      const hyp = options.hyp;
      if (!hyp) throw new Error("TrainProgram: training needs options.hyp (the loss hyperparameters)");
      const settings = lossSettings(hyp, graph.heads.length, graph.yolo.nc, imgsz);
      const lossHeads = graph.yolo.layers.map((l, i) => ({
        logits: this.heads[i],
        grad: place.grads.get(graph.heads[i])!,
        layer: {
          ny: this.heads[i].shape[2],
          nx: this.heads[i].shape[3],
          anchors: l.anchors.map(([w, h]) => [w / l.stride, h / l.stride] as [number, number]),
        },
      }));
      this.loss = planLoss(
        ctx,
        lossHeads,
        settings,
        batch,
        options.maxTargets ?? DEFAULT_TARGETS_PER_IMAGE * batch,
        main?.loss?.scale,
      );
      this.lossDispatches.push(...this.loss.dispatches);
      this.#staging = memory.readback(16, "loss items staging");
    }
    const backward: Dispatch[][] = [];
    // amp: the f16 weights the convs read, refreshed first in every forward (the optimizer moved the f32 ones).
    const half = training && options.amp
      ? planCast(ctx, this.params, layout.size, "f16", "params (f16 copy)", options.chunk ?? 256)
      : undefined;
    if (half) {
      this.forwardDispatches.push(half.dispatch);
      this.prefixDispatches.push(half.dispatch);
      this.#stepForward.push(half.dispatch);
    }
    const readChannels = readGradientChannels(graph, shapes, needsGrad);
    const fused = convSiluPairs(graph, place, needsGrad, trainable);
    const fusedSilus = new Set(fused.values());
    graph.nodes.forEach((n, i) => {
      // A SiLU fused into its conv is planned with the conv.
      if (fusedSilus.has(i)) {
        backward[i] = [];
        return;
      }
      const silu = fused.get(i);
      const plan = planNode(ctx, n, {
        value: (t) => place.values.get(t)!,
        grad: (t) => place.grads.get(t),
        readChannels: (t) => readChannels.get(t),
        accumulate: (t) => place.accumulate.get(accKey(i, t)) ?? false,
        param: (name) => this.#paramView(this.params, name),
        halfParam: half && ((name) => this.#paramView(half.buffer, name)),
        buffer: (name) => flatView(this.bufferLayout, this.buffers!, name),
        training,
        recomputeColumns: options.recomputeColumns ?? false,
        copied: (t) => place.copies.has(t),
        siluAfter: silu === undefined ? undefined : graph.nodes[silu].y,
        paramGrad: (
          name,
        ) => (this.grads && trainable.has(name) ? this.#paramView(this.grads, name) : undefined),
      });
      this.forwardDispatches.push(...plan.forward);
      if (!inTail(i)) this.prefixDispatches.push(...plan.forward);
      if (!boundaries || inTail(i)) this.#stepForward.push(...plan.forward);
      backward[i] = plan.backward;
      if (plan.setCount) this.#setCounts.push(plan.setCount);
    });
    for (const i of order) this.backwardDispatches.push(...backward[i]);
    this.scratchBytes = ctx.scratchBytes();
    if (boundaries) {
      const value = (t: string) => place.values.get(t)!;
      this.#cache = new FrozenFeatureCache(memory, boundaries, value, cache!.samples, main?.cache);
    }
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

  #paramView(buffer: GPUBuffer, name: string): TensorView {
    return flatView(this.layout, buffer, name);
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

function flatView(layout: FlatLayout, buffer: GPUBuffer, name: string): TensorView {
  const e = layout.byName.get(name);
  if (!e) throw new Error(`TrainProgram: '${name}' is not in the flat layout`);
  return { buffer, offset: e.offset, shape: e.shape };
}

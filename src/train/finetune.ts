/**
 * One fine-tune of an ONNX YOLOv5 model on the GPU, shared by `deno task finetune` and the jobs trainer: the
 * training step (a TrainProgram, in cached mode when a frozen prefix and no augmentation allow it),
 * train.py's optimizer/schedule/EMA over the flat parameters, the batch loader, evaluation of any weights on
 * held-out samples, checkpoint state, and write-back of the final and EMA weights into copies of the model.
 *
 * @example
 * ```ts
 * const session = await FinetuneSession.create({ gpu, model, config, train: dataset.train });
 * await session.train({ onIteration: ({ line }) => trace.write(line) });
 * const { last, ema } = await session.models();
 * ```
 * @module
 */
import type { FinetuneConfig } from "../config/finetune.ts";
import type { Gpu } from "../gpu/device.ts";
import { ProgramCache } from "../gpu/programs.ts";
import { streamChunk } from "../gpu/runs.ts";
import { OnnxModel } from "../onnx/model.ts";
import type { GradScalerOptions } from "../optim/grad_scaler.ts";
import { OptimizerStepper } from "../optim/stepper.ts";
import type { Sample } from "./data/dataset.ts";
import { ImageStore } from "./data/images.ts";
import { BatchLoader } from "./data/loader.ts";
import { evaluate } from "./evaluate.ts";
import { CacheUnavailableError } from "./frozen_cache.ts";
import { type IterationReport, type LoopPosition, type LoopResult, trainLoop } from "./loop.ts";
import type { ValMetrics } from "./metrics.ts";
import type { ParamLayout } from "./param_layout.ts";
import { resolveAmp } from "./precision.ts";
import { TrainProgram } from "./program.ts";
import { SizedSteps } from "./short_batch.ts";
import { captureState, restoreState, type StateBuffer } from "./train_state.ts";

export interface SessionOptions {
  gpu: Gpu;
  model: OnnxModel;
  config: FinetuneConfig;
  train: readonly Sample[];
  /** Cache the frozen prefix's outputs per image (default: whenever freeze > 0 and augment is off). */
  frozenCache?: boolean;
  /** Most GPU bytes the frozen-feature cache may take (default 1 GiB). */
  cacheBudgetBytes?: number;
  programs?: ProgramCache;
  /** GradScaler settings other than train.py's defaults (tests use a short growth interval). */
  scaler?: GradScalerOptions;
}

export interface TrainOptions {
  signal?: AbortSignal;
  /** Where to continue (resume: what {@link FinetuneSession.restore} returned). */
  start?: LoopPosition;
  /** Stop after the iteration in flight, once `onSuspend` saved the position (see LoopOptions). */
  suspend?: AbortSignal;
  onSuspend?(position: LoopPosition): Promise<void>;
  onIteration?(report: IterationReport): void;
  onEpochEnd?(epoch: number): Promise<void>;
}

/** Which weights to evaluate or export: the live ones, or their EMA. */
export type WeightSet = "live" | "ema";

export class FinetuneSession {
  readonly device: GPUDevice;
  readonly loader: BatchLoader;
  readonly optimizer: OptimizerStepper;
  /** Mixed precision (config `amp` resolved against the adapter: precision.ts). */
  readonly amp: boolean;
  /** What the loop steps: `program`, and in cached mode an epoch's short last batch on `program.short`. */
  readonly steps: SizedSteps<TrainProgram>;
  #evalProgram?: TrainProgram;

  private constructor(
    readonly options: SessionOptions,
    readonly program: TrainProgram,
    readonly programs: ProgramCache,
    /** Letterboxed images without augmentation, decoded once for the cache fill, training and evaluation. */
    readonly images: ImageStore,
  ) {
    const { config, gpu } = options;
    this.device = gpu.device;
    this.amp = program.options.amp ?? false;
    this.steps = new SizedSteps(program, program.short);
    this.loader = new BatchLoader(options.train, {
      store: config.augment ? undefined : images,
      imgsz: config.imgsz,
      batchSize: config.batch_size,
      shuffle: config.shuffle,
      augment: config.augment,
      seed: config.seed,
      hyp: config.hyp,
      pixels: !program.cache || program.cache.needsImage,
    });
    this.optimizer = new OptimizerStepper(this.device, programs, program.layout.entries, {
      params: program.params,
      grads: program.grads!,
      emaExtra: program.emaExtra,
      lossScale: program.loss!.scale,
    }, {
      optimizer: config.optimizer,
      hyp: config.hyp,
      batchSize: config.batch_size,
      nb: this.loader.batchesPerEpoch,
      epochs: config.epochs,
      cosLr: config.cos_lr,
      nbs: config.nbs,
      maxGradNorm: config.max_grad_norm,
      ema: config.ema,
      chunk: streamChunk(gpu.isFallback),
      amp: this.amp ? options.scaler ?? {} : undefined,
    });
  }

  /** Plans everything; throws when the GPU rejects any of it (WebGPU would otherwise fail silently). */
  static async create(options: SessionOptions): Promise<FinetuneSession> {
    const device = options.gpu.device;
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
    let session: FinetuneSession | undefined, thrown: unknown;
    try {
      session = await FinetuneSession.#create(options);
    } catch (err) {
      thrown = err;
    }
    const errors = [await device.popErrorScope(), await device.popErrorScope()].filter((e) => e !== null);
    if (thrown) throw thrown;
    if (errors.length) {
      session!.destroy();
      throw new Error(`FinetuneSession: the GPU rejected the training program: ${errors[0].message}`);
    }
    return session!;
  }

  static async #create(options: SessionOptions): Promise<FinetuneSession> {
    const { config, gpu, model } = options;
    const programs = options.programs ?? new ProgramCache(gpu.device);
    const images = new ImageStore(config.imgsz, false);
    const programOptions = {
      batch: config.batch_size,
      imgsz: config.imgsz,
      freeze: config.freeze,
      hyp: { ...config.hyp, label_smoothing: config.label_smoothing },
      programs,
      amp: resolveAmp(config.amp, gpu),
      chunk: streamChunk(gpu.isFallback),
    };
    const wantCache = options.frozenCache ?? (!config.augment && hasFrozenLayers(config.freeze));
    if (wantCache && config.augment) {
      throw new Error(
        "FinetuneSession: the frozen-feature cache needs augment: false (features change per epoch)",
      );
    }
    if (wantCache) {
      try {
        const cached = await TrainProgram.createCached(gpu.device, model, programOptions, {
          samples: options.train,
          budgetBytes: options.cacheBudgetBytes,
          store: images,
        });
        return FinetuneSession.#around(options, cached, programs, images);
      } catch (err) {
        // Chosen automatically, the cache gives way to the whole forward when it cannot serve this run.
        if (!(err instanceof CacheUnavailableError && options.frozenCache === undefined)) throw err;
      }
    }
    const program = TrainProgram.create(gpu.device, model, programOptions);
    return FinetuneSession.#around(options, program, programs, images);
  }

  /** The session around `program`; the program is destroyed if the rest of the session cannot be made. */
  static #around(
    options: SessionOptions,
    program: TrainProgram,
    programs: ProgramCache,
    images: ImageStore,
  ): FinetuneSession {
    try {
      return new FinetuneSession(options, program, programs, images);
    } catch (err) {
      program.destroy();
      throw err;
    }
  }

  get layout(): ParamLayout {
    return this.program.layout;
  }

  /** The live parameters (flat layout). */
  get params(): GPUBuffer {
    return this.program.params;
  }

  /** true when training starts from cached frozen features */
  get cached(): boolean {
    return this.program.cached;
  }

  /** Seconds the frozen-feature cache took to fill, or null when training runs the whole forward. */
  get cacheSeconds(): number | null {
    return this.program.cache?.seconds ?? null;
  }

  /** The EMA of the parameters (flat layout). */
  get emaParams(): GPUBuffer {
    return this.optimizer.ema.buffers[0];
  }

  train(options: TrainOptions = {}): Promise<LoopResult> {
    return trainLoop({
      step: this.steps,
      optimizer: this.optimizer,
      batches: (epoch, from) => this.loader.epoch(epoch, from),
      epochs: this.options.config.epochs,
      ...options,
    });
  }

  /** The flat buffers of a weight set: parameters, and running statistics where the model has BatchNorm. */
  #buffersOf(which: WeightSet): { params: GPUBuffer; buffers?: GPUBuffer } {
    if (which === "live") return { params: this.program.params, buffers: this.program.buffers };
    const [params, buffers] = this.optimizer.ema.buffers;
    return { params, buffers };
  }

  /**
   * val.py metrics of the live or the EMA weights on `samples` (BatchNorm in eval mode), in the fewest batches
   * of at most batch_size, evened out (evaluationBatch) so the last one is not mostly padding.
   */
  async evaluate(which: WeightSet, samples: readonly Sample[]): Promise<ValMetrics> {
    const { config, model } = this.options;
    const batch = evaluationBatch(samples.length, config.batch_size);
    if (this.#evalProgram?.options.batch !== batch) {
      this.#evalProgram?.destroy();
      this.#evalProgram = TrainProgram.create(this.device, model, {
        batch,
        imgsz: config.imgsz,
        training: false,
        programs: this.programs,
      });
    }
    const program = this.#evalProgram;
    const source = this.#buffersOf(which);
    const encoder = this.device.createCommandEncoder({ label: "load evaluation weights" });
    encoder.copyBufferToBuffer(source.params, 0, program.params, 0, this.layout.size * 4);
    if (source.buffers && program.buffers) {
      encoder.copyBufferToBuffer(source.buffers, 0, program.buffers, 0, program.bufferLayout.size * 4);
    }
    this.device.queue.submit([encoder.finish()]);
    const yolo = program.graph.yolo;
    const loader = new BatchLoader(samples, {
      imgsz: config.imgsz,
      batchSize: batch,
      shuffle: false,
      augment: false,
      store: this.images,
    });
    const forward = async (images: Float32Array, size: number) => ({
      heads: await program.forwardLayers(images, size),
    });
    return await evaluate(forward, loader.epoch(), {
      nc: yolo.nc,
      strides: yolo.strides,
      anchors: yolo.anchors,
    });
  }

  /** Frees all the session's GPU memory: the training and evaluation programs, optimizer state, EMA copies. */
  destroy(): void {
    this.optimizer.destroy();
    this.program.destroy();
    this.#evalProgram?.destroy();
  }

  /**
   * What a checkpoint holds. Within an epoch that includes the gradients: up to `accumulate` batches are summed
   * into them before an optimizer step uses them (train.py zeroes them at each epoch start, so an epoch-start
   * checkpoint goes without).
   */
  #stateBuffers(withGradients: boolean): StateBuffer[] {
    const floats = this.layout.size;
    return [
      { name: "params", buffer: this.program.params, floats },
      ...(withGradients ? [{ name: "grads", buffer: this.program.grads!, floats }] : []),
      ...this.optimizer.optimizer.state.map((buffer, i) => ({ name: `optimizer${i}`, buffer, floats })),
      { name: "ema", buffer: this.emaParams, floats },
      ...(this.program.buffers
        ? [
          { name: "buffers", buffer: this.program.buffers, floats: this.program.bufferLayout.size },
          {
            name: "ema_buffers",
            buffer: this.optimizer.ema.buffers[1],
            floats: this.program.bufferLayout.size,
          },
        ]
        : []),
    ];
  }

  /** The state at `position` (taken right after the iteration before it), for a checkpoint. */
  checkpoint(position: LoopPosition): Promise<Uint8Array> {
    const buffers = this.#stateBuffers(position.iteration > 0);
    const scaler = this.optimizer.scaler.state();
    return captureState(this.device, position, this.layout.size, buffers, scaler);
  }

  /** Loads a checkpoint's GPU state and loss-scaler state; returns its position (pass as `start`). */
  restore(state: Uint8Array): LoopPosition {
    const restored = restoreState(
      this.device,
      state,
      this.layout.size,
      (p) => this.#stateBuffers(p.iteration > 0),
    );
    if (restored.scaler) this.optimizer.restoreScaler(restored.scaler);
    return restored.position;
  }

  /** Copies of the model holding the current weights (last) and the EMA weights. */
  async models(): Promise<{ last: OnnxModel; ema: OnnxModel }> {
    const bytes = this.options.model.toBytes();
    const last = OnnxModel.parse(bytes), ema = OnnxModel.parse(bytes);
    for (const [model, which] of [[last, "live"], [ema, "ema"]] as const) {
      const source = this.#buffersOf(which);
      await this.program.writeBack(model, source.params, source.buffers);
    }
    return { last, ema };
  }
}

/**
 * The evaluation batch size: as many batches as batch_size needs, filled evenly (17 images at 16: 9 + 8, not
 * 16 + 1, which would run 15 padded images). An image's forward does not depend on its batch (every op works per
 * image, BatchNorm in eval mode), so the metrics are those of any batch size; only the padding is saved.
 */
export function evaluationBatch(images: number, batchSize: number): number {
  return Math.max(1, Math.ceil(images / Math.max(1, Math.ceil(images / batchSize))));
}

function hasFrozenLayers(freeze: number | number[]): boolean {
  return typeof freeze === "number" ? freeze > 0 : freeze.length > 0;
}

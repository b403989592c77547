import { LetterboxInput } from "../image/letterbox.ts";
import { OnnxModel } from "../onnx/model.ts";
import type { Backend, ImageDetections, Session, Tensor } from "./backend.ts";
import type { ModelSpec } from "./model_spec.ts";
import type { DetectOptions } from "./postprocess.ts";
import { type Admission, DEFAULT_MAX_QUEUE, SessionQueue } from "./session_queue.ts";

/** Identifies a model version across the API, the registry and logs. */
export interface ModelRef {
  name: string;
  version: number;
}

/** Most milliseconds a model may take to build its session and run its warm-up inference. */
export const DEFAULT_LOAD_TIMEOUT_MS = 120_000;

/** A model version the engine could not load or warm up; the message is safe to show to clients. */
export class ModelLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelLoadError";
  }
}

/**
 * The model re-encoded from what OnnxModel decoded: fields that onnx-proto's schema (ONNX 1.10) does not know are
 * dropped, so the engine only sees what the external-data check walked (a newer ONNX, say a FunctionProto's
 * attribute defaults, could otherwise carry a tensor the check never saw).
 */
function inspectedBytes(onnx: Uint8Array): Uint8Array {
  return OnnxModel.parse(onnx).toBytes();
}

/**
 * One model version with its session. Requests queue for it (see {@link SessionQueue}): as many runs at once as
 * the session takes (onnxruntime-web rejects overlapping runs), at most `maxQueue` waiting. Reference-counted:
 * once retired, the session is released when the last request holding it finishes.
 */
export class LoadedModel {
  private refs = 0;
  private retired = false;
  private readonly queue: SessionQueue;
  /**
   * Inputs of finished runs, reused: allocating (and zeroing) a fresh 4.9 MB tensor cost ~0.8 ms at 640. At most
   * one per slot exists (see {@link inferPrepared}).
   */
  private readonly spareInputs: LetterboxInput[] = [];

  private constructor(
    readonly ref: ModelRef,
    readonly spec: ModelSpec,
    readonly backend: string,
    private readonly session: Session,
    maxQueue: number,
  ) {
    this.queue = new SessionQueue(ref.name, session.parallelRuns ?? 1, maxQueue);
  }

  /**
   * Builds the session and runs one warm-up inference, so a broken model never replaces a working one. Both
   * together must finish within `timeoutMs` (a hostile model can make either take minutes); a late session is
   * released once it arrives. Engine failures reach the caller as a {@link ModelLoadError} with a fixed message:
   * onnxruntime's own text can say which server files exist, so it is only logged.
   */
  static async create(
    ref: ModelRef,
    spec: ModelSpec,
    backend: Backend,
    onnx: Uint8Array,
    timeoutMs = DEFAULT_LOAD_TIMEOUT_MS,
    maxQueue = DEFAULT_MAX_QUEUE,
  ): Promise<LoadedModel> {
    const started = performance.now();
    const tooSlow = () =>
      new ModelLoadError(
        `${ref.name} v${ref.version}: loading and warm-up took longer than the limit of ${timeoutMs} ms`,
      );
    const work = LoadedModel.build(ref, spec, backend, onnx, maxQueue);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(tooSlow()), timeoutMs);
    });
    try {
      const model = await Promise.race([work, deadline]);
      // An engine that blocks the event loop while it works lets no timer fire: check the clock as well.
      if (performance.now() - started > timeoutMs) throw tooSlow();
      return model;
    } catch (err) {
      // Frees the session of a model that arrived too late; a failed build has released its own.
      work.then((late) => late.retire(), () => {});
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private static async build(
    ref: ModelRef,
    spec: ModelSpec,
    backend: Backend,
    onnx: Uint8Array,
    maxQueue: number,
  ): Promise<LoadedModel> {
    const what = `${ref.name} v${ref.version}`;
    let session: Session;
    try {
      session = await backend.createSession(inspectedBytes(onnx), spec.inputName, spec.outputName);
    } catch (err) {
      console.error(`${what}: the ${backend.name} engine could not build a session:`, err);
      throw new ModelLoadError(`${what}: the ${backend.name} inference engine could not load the model`);
    }
    const model = new LoadedModel(ref, spec, backend.name, session, maxQueue);
    let out: Tensor;
    try {
      out = await model.queue.runNow(() => model.run(new Float32Array(3 * spec.imgsz * spec.imgsz)));
    } catch (err) {
      await session.release();
      console.error(`${what}: the warm-up run failed:`, err);
      throw new ModelLoadError(`${what}: the model failed its warm-up run on the ${backend.name} engine`);
    }
    const no = spec.nc + 5;
    if (out.dims.length !== 3 || out.dims[0] !== 1 || out.dims[2] !== no) {
      await session.release();
      throw new ModelLoadError(`${what}: warm-up output has shape [${out.dims}], expected (1, N, ${no})`);
    }
    return model;
  }

  /** Requests admitted and not yet running (preparing their input or waiting for the session). */
  get queued(): number {
    return this.queue.queued;
  }

  /**
   * A place in this version's queue, taken before the request's input is prepared; throws
   * ModelOverloadedError when the queue is full. Run with {@link inferPrepared}, or withdraw it.
   */
  admit(): Admission {
    return this.queue.admit();
  }

  /**
   * Runs the session once `admission`'s turn comes, on an input that `prepare` letterboxes then, and hands back
   * what `prepare` returned with the output. Taking the input only with the turn keeps one per slot: taken at
   * admission, a request that waited held one too, and at 4+ clients a fresh 4.9 MB tensor was allocated (and
   * collected) per request.
   */
  inferPrepared<T>(
    admission: Admission,
    prepare: (input: LetterboxInput) => T,
  ): Promise<{ output: Tensor; prepared: T }> {
    return admission.run(async () => {
      const input = this.spareInputs.pop() ?? new LetterboxInput(this.spec.imgsz);
      try {
        const prepared = prepare(input);
        return { output: await this.run(input.tensor), prepared };
      } finally {
        this.spareInputs.push(input);
      }
    });
  }

  /** Whether the session decodes, letterboxes, runs and post-processes images itself (Session.detectImage). */
  get detectsImages(): boolean {
    return this.session.detectImage !== undefined;
  }

  /** Runs the session's own per-image pipeline on `bytes` once `admission`'s turn comes. */
  detectImage(
    admission: Admission,
    bytes: Uint8Array,
    opts: DetectOptions,
    maxPixels?: number,
  ): Promise<ImageDetections> {
    const { session, spec } = this;
    if (!session.detectImage) throw new Error(`the ${this.backend} session does not detect images itself`);
    return admission.run(() =>
      session.detectImage!({ bytes, imgsz: spec.imgsz, nc: spec.nc, opts, maxPixels })
    );
  }

  /** Admits and runs one input that is already prepared; a full queue rejects with ModelOverloadedError. */
  async infer(data: Float32Array): Promise<Tensor> {
    return await this.admit().run(() => this.run(data));
  }

  private run(data: Float32Array): Promise<Tensor> {
    return this.session.run({ data, dims: [1, 3, this.spec.imgsz, this.spec.imgsz] });
  }

  acquire(): void {
    this.refs++;
  }

  async releaseRef(): Promise<void> {
    this.refs--;
    if (this.retired && this.refs === 0) await this.session.release();
  }

  /** No new requests will take this version; free the session once the in-flight ones are done. */
  async retire(): Promise<void> {
    this.retired = true;
    if (this.refs === 0) await this.session.release();
  }
}

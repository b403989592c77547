import type { Backend, Session, Tensor } from "./backend.ts";
import type { ModelSpec } from "./model_spec.ts";

/** Identifies a model version across the API, the registry and logs. */
export interface ModelRef {
  name: string;
  version: number;
}

/**
 * One model version with its session. Runs are queued one at a time (onnxruntime-web rejects overlapping
 * runs, and the native engine already spreads one run over every core). Reference-counted: once retired, the
 * session is released when the last request holding it finishes.
 */
export class LoadedModel {
  private refs = 0;
  private retired = false;
  private waiting = 0;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly ref: ModelRef,
    readonly spec: ModelSpec,
    readonly backend: string,
    private readonly session: Session,
  ) {}

  /** Builds the session and runs one warm-up inference, so a broken model never replaces a working one. */
  static async create(
    ref: ModelRef,
    spec: ModelSpec,
    backend: Backend,
    onnx: Uint8Array,
  ): Promise<LoadedModel> {
    const session = await backend.createSession(onnx, spec.inputName, spec.outputName);
    const model = new LoadedModel(ref, spec, backend.name, session);
    try {
      const out = await model.infer(new Float32Array(3 * spec.imgsz * spec.imgsz));
      const no = spec.nc + 5;
      if (out.dims.length !== 3 || out.dims[0] !== 1 || out.dims[2] !== no) {
        throw new Error(`warm-up output has shape [${out.dims}], expected (1, N, ${no})`);
      }
    } catch (err) {
      await session.release();
      throw new Error(`${ref.name} v${ref.version}: ${(err as Error).message}`);
    }
    return model;
  }

  /** Requests waiting for the session (not counting the one running). */
  get queued(): number {
    return this.waiting;
  }

  infer(data: Float32Array): Promise<Tensor> {
    const dims = [1, 3, this.spec.imgsz, this.spec.imgsz];
    this.waiting++;
    const result = this.tail.then(() => {
      this.waiting--;
      return this.session.run({ data, dims });
    });
    this.tail = result.catch(() => {});
    return result;
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

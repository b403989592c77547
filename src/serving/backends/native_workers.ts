/**
 * A native session spread over inference workers (native_worker_entry.ts): each Web Worker holds its own
 * onnxruntime-node session of the model and runs one call at a time, whole detect requests (decode, letterbox,
 * run, NMS) or bare tensor runs. The server's JS thread then only does HTTP and hands encoded bytes over;
 * onnxruntime-node 1.30 runs a session synchronously on the calling thread, so in the server's own thread each
 * run (~20 ms at 640) held up every other request's HTTP, decode and letterbox.
 */
import { ImageError } from "../../image/errors.ts";
import type { ImageDetections, ImageJob, Session, Tensor } from "../backend.ts";
import type { FromInferenceWorker, ToInferenceWorker } from "./native_worker_protocol.ts";
import { spawnWorker } from "../../workers/spawn.ts";

/**
 * A call whose inference worker stopped under it (an uncaught error there) or whose session was released. The
 * message is safe for clients; the worker's own error is logged. A crashed worker is replaced at once, so the
 * next request finds a working one.
 */
export class InferenceWorkerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InferenceWorkerError";
  }
}

const ENTRY = new URL("./native_worker_entry.ts", import.meta.url);

/** What a worker loads: the model, its input and output names, onnxruntime's session options. */
export interface WorkerLoad {
  onnx: Uint8Array;
  inputName: string;
  outputName: string;
  options: Record<string, unknown>;
}

/** The model every worker of a session loads. */
export type WorkerModel = Omit<WorkerLoad, "options">;

type Call = Extract<ToInferenceWorker, { id: number }>;

/**
 * Longest wait for a worker to release its session before it is terminated anyway: terminating a Worker does
 * not free the onnxruntime session it holds (50 hot swaps of yolov5n grew the server's RSS by ~0.9 GB so).
 */
const RELEASE_WAIT_MS = 5_000;

/** One Worker with one session: loads once, then takes calls (its owner sends one at a time). */
class InferenceWorker {
  readonly #worker = spawnWorker(ENTRY);
  readonly #calls = new Map<number, PromiseWithResolvers<FromInferenceWorker>>();
  readonly #released = Promise.withResolvers<void>();
  /** Settles once the session is loaded (or could not be, or the worker stopped first). */
  readonly loaded: Promise<void>;
  /** Why this worker stopped taking calls (crashed, or terminated by its owner), once it has. */
  stopped?: InferenceWorkerError;

  constructor(load: WorkerLoad, onCrash: (worker: InferenceWorker) => void) {
    const loaded = Promise.withResolvers<void>();
    this.loaded = loaded.promise;
    // A load nobody waits for (a replacement's, until its first call) must not be an unhandled rejection.
    this.loaded.catch(() => {});
    this.#worker.onmessage = (e: MessageEvent<FromInferenceWorker>) => {
      const msg = e.data;
      if (msg.type === "loaded") loaded.resolve();
      else if (msg.type === "released") this.#released.resolve();
      else if (msg.type === "load_failed") {
        loaded.reject(new Error(msg.message));
        this.stop(new InferenceWorkerError("The inference worker could not load the model"));
      } else {
        this.#calls.get(msg.id)?.resolve(msg);
        this.#calls.delete(msg.id);
      }
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      console.error(`inference worker crashed: ${e.message}`);
      const crashed = new InferenceWorkerError(
        "The inference worker running this request stopped with an error; it has been replaced, retry",
      );
      loaded.reject(crashed);
      this.stop(crashed);
      onCrash(this);
    };
    this.#worker.postMessage({ type: "load", ...load } satisfies ToInferenceWorker);
  }

  async call(msg: Call, transfer: Transferable[]): Promise<FromInferenceWorker> {
    await this.loaded;
    if (this.stopped) throw this.stopped;
    const reply = Promise.withResolvers<FromInferenceWorker>();
    this.#calls.set(msg.id, reply);
    this.#worker.postMessage(msg, transfer);
    return await reply.promise;
  }

  /**
   * Lets the calls under way finish, has the worker release its session, then terminates it; each wait is at
   * most RELEASE_WAIT_MS (a hung run or load is cut off). Calls made meanwhile reject with `reason`.
   */
  async close(reason: InferenceWorkerError): Promise<void> {
    this.stopped ??= reason;
    await within(Promise.allSettled([...this.#calls.values()].map((call) => call.promise)));
    if (await within(this.loaded)) {
      this.#worker.postMessage({ type: "release" } satisfies ToInferenceWorker);
      await within(this.#released.promise);
    }
    this.stop(reason);
  }

  /** Terminates the worker now; calls under way reject with `reason`. */
  stop(reason: InferenceWorkerError): void {
    this.stopped ??= reason;
    this.#worker.terminate();
    this.#released.resolve();
    for (const call of this.#calls.values()) call.reject(reason);
    this.#calls.clear();
  }
}

/** Whether `promise` resolves within RELEASE_WAIT_MS (false when it rejects or takes longer). */
async function within(promise: Promise<unknown>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), RELEASE_WAIT_MS));
  try {
    return await Promise.race([promise.then(() => true, () => false), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error a worker's failed call stands for: an ImageError keeps its kind, the engine's stays an Error. */
function failed(msg: Extract<FromInferenceWorker, { type: "failed" }>): Error {
  return msg.imageError ? new ImageError(msg.imageError, msg.message) : new Error(msg.message);
}

function unexpected(msg: FromInferenceWorker): never {
  throw new Error(`inference worker: unexpected answer ${msg.type}`);
}

/**
 * Inference workers of one model, one per entry of `options` (each worker's onnxruntime session options), as
 * one Session taking that many calls at once (its parallelRuns). A call goes to the first idle worker in that
 * order, so a call alone on the session always runs on the first. A worker that crashes fails its call with an
 * InferenceWorkerError and is replaced by a fresh one with the same options, which loads while the others
 * serve; release() has each release its session, then terminates it.
 */
export class WorkerSession implements Session {
  readonly parallelRuns: number;
  readonly #workers: InferenceWorker[];
  readonly #busy = new Set<InferenceWorker>();
  #nextId = 0;
  /** Crashed workers are replaced only once every worker has loaded: a load that crashes fails open(). */
  #opened = false;
  #released = false;

  private constructor(
    private readonly model: WorkerModel,
    private readonly options: Record<string, unknown>[],
  ) {
    this.parallelRuns = options.length;
    this.#workers = options.map((_, at) => this.#spawn(at));
  }

  /** Starts the workers and waits until each has loaded the model; on any failure none is left running. */
  static async open(model: WorkerModel, options: Record<string, unknown>[]): Promise<WorkerSession> {
    const session = new WorkerSession(model, options);
    try {
      await Promise.all(session.#workers.map((w) => w.loaded));
      session.#opened = true;
    } catch (err) {
      await session.release();
      throw err;
    }
    return session;
  }

  /** Workers running now (crashed ones replaced); 0 once released. */
  get liveWorkers(): number {
    return this.#workers.filter((w) => !w.stopped).length;
  }

  /** A worker for place `at` (its options), replaced in that place if it crashes. */
  #spawn(at: number): InferenceWorker {
    return new InferenceWorker({ ...this.model, options: this.options[at] }, (crashed) => {
      if (this.#opened && !this.#released && this.#workers[at] === crashed) {
        this.#workers[at] = this.#spawn(at);
      }
    });
  }

  /** Runs `work` on an idle worker; one that stopped (a failed reload) is replaced first. */
  async #onIdleWorker<T>(work: (worker: InferenceWorker, id: number) => Promise<T>): Promise<T> {
    if (this.#released) throw new InferenceWorkerError("The model's inference workers have been released");
    const at = this.#workers.findIndex((w) => !this.#busy.has(w));
    if (at < 0) throw new Error(`WorkerSession: more than ${this.parallelRuns} calls at once`);
    if (this.#workers[at].stopped) this.#workers[at] = this.#spawn(at);
    const worker = this.#workers[at];
    this.#busy.add(worker);
    try {
      return await work(worker, this.#nextId++);
    } finally {
      this.#busy.delete(worker);
    }
  }

  run(input: Tensor): Promise<Tensor> {
    return this.#onIdleWorker(async (worker, id) => {
      // A copy to hand over: the caller keeps its input (often a view of letterbox memory).
      const data = input.data.slice();
      const msg = await worker.call({ type: "run", id, data, dims: input.dims }, [data.buffer]);
      if (msg.type === "failed") throw failed(msg);
      if (msg.type !== "ran") unexpected(msg);
      return { data: msg.data, dims: msg.dims };
    });
  }

  detectImage(job: ImageJob): Promise<ImageDetections> {
    return this.#onIdleWorker(async (worker, id) => {
      // A copy to hand over: the caller keeps the encoded image (captures store it).
      const bytes = job.bytes.slice();
      const msg = await worker.call({ type: "detect", id, ...job, bytes }, [bytes.buffer]);
      if (msg.type === "failed") throw failed(msg);
      if (msg.type !== "detected") unexpected(msg);
      return msg.result;
    });
  }

  async release(): Promise<void> {
    this.#released = true;
    const reason = new InferenceWorkerError("The model's inference workers have been released");
    await Promise.all(this.#workers.map((worker) => worker.close(reason)));
  }
}

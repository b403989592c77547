import assert from "node:assert/strict";
import type { Backend, Session, Tensor } from "../../src/serving/backend.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { ModelOverloadedError } from "../../src/serving/session_queue.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

/** Any YOLO export will do (the backend is fake): the embedded default model. */
const MODEL = await Deno.readFile(new URL("../../models/default.onnx", import.meta.url));
/** Outputs per row of that model: xywh, objectness and its 3 class scores. */
const NO = 5 + 3;

/** A backend whose sessions record their life and answer a (1, 1, NO) output after an optional gate. */
class FakeBackend implements Backend {
  readonly name = "native" as const;
  readonly sessions: { released: boolean; runs: number }[] = [];
  running = 0;
  maxRunning = 0;
  failWarmup = false;
  gate?: Promise<void>;
  parallelRuns?: number;
  readonly received: Uint8Array[] = [];
  /** Every input tensor a run was given (warm-up included). */
  readonly inputs = new Set<Float32Array>();

  createSession(onnx: Uint8Array): Promise<Session> {
    this.received.push(onnx);
    const state = { released: false, runs: 0 };
    this.sessions.push(state);
    const failing = this.failWarmup;
    return Promise.resolve({
      parallelRuns: this.parallelRuns,
      run: async (input: Tensor): Promise<Tensor> => {
        if (state.released) throw new Error("run on a released session");
        this.inputs.add(input.data);
        if (failing) throw new Error("kernel not implemented");
        this.running++;
        this.maxRunning = Math.max(this.maxRunning, this.running);
        await this.gate;
        this.running--;
        state.runs++;
        return { data: new Float32Array(NO), dims: [1, 1, NO] };
      },
      release: () => {
        state.released = true;
        return Promise.resolve();
      },
    });
  }
}

Deno.test("ModelPool.swap() activates a warmed-up version and releases the old one after its requests", async () => {
  const backend = new FakeBackend();
  const pool = new ModelPool(backend);
  assert.deepEqual(await pool.swap("yolo", 1, MODEL), { name: "yolo", version: 1 });
  assert.equal(backend.sessions[0].runs, 1, "one warm-up inference before serving");
  const lease = pool.lease("yolo")!;
  await pool.swap("yolo", 2, MODEL);
  assert.equal(pool.get("yolo")!.ref.version, 2);
  assert.equal(backend.sessions[0].released, false, "v1 is still held by a request");
  await lease.model.infer(new Float32Array(3 * 640 * 640));
  await lease.release();
  assert.equal(backend.sessions[0].released, true, "v1 released once drained");
  assert.equal(backend.sessions[1].released, false);
  await pool.close();
  assert.equal(backend.sessions[1].released, true);
});

Deno.test("ModelPool.swap() rejects a model that fails warm-up or is not YOLO and keeps the old one", async () => {
  const backend = new FakeBackend();
  const pool = new ModelPool(backend);
  await pool.swap("yolo", 1, MODEL);
  backend.failWarmup = true;
  const logged: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => logged.push(args);
  try {
    await assert.rejects(pool.swap("yolo", 2, MODEL), (err: Error) => {
      assert.equal(err.message, "yolo v2: the model failed its warm-up run on the native engine");
      return true;
    });
  } finally {
    console.error = original;
  }
  assert.match(
    String(logged[0].at(-1)),
    /kernel not implemented/,
    "the engine's error is logged server-side",
  );
  assert.equal(backend.sessions[1].released, true, "the failed session is freed");
  await assert.rejects(pool.swap("yolo", 3, new Uint8Array([1, 2, 3])));
  assert.equal(pool.get("yolo")!.ref.version, 1);
  assert.equal(backend.sessions[0].released, false);
  await pool.close();
});

Deno.test("ModelPool runs one inference at a time per model and reports the queue depth", async () => {
  const backend = new FakeBackend();
  const pool = new ModelPool(backend);
  await pool.swap("yolo", 1, MODEL);
  let open!: () => void;
  backend.gate = new Promise((resolve) => open = resolve);
  const model = pool.get("yolo")!;
  const runs = [1, 2, 3].map(() => model.infer(new Float32Array(3 * 640 * 640)));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(pool.queueDepth(), 2, "one running, two waiting");
  open();
  await Promise.all(runs);
  assert.equal(backend.maxRunning, 1);
  assert.equal(pool.queueDepth(), 0);
  await pool.close();
});

Deno.test("ModelPool runs as many inferences at once as the session takes, and sheds beyond --max-queue", async () => {
  const backend = new FakeBackend();
  backend.parallelRuns = 2;
  const pool = new ModelPool(backend, undefined, undefined, 1);
  await pool.swap("yolo", 1, MODEL);
  let open!: () => void;
  backend.gate = new Promise((resolve) => open = resolve);
  const model = pool.get("yolo")!;
  const runs = [];
  for (let i = 0; i < 3; i++) {
    runs.push(model.infer(new Float32Array(3 * 640 * 640)));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(backend.running, 2);
  assert.equal(pool.queueDepth(), 1);
  assert.throws(() => model.admit(), ModelOverloadedError);
  open();
  await Promise.all(runs);
  assert.equal(backend.maxRunning, 2);
  await pool.close();
});

Deno.test("ModelPool.remove() stops serving a name and frees its session", async () => {
  const backend = new FakeBackend();
  const pool = new ModelPool(backend);
  await pool.swap("yolo", 1, MODEL);
  assert.equal(await pool.remove("yolo"), true);
  assert.equal(pool.lease("yolo"), undefined);
  assert.equal(backend.sessions[0].released, true);
  assert.equal(await pool.remove("yolo"), false);
});

Deno.test("ModelPool hands the engine only the fields the model checks decoded", async () => {
  const backend = new FakeBackend();
  const pool = new ModelPool(backend);
  const model = tinyYolo({ seed: 3, nc: NO - 5 }); // as many outputs as FakeBackend answers
  // ModelProto field 99 (varint 1): unknown to ONNX 1.10's schema, so nothing inspected it.
  const withUnknownField = new Uint8Array([...model, 0x98, 0x06, 0x01]);
  await pool.swap("tiny", 1, withUnknownField);
  assert.deepEqual(backend.received, [model]);
  await pool.close();
});

Deno.test("LoadedModel.inferPrepared() prepares an input only once a slot is free, and reuses one tensor per slot", async () => {
  const backend = new FakeBackend();
  backend.parallelRuns = 2;
  const pool = new ModelPool(backend);
  await pool.swap("yolo", 1, MODEL);
  const warmup = backend.inputs.size;
  let open!: () => void;
  backend.gate = new Promise((resolve) => open = resolve);
  const model = pool.get("yolo")!;
  let prepared = 0;
  const runs = Array.from({ length: 6 }, (_, i) =>
    model.inferPrepared(model.admit(), (input) => {
      prepared++;
      input.tensor.fill(i);
      return i;
    }));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(prepared, 2, "only the two requests holding a slot have prepared their input");
  open();
  const results = await Promise.all(runs);
  assert.deepEqual(results.map((r) => r.prepared), [0, 1, 2, 3, 4, 5]);
  assert.equal(backend.inputs.size - warmup, 2, "six runs on two input tensors, one per slot");
  await pool.close();
});

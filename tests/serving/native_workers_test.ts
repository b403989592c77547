import assert from "node:assert/strict";
import { decodeImage } from "../../src/image/decode.ts";
import { letterbox } from "../../src/image/letterbox.ts";
import type { Backend, ImageJob } from "../../src/serving/backend.ts";
import {
  nativeBackend,
  nativeSessionOptions,
  nativeWorkerThreads,
} from "../../src/serving/backends/native.ts";
import { InferenceWorkerError, WorkerSession } from "../../src/serving/backends/native_workers.ts";
import * as ort from "../../src/serving/backends/ort_native.ts";
import { detect } from "../../src/serving/detector.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { DEFAULT_DETECT_OPTIONS, type Detection, postprocess } from "../../src/serving/postprocess.ts";
import { referenceData, referenceName } from "../_helpers/reference.ts";
import { crashNextWorkerCall } from "./_crash_worker.ts";

const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx", "images/bus.jpg");

/** The embedded default model (3 classes at 128) and a fixture image it finds shapes in. */
const MODEL = await Deno.readFile(new URL("../../models/default.onnx", import.meta.url));
const IMAGE = await Deno.readFile(new URL("../fixtures/shapes/images/shapes_0000.png", import.meta.url));
const JOB: ImageJob = { bytes: IMAGE, imgsz: 128, nc: 3, opts: DEFAULT_DETECT_OPTIONS };
const LOAD = { onnx: MODEL, inputName: "images", outputName: "output0" };
/** The server's workers: on a multi-core box one of every core's threads and one of a core's share. */
const OPTIONS = nativeWorkerThreads().map((threads) => nativeSessionOptions(threads));

/** The same pipeline on this thread: decode, letterbox, one onnxruntime-node session, NMS. */
async function inThread(onnx: Uint8Array, job: ImageJob): Promise<Detection[]> {
  const session = await ort.InferenceSession.create(onnx, nativeSessionOptions());
  try {
    const image = await decodeImage(job.bytes);
    const { tensor, box } = letterbox(image, job.imgsz);
    const feeds = { images: new ort.Tensor("float32", tensor, [1, 3, job.imgsz, job.imgsz]) };
    const out = (await session.run(feeds)).output0.data as Float32Array;
    return postprocess(out, job.nc, job.opts, box, image.width, image.height);
  } finally {
    await session.release();
  }
}

/** nativeBackend, recording every session it makes (to see their workers). */
function recordingBackend(): Backend & { sessions: WorkerSession[] } {
  const sessions: WorkerSession[] = [];
  return {
    name: "native",
    sessions,
    async createSession(onnx, inputName, outputName) {
      const session = await nativeBackend.createSession(onnx, inputName, outputName);
      sessions.push(session as WorkerSession);
      return session;
    },
  };
}

Deno.test("WorkerSession detects exactly what the same pipeline finds on this thread", async () => {
  const session = await WorkerSession.open(LOAD, OPTIONS);
  try {
    const want = await inThread(MODEL, JOB);
    assert.ok(want.length > 0, "the default model finds shapes in the fixture");
    const got = await session.detectImage(JOB);
    assert.deepEqual(got.detections, want);
    assert.deepEqual([got.width, got.height], [128, 128]);
    for (const [stage, ms] of Object.entries(got.timings)) assert.ok(ms >= 0, `${stage} timed`);
  } finally {
    await session.release();
  }
});

Deno.test({
  name: referenceName(
    "WorkerSession detects exactly what this thread does for yolov5n on bus.jpg",
    REFERENCE,
  ),
  ignore: REFERENCE.missing,
  fn: async () => {
    const onnx = await Deno.readFile(REFERENCE.url("models/yolov5n.onnx"));
    const job = {
      bytes: await Deno.readFile(REFERENCE.url("images/bus.jpg")),
      imgsz: 640,
      nc: 80,
      opts: DEFAULT_DETECT_OPTIONS,
    };
    const session = await WorkerSession.open({ ...LOAD, onnx }, OPTIONS);
    try {
      // Both workers at once (one of a thread per core, one of a single thread), so each one answers.
      const [a, b] = await Promise.all([session.detectImage(job), session.detectImage(job)]);
      const want = await inThread(onnx, job);
      assert.deepEqual(a.detections, want);
      assert.deepEqual(b.detections, want);
    } finally {
      await session.release();
    }
  },
});

Deno.test("WorkerSession keeps the image error's kind and the caller's buffers", async () => {
  const session = await WorkerSession.open(LOAD, [nativeSessionOptions()]);
  try {
    const bytes = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    await assert.rejects(session.detectImage({ ...JOB, bytes }), {
      name: "ImageError",
      kind: "unsupported_media_type",
    });
    assert.equal(bytes.length, 8, "the caller's bytes are not handed over");
    const input = new Float32Array(3 * 128 * 128);
    const out = await session.run({ data: input, dims: [1, 3, 128, 128] });
    assert.equal(input.length, 3 * 128 * 128, "the caller's input is not handed over");
    assert.deepEqual(out.dims.slice(-1), [8]);
  } finally {
    await session.release();
  }
});

Deno.test("A crashed inference worker fails its call with InferenceWorkerError and is replaced", async () => {
  const session = await WorkerSession.open(LOAD, OPTIONS);
  try {
    const want = (await session.detectImage(JOB)).detections;
    crashNextWorkerCall();
    await assert.rejects(session.detectImage(JOB), InferenceWorkerError);
    assert.equal(session.liveWorkers, OPTIONS.length, "the crashed worker is replaced");
    // Two at once: the replacement (loading the model) and the other worker both answer.
    const after = await Promise.all([session.detectImage(JOB), session.detectImage(JOB)]);
    for (const result of after) assert.deepEqual(result.detections, want);
  } finally {
    await session.release();
  }
  assert.equal(session.liveWorkers, 0, "release() terminates every worker");
  await assert.rejects(session.detectImage(JOB), InferenceWorkerError);
});

Deno.test("WorkerSession.open() of a model the engine refuses leaves no worker running", async () => {
  const garbage = new Uint8Array(64).fill(7);
  await assert.rejects(WorkerSession.open({ ...LOAD, onnx: garbage }, OPTIONS));
  // The test's op sanitizer fails it if a worker were still running (its message channel stays open).
});

Deno.test("A swap under load drops no request, and the old version's workers end with its last request", async () => {
  const backend = recordingBackend();
  const pool = new ModelPool(backend);
  await pool.swap("shapes", 1, MODEL);
  const want = (await detect(pool.get("shapes")!, IMAGE, DEFAULT_DETECT_OPTIONS)).detections;
  const versions: number[] = [];
  let swapped = false;
  // Each client sends until the swap is done, then two more: requests run before, during and after it.
  const client = async () => {
    for (let after = 0; after < 2; after += swapped ? 1 : 0) {
      const lease = pool.lease("shapes")!;
      try {
        const result = await detect(lease.model, IMAGE, DEFAULT_DETECT_OPTIONS);
        assert.deepEqual(result.detections, want);
        versions.push(result.model.version);
      } finally {
        await lease.release();
      }
    }
  };
  const clients = [client(), client(), client()];
  await new Promise((r) => setTimeout(r, 20));
  await pool.swap("shapes", 2, MODEL);
  swapped = true;
  await Promise.all(clients);
  assert.ok(versions.includes(1) && versions.includes(2), "requests ran on v1, then on v2");
  assert.ok(versions.lastIndexOf(1) < versions.indexOf(2) + 3, "no request starts on v1 after the swap");
  const [v1, v2] = backend.sessions;
  assert.equal(v1.liveWorkers, 0, "v1's workers are terminated once its requests are done");
  assert.equal(v2.liveWorkers, OPTIONS.length);
  await pool.close();
  assert.equal(v2.liveWorkers, 0, "close() terminates the active version's workers");
});

Deno.test("Closing the pool with requests in flight answers them all, then terminates the workers", async () => {
  const backend = recordingBackend();
  const pool = new ModelPool(backend);
  await pool.swap("shapes", 1, MODEL);
  const want = (await detect(pool.get("shapes")!, IMAGE, DEFAULT_DETECT_OPTIONS)).detections;
  const inFlight = Array.from({ length: 4 }, async () => {
    const lease = pool.lease("shapes")!;
    try {
      return (await detect(lease.model, IMAGE, DEFAULT_DETECT_OPTIONS)).detections;
    } finally {
      await lease.release();
    }
  });
  await pool.close();
  assert.equal(backend.sessions[0].liveWorkers, OPTIONS.length, "held by the requests in flight");
  for (const detections of await Promise.all(inFlight)) assert.deepEqual(detections, want);
  assert.equal(backend.sessions[0].liveWorkers, 0);
});

/**
 * The entry module of one inference worker (native_workers.ts): a Web Worker holding one onnxruntime-node
 * session, which runs whole detect requests (decode, letterbox, session run, NMS) or bare tensor runs, one at a
 * time. onnxruntime-node runs a session synchronously on the calling thread, so on the server's JS thread every
 * run held up HTTP, decode and letterbox for its whole length; here it holds up only this worker.
 * A message this module does not know is a bug of the main thread: it throws, uncaught, which the main thread
 * sees as the worker crashing (and replaces it).
 * @module
 */
import * as ort from "./ort_native.ts";
import { decodeImage } from "../../image/decode.ts";
import { ImageError } from "../../image/errors.ts";
import { LetterboxInput } from "../../image/letterbox.ts";
import { postprocess } from "../postprocess.ts";
import type { ImageDetections } from "../backend.ts";
import type { FromInferenceWorker, ToInferenceWorker } from "./native_worker_protocol.ts";

/** The worker side of the message channel (the project's lib is deno.window, so `self` is typed as a window). */
const port = self as unknown as {
  postMessage(message: FromInferenceWorker, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<ToInferenceWorker>) => void) | null;
};

let loaded: { session: ort.InferenceSession; inputName: string; outputName: string } | undefined;
/** The letterbox input, reused from request to request (a fresh 4.9 MB tensor at 640 costs ~0.8 ms). */
let input: LetterboxInput | undefined;

function session() {
  if (!loaded) throw new Error("inference worker: a run before the session was loaded");
  return loaded;
}

async function runTensor(
  data: Float32Array,
  dims: number[],
): Promise<{ data: Float32Array<ArrayBuffer>; dims: number[] }> {
  const { session: s, inputName, outputName } = session();
  const out = (await s.run({ [inputName]: new ort.Tensor("float32", data, dims) }))[outputName];
  return { data: out.data as Float32Array<ArrayBuffer>, dims: [...out.dims] };
}

async function detectImage(
  { bytes, imgsz, nc, opts, maxPixels }: Extract<ToInferenceWorker, { type: "detect" }>,
): Promise<ImageDetections> {
  const t0 = performance.now();
  const image = await decodeImage(bytes, maxPixels);
  const t1 = performance.now();
  if (input?.size !== imgsz) input = new LetterboxInput(imgsz);
  const box = input.write(image);
  const t2 = performance.now();
  const output = (await runTensor(input.tensor, [1, 3, imgsz, imgsz])).data;
  const t3 = performance.now();
  const detections = postprocess(output, nc, opts, box, image.width, image.height);
  const t4 = performance.now();
  return {
    width: image.width,
    height: image.height,
    detections,
    timings: { decode: t1 - t0, preprocess: t2 - t1, run: t3 - t2, postprocess: t4 - t3 },
  };
}

/** An error as the main thread rebuilds it: an ImageError keeps its kind (the API's 415/422/413). */
function failure(id: number, err: unknown): FromInferenceWorker {
  const message = err instanceof Error ? err.message : String(err);
  return { type: "failed", id, message, imageError: err instanceof ImageError ? err.kind : undefined };
}

port.onmessage = (e) => {
  const msg = e.data;
  switch (msg.type) {
    case "load":
      ort.InferenceSession.create(msg.onnx, msg.options).then(
        (s) => {
          loaded = { session: s, inputName: msg.inputName, outputName: msg.outputName };
          port.postMessage({ type: "loaded" });
        },
        (err) => port.postMessage({ type: "load_failed", message: (err as Error).message }),
      );
      return;
    case "run":
      runTensor(msg.data, msg.dims).then(
        ({ data, dims }) => {
          // onnxruntime-node's output owns its own buffer, so it can be handed over instead of copied.
          port.postMessage({ type: "ran", id: msg.id, data, dims }, [data.buffer]);
        },
        (err) => port.postMessage(failure(msg.id, err)),
      );
      return;
    case "detect":
      detectImage(msg).then(
        (result) => port.postMessage({ type: "detected", id: msg.id, result }),
        (err) => port.postMessage(failure(msg.id, err)),
      );
      return;
    case "release":
      (loaded?.session.release() ?? Promise.resolve()).finally(() => port.postMessage({ type: "released" }));
      return;
    default:
      throw new Error(
        `inference worker: unknown message type ${JSON.stringify((msg as { type: unknown }).type)}`,
      );
  }
};

// Child process of ort_native_test.ts: creates one onnxruntime-node session on the embedded default model, with
// onnxruntime-node imported directly (`raw`) or through Kestrel's loader.
const ort = Deno.args[0] === "raw"
  ? await import("onnxruntime-node")
  : await import("../../src/serving/backends/ort_native.ts");
const session = await ort.InferenceSession.create(
  new URL("../../models/default.onnx", import.meta.url).pathname,
);
await session.release();

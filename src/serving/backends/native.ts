import type { Backend, Session, Tensor } from "../backend.ts";

/**
 * onnxruntime-node: the native CPU engine (runs under Deno through npm: and N-API). Imported on first use so
 * that a platform without its prebuilt binary can still fall back to wasm.
 */
export const nativeBackend: Backend = {
  name: "native",
  async createSession(onnx, inputName, outputName): Promise<Session> {
    const ort = await import("./ort_native.ts");
    const session = await ort.InferenceSession.create(onnx, { graphOptimizationLevel: "all" });
    return {
      async run(input: Tensor): Promise<Tensor> {
        const feeds = { [inputName]: new ort.Tensor("float32", input.data, input.dims) };
        const out = (await session.run(feeds))[outputName];
        return { data: out.data as Float32Array, dims: [...out.dims] };
      },
      release: () => session.release(),
    };
  },
};

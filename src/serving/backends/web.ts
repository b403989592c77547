import type { InferenceSession, Tensor as OrtTensor } from "onnxruntime-web";
import type { Backend, BackendName, Session, Tensor } from "../backend.ts";

type OrtModule = {
  InferenceSession: typeof InferenceSession;
  Tensor: typeof OrtTensor;
};

/**
 * onnxruntime-web with one execution provider. The module is imported on first use: the WebGPU build pulls
 * in the JSEP runtime, which only the webgpu backend needs.
 */
function webBackend(name: BackendName, provider: "wasm" | "webgpu", load: () => Promise<OrtModule>): Backend {
  return {
    name,
    async createSession(onnx, inputName, outputName): Promise<Session> {
      const ort = await load();
      const session = await ort.InferenceSession.create(onnx, { executionProviders: [provider] });
      return {
        async run(input: Tensor): Promise<Tensor> {
          const feeds = { [inputName]: new ort.Tensor("float32", input.data, input.dims) };
          const out = (await session.run(feeds))[outputName];
          return { data: (await out.getData()) as Float32Array, dims: [...out.dims] };
        },
        release: () => session.release(),
      };
    },
  };
}

export const wasmBackend: Backend = webBackend("wasm", "wasm", () => import("onnxruntime-web"));
export const webgpuBackend: Backend = webBackend("webgpu", "webgpu", () => import("onnxruntime-web/webgpu"));

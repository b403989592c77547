// Inference backends that fail the startup self-test the two ways a GPU path does: a session that computes
// garbage (here: every output zero, so nothing is detected) and one that cannot be created at all.
import type { Backend, BackendName } from "../../src/serving/backend.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";

export function zeroOutputBackend(name: BackendName): Backend {
  return {
    name,
    async createSession(onnx, inputName, outputName) {
      const session = await nativeBackend.createSession(onnx, inputName, outputName);
      return {
        async run(input) {
          const out = await session.run(input);
          return { data: new Float32Array(out.data.length), dims: out.dims };
        },
        release: () => session.release(),
      };
    },
  };
}

export function unloadableBackend(name: BackendName): Backend {
  return {
    name,
    createSession: () => Promise.reject(new Error("device lost")),
  };
}

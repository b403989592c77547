import { ensureRuntimeDir } from "../gpu/runtime_dir.ts";
import type { Backend, BackendChoice } from "./backend.ts";
import { nativeBackend } from "./backends/native.ts";
import { wasmBackend, webgpuBackend } from "./backends/web.ts";

/** Why this backend was chosen, for the startup log and /v1/models. */
export interface BackendSelection {
  backend: Backend;
  reason: string;
}

async function gpuAdapter(): Promise<GPUAdapter | null> {
  ensureRuntimeDir();
  try {
    return (await navigator.gpu?.requestAdapter()) ?? null;
  } catch {
    return null;
  }
}

function nativeLoads(): Promise<boolean> {
  return import("./backends/ort_native.ts").then(() => true, () => false);
}

/**
 * `auto`: WebGPU only on a real GPU (a fallback adapter such as lavapipe is a CPU emulating a GPU, slower than
 * running the model natively), else onnxruntime-node, else the wasm build, which runs anywhere.
 */
export async function selectBackend(choice: BackendChoice): Promise<BackendSelection> {
  if (choice === "native") return { backend: nativeBackend, reason: "requested" };
  if (choice === "wasm") return { backend: wasmBackend, reason: "requested" };
  const adapter = await gpuAdapter();
  if (choice === "webgpu") {
    if (!adapter) throw new Error("Backend 'webgpu' requested but navigator.gpu offers no adapter");
    return { backend: webgpuBackend, reason: `requested (adapter ${describe(adapter)})` };
  }
  if (adapter && !adapter.info.isFallbackAdapter) {
    return { backend: webgpuBackend, reason: `auto: hardware adapter ${describe(adapter)}` };
  }
  const why = adapter ? `only a fallback adapter (${describe(adapter)})` : "no WebGPU adapter";
  if (await nativeLoads()) return { backend: nativeBackend, reason: `auto: ${why}; onnxruntime-node loads` };
  return { backend: wasmBackend, reason: `auto: ${why}; onnxruntime-node unavailable` };
}

function describe(adapter: GPUAdapter): string {
  const { vendor, architecture, device, description } = adapter.info;
  return [vendor, architecture, device, description].filter(Boolean).join(" ") || "unnamed";
}

// One shared WebGPU device for tests. Tests that need a GPU call `gpuTest`, which skips them with a clear reason
// (ignore: true) where no adapter exists, instead of failing or silently passing.
import { ensureRuntimeDir } from "../../src/gpu/runtime_dir.ts";
import { type ReferenceData, referenceName } from "./reference.ts";

ensureRuntimeDir();

let devicePromise: Promise<GPUDevice | null> | undefined;

export function testDevice(): Promise<GPUDevice | null> {
  devicePromise ??= (async () => {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) return null;
    return await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
        maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
        maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
      },
    });
  })();
  return devicePromise;
}

const hasAdapter = await (async () => (await navigator.gpu?.requestAdapter()) != null)();

/** `reference`: the reference data the test reads, if any (tests/_helpers/reference.ts); skipped without it. */
export function gpuTest(
  name: string,
  fn: (device: GPUDevice) => Promise<void> | void,
  reference?: ReferenceData,
): void {
  Deno.test({
    name: !hasAdapter
      ? `${name} (skipped: no WebGPU adapter)`
      : reference
      ? referenceName(name, reference)
      : name,
    ignore: !hasAdapter || (reference?.missing ?? false),
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const device = await testDevice();
      if (!device) throw new Error("WebGPU adapter disappeared");
      await fn(device);
    },
  });
}

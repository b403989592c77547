// One shared WebGPU device for tests: the device the server and trainer compute on (src/gpu/device.ts getGpu),
// requested with the same features and limits. Tests that need a GPU call `gpuTest`, which skips them with a
// clear reason (ignore: true) where no adapter exists, instead of failing or silently passing.
import { getGpu } from "../../src/gpu/device.ts";
import { ensureRuntimeDir } from "../../src/gpu/runtime_dir.ts";
import { type ReferenceData, referenceName } from "./reference.ts";

ensureRuntimeDir();

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
      await fn((await getGpu()).device);
    },
  });
}

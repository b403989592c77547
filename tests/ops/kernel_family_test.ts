// KESTREL_KERNELS forces a conv kernel family, is validated before any command starts, and without it the
// adapter decides (src/ops/kernel_family.ts).
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { forcedKernelFamily, kernelChoice, KERNELS_ENV } from "../../src/ops/kernel_family.ts";

const ROOT = new URL("../../", import.meta.url);
/** main.ts exits before loading any command: a few seconds of module loading. */
const STARTUP_LIMIT_MS = 60_000;

/** Runs `fn` with KESTREL_KERNELS set to `value` (unset for undefined), restoring it afterwards. */
function withKernelsEnv<T>(value: string | undefined, fn: () => T): T {
  const before = Deno.env.get(KERNELS_ENV);
  if (value === undefined) Deno.env.delete(KERNELS_ENV);
  else Deno.env.set(KERNELS_ENV, value);
  try {
    return fn();
  } finally {
    if (before === undefined) Deno.env.delete(KERNELS_ENV);
    else Deno.env.set(KERNELS_ENV, before);
  }
}

Deno.test("KESTREL_KERNELS: unset or empty forces nothing, a family forces it, anything else throws", () => {
  assert.equal(withKernelsEnv(undefined, forcedKernelFamily), undefined);
  assert.equal(withKernelsEnv("", forcedKernelFamily), undefined);
  assert.equal(withKernelsEnv("tiled", forcedKernelFamily), "tiled");
  assert.equal(withKernelsEnv("register", forcedKernelFamily), "register");
  assert.throws(
    () => withKernelsEnv("Tiled", forcedKernelFamily),
    /KESTREL_KERNELS=Tiled is not a kernel family: expected one of tiled, register/,
  );
});

gpuTest("without KESTREL_KERNELS the adapter picks the family; with it the forced one runs", (device) => {
  const fallback = device.adapterInfo.isFallbackAdapter;
  assert.deepEqual(
    withKernelsEnv(undefined, () => kernelChoice(device)),
    fallback
      ? { family: "register", reason: "fallback adapter" }
      : { family: "tiled", reason: "hardware adapter" },
  );
  assert.deepEqual(
    withKernelsEnv("tiled", () => kernelChoice(device)),
    { family: "tiled", reason: "forced by KESTREL_KERNELS" },
  );
});

Deno.test("kestrel exits 2 at startup, naming the variable, on a bad KESTREL_KERNELS", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "doctor"],
    cwd: ROOT,
    env: { [KERNELS_ENV]: "fast" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(STARTUP_LIMIT_MS),
  }).output();
  assert.equal(code, 2);
  assert.equal(new TextDecoder().decode(stdout), "", "a command ran");
  assert.match(new TextDecoder().decode(stderr), /KESTREL_KERNELS=fast is not a kernel family/);
});

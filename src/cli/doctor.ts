import { statfs } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { DEFAULT_MODEL_PATH, ServerConfigSchema } from "../config/server.ts";
import { getGpu } from "../gpu/device.ts";
import { defaultImageDecoder } from "../image/decode.ts";
import { kernelChoice } from "../ops/kernel_family.ts";
import { ensureRuntimeDir } from "../gpu/runtime_dir.ts";
import { type Backend, BACKEND_CHOICES } from "../serving/backend.ts";
import { readModelSpec } from "../serving/model_spec.ts";
import { selectBackend } from "../serving/select.ts";
import { type CheckResult, detectCheck, testImage, trainingCheck } from "../selftest/self_test.ts";

const USAGE =
  "Usage: deno task doctor [--data-dir ./data] [--backend auto|webgpu|wasm|native] [--min-free-bytes N]";

const DoctorArgs = z.object({
  "data-dir": z.string().min(1).default("./data"),
  backend: z.enum(BACKEND_CHOICES).default("auto"),
  /** Room for one fine-tune upload at the server's default --max-dataset-bytes, unpacked. */
  "min-free-bytes": z.coerce.number().int().nonnegative().default(
    ServerConfigSchema.parse({}).maxDatasetBytes,
  ),
});

/** The limits that decide whether the training program fits the adapter (see gpu/device.ts). */
const KEY_LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
] as const;

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

/** The data dir, or its nearest existing parent when it is not made yet (the server creates it). */
async function existingDir(path: string): Promise<string> {
  for (let dir = resolve(path);; dir = dirname(dir)) {
    try {
      if ((await Deno.stat(dir)).isDirectory) return dir;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound) || dir === "/") throw err;
    }
  }
}

async function adapterFacts(): Promise<CheckResult> {
  ensureRuntimeDir();
  const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" }).catch(() =>
    null
  );
  if (!adapter) {
    return { ok: false, detail: "none (fine-tuning needs WebGPU: install a GPU driver or Mesa's lavapipe)" };
  }
  const { vendor, architecture, device, description, isFallbackAdapter } = adapter.info;
  const limits = KEY_LIMITS.map((k) => `${k}=${adapter.limits[k]}`).join(" ");
  return {
    ok: true,
    detail: `${[vendor, architecture, device, description].filter(Boolean).join(" ") || "unnamed"}; ` +
      `${isFallbackAdapter ? "fallback (software)" : "hardware"}; features: ${
        [...adapter.features].sort().join(" ") || "none"
      }; ` +
      `limits: ${limits}`,
  };
}

/**
 * `kestrel doctor`: what this box offers Kestrel and whether it works here: platform, Deno, the WebGPU adapter,
 * the JPEG decoder (libturbojpeg or sharp), the conv kernel family fine-tuning runs there
 * (src/ops/kernel_family.ts), the backend `auto` picks and why, the self-test on the bundled default model, free
 * disk in the data dir. Exits
 * 1 when any check fails.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      "data-dir": { type: "string" },
      backend: { type: "string" },
      "min-free-bytes": { type: "string" },
    },
  });
  const parsed = DoctorArgs.safeParse(values);
  if (!parsed.success) {
    console.error(`${z.prettifyError(parsed.error)}\n${USAGE}`);
    return 2;
  }
  const a = parsed.data;
  let failed = 0;
  const report = (name: string, result: CheckResult) => {
    if (!result.ok) failed++;
    console.log(`${result.ok ? "ok  " : "FAIL"} ${name}: ${result.detail}`);
  };
  /** Runs a check; one that throws fails with its message instead of ending the report. */
  const check = async (name: string, fn: () => Promise<CheckResult>) => {
    report(name, await fn().catch((err) => ({ ok: false, detail: (err as Error).message })));
  };

  const memory = Deno.systemMemoryInfo();
  report("platform", {
    ok: true,
    detail: `${Deno.build.target}, kernel ${Deno.osRelease()}, ${navigator.hardwareConcurrency} CPUs, ` +
      `${gib(memory.total)} memory (${gib(memory.available)} available)`,
  });
  report("deno", { ok: true, detail: `${Deno.version.deno} (V8 ${Deno.version.v8})` });
  // Not a failure without libturbojpeg: sharp decodes the same pixels, only slower.
  report("jpeg decoder", { ok: true, detail: defaultImageDecoder().jpegDecoder });
  await check("webgpu adapter", adapterFacts);
  await check("conv kernels", async () => {
    const { family, reason } = kernelChoice((await getGpu()).device);
    return { ok: true, detail: `${family} (${reason})` };
  });
  let backend: Backend | undefined;
  await check("inference backend", async () => {
    const selection = await selectBackend(a.backend);
    backend = selection.backend;
    return { ok: true, detail: `${selection.backend.name} (${selection.reason})` };
  });
  const modelBytes = await Deno.readFile(DEFAULT_MODEL_PATH);
  const image = await testImage(readModelSpec(modelBytes, "the default model").imgsz);
  if (backend) await check("self-test detect", () => detectCheck(backend as Backend, modelBytes, image));
  await check("self-test training step", async () => {
    const config = JSON.parse(
      await Deno.readTextFile(DEFAULT_MODEL_PATH.replace(/\.onnx$/, ".finetune.json")),
    );
    return trainingCheck(await getGpu(), modelBytes, config, image);
  });
  await check("free disk", async () => {
    const dir = await existingDir(a["data-dir"]);
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    return {
      ok: free >= a["min-free-bytes"],
      detail: `${gib(free)} free in ${dir} (data dir ${a["data-dir"]}; need ${gib(a["min-free-bytes"])})`,
    };
  });
  console.log(failed ? `${failed} check(s) failed` : "all checks passed");
  return failed ? 1 : 0;
}

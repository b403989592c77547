import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import {
  buildGpuBenchPackage,
  GPU_BENCH_PACKAGE_LIMIT_BYTES,
  LEFT_OUT_PACKAGES,
} from "../bundle/gpu_bench_package.ts";
import { referenceDir } from "../config/reference_dir.ts";

const USAGE =
  "Usage: deno task gpu-bench-package --yolov5 DIR --vulkan-debs DIR [--reference DIR] [--out dist]  (README: Measuring on a GPU)";

const PackageArgs = z.object({
  yolov5: z.string().min(1),
  "vulkan-debs": z.string().min(1),
  reference: z.string().min(1).default(fileURLToPath(referenceDir())),
  out: z.string().min(1).default("dist"),
});

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** `deno task gpu-bench-package`: the offline package scripts/gpu_bench.sh runs on a GPU machine. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      yolov5: { type: "string" },
      "vulkan-debs": { type: "string" },
      reference: { type: "string" },
      out: { type: "string" },
    },
  });
  const parsed = PackageArgs.safeParse(values);
  if (!parsed.success) {
    console.error(`${z.prettifyError(parsed.error)}\n${USAGE}`);
    return 2;
  }
  const a = parsed.data;
  const result = await buildGpuBenchPackage(ROOT, {
    yolov5Dir: a.yolov5,
    vulkanDebsDir: a["vulkan-debs"],
    referenceDir: a.reference,
    outDir: a.out,
  });
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  console.log(`${result.path}: ${mib(result.bytes)} (limit ${mib(GPU_BENCH_PACKAGE_LIMIT_BYTES)})`);
  console.log(
    `largest parts (uncompressed): ${result.largest.map((p) => `${p.part} ${mib(p.bytes)}`).join(", ")}`,
  );
  for (const [name, why] of Object.entries(LEFT_OUT_PACKAGES)) console.log(`left out: ${name}: ${why}`);
  if (result.bytes > GPU_BENCH_PACKAGE_LIMIT_BYTES) {
    console.error("the package is over the limit: the GPU machine will not take it");
    return 1;
  }
  return 0;
}

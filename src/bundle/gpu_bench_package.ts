/**
 * The package scripts/gpu_bench.sh runs on a bare x86_64 GPU machine with no network: Kestrel's runtime trimmed to
 * what the doctor and the training benches load, the reference model and images the benches read, ultralytics
 * YOLOv5 v7.0's models/ and utils/ for the PyTorch comparison (given at build time, never part of this repository),
 * the Vulkan loader's Debian packages for machines without one, and the bench's own scripts. One .tar.xz of at most
 * GPU_BENCH_PACKAGE_LIMIT_BYTES.
 */
import { cp } from "node:fs/promises";
import { join, resolve } from "node:path";
import { archiveTree } from "./archive.ts";
import { largestParts, projectVersion, stageRuntime } from "./build.ts";
import { npmClosure, type NpmLock } from "./node_modules.ts";
import { run } from "./npm_pack.ts";
import { target } from "./targets.ts";

/** What the device machines accept from one session's working tree (and what the issue asks of the package). */
export const GPU_BENCH_PACKAGE_LIMIT_BYTES = 64 * 2 ** 20;

/** The modules the package runs (scripts/gpu_bench.sh): their npm imports, and what those need, are kept. */
const ENTRY_MODULES = [
  "src/cli/doctor.ts",
  "src/cli/bench.ts",
  "src/bench/finetune_step.ts",
  "src/bench/conv_shapes.ts",
];
/**
 * npm packages those modules import that the package leaves out, and why. The doctor then picks onnxruntime-web
 * (WebGPU on a hardware adapter, wasm on a fallback one) for its detect self-test.
 */
export const LEFT_OUT_PACKAGES: Record<string, string> = {
  "onnxruntime-node":
    "the native inference backend (45 MB, 12.6 MB compressed); the doctor falls back to onnxruntime-web",
};
/**
 * What the package keeps of onnxruntime-web's dist/, 136 MB of builds for every loader: the module Deno loads for
 * the wasm backend (the "node" export condition) and its wasm build, and the WebGPU backend's bundle and the asyncify
 * wasm build it loads. The JSEP, JSPI and WebGL builds and the other bundles stay out.
 */
const ORT_WEB_DIST = /\/onnxruntime-web\/dist\/([^/]+)$/;
const ORT_WEB_DIST_KEPT = new Set([
  "ort.node.min.mjs",
  "ort-wasm-simd-threaded.mjs",
  "ort-wasm-simd-threaded.wasm",
  "ort.webgpu.bundle.min.mjs",
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm",
]);

/** Type declarations: the package runs, nothing in it type-checks. */
const TYPE_DECLARATIONS = /\.d\.[cm]?ts$/;

function leftOut(path: string): boolean {
  const dist = ORT_WEB_DIST.exec(path);
  return TYPE_DECLARATIONS.test(path) || (dist !== null && !ORT_WEB_DIST_KEPT.has(dist[1]));
}
/** Reference data files the benches and the PyTorch step read (src/config/reference_dir.ts's folder layout). */
const REFERENCE_FILES = [
  "models/yolov5n.onnx",
  "models/yolov5n.pt",
  "golden/finetune-sgd/images",
  "golden/finetune-sgd/labels",
  "golden/finetune-sgd/scenario.json",
  "tools/wgsl_roofline.ts",
];
/** What the PyTorch step imports from YOLOv5 v7.0 (and the yaml a model is built from when the .pt cannot load). */
const YOLOV5_FILES = ["models/yolo.py", "models/yolov5n.yaml", "utils/loss.py", "utils/torch_utils.py"];
/** scripts/ files the bench script runs from inside the package. */
const BENCH_SCRIPTS = ["gpu_bench.sh", "gpu_bench_torch.py", "gpu_bench_table.ts"];

export interface GpuBenchInputs {
  /** A folder holding ultralytics YOLOv5 v7.0's models/ and utils/ (`git archive v7.0 models utils`, unpacked). */
  yolov5Dir: string;
  /** A folder of Debian amd64 .deb files: the Vulkan loader (libvulkan1) and what it names beside it. */
  vulkanDebsDir: string;
  /** The reference data folder (README: Reference data). */
  referenceDir: string;
  outDir: string;
  /**
   * xz's preset, 0-9 (default 6, what the package is measured at). A lower one is faster and never smaller: a test
   * that finds the package within the limit at 3 has shown it for 6 too, in a third of the time.
   */
  xzPreset?: number;
}

export interface GpuBenchPackage {
  /** The .tar.xz written. */
  path: string;
  bytes: number;
  /** Top-level parts and the largest npm packages before compression, largest first. */
  largest: { part: string; bytes: number }[];
}

async function missing(dir: string, files: readonly string[]): Promise<string[]> {
  const absent: string[] = [];
  for (const file of files) await Deno.stat(join(dir, file)).catch(() => absent.push(file));
  return absent;
}

/** The deno.lock npm keys the entry modules import (deno info's graph, dynamic imports with literal specifiers included). */
async function importedPackages(root: string): Promise<string[]> {
  const keys = new Set<string>();
  for (const entry of ENTRY_MODULES) {
    const info = JSON.parse(await run(Deno.execPath(), ["info", "--json", entry], root)) as {
      modules: { specifier: string }[];
    };
    for (const { specifier } of info.modules) {
      // "npm:/onnxruntime-web@1.30.0/webgpu" -> "onnxruntime-web@1.30.0"
      const match = /^npm:\/((?:@[^/]+\/)?[^/@]+@[^/]+)/.exec(specifier);
      if (match) keys.add(match[1]);
    }
  }
  return [...keys].filter((key) => !(key.slice(0, key.lastIndexOf("@")) in LEFT_OUT_PACKAGES));
}

/**
 * Removes what leftOut names from the staged node_modules and gives every file still hard-linked to Deno's npm cache an
 * inode of its own: another `deno install` on the machine changing that inode's link count (and so its ctime) while
 * tar reads it would make tar fail with "file changed as we read it".
 */
async function finishNodeModules(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) await finishNodeModules(path);
    else if (leftOut(path)) await Deno.remove(path);
    else if (entry.isFile && ((await Deno.lstat(path)).nlink ?? 1) > 1) {
      await Deno.copyFile(path, `${path}.copy`);
      await Deno.rename(`${path}.copy`, path);
    }
  }
}

/** Builds <outDir>/kestrel-gpubench-<version>.tar.xz from the project at `root`. Needs the npm registry only. */
export async function buildGpuBenchPackage(root: string, inputs: GpuBenchInputs): Promise<GpuBenchPackage> {
  const absentYolo = await missing(inputs.yolov5Dir, YOLOV5_FILES);
  if (absentYolo.length) {
    throw new Error(
      `${inputs.yolov5Dir} is not YOLOv5 v7.0's models/ and utils/: no ${absentYolo.join(", ")}`,
    );
  }
  const absentReference = await missing(inputs.referenceDir, REFERENCE_FILES);
  if (absentReference.length) {
    throw new Error(`reference data folder ${inputs.referenceDir} lacks ${absentReference.join(", ")}`);
  }
  const debs = [...Deno.readDirSync(inputs.vulkanDebsDir)].map((e) => e.name).filter((n) =>
    n.endsWith(".deb")
  );
  if (!debs.some((n) => /^libvulkan1_.*_amd64\.deb$/.test(n))) {
    throw new Error(`${inputs.vulkanDebsDir} has no libvulkan1_*_amd64.deb (README: Measuring on a GPU)`);
  }
  const version = await projectVersion(root);
  const name = `kestrel-gpubench-${version}`;
  const staging = await Deno.makeTempDir({ prefix: "kestrel-gpubench-" });
  try {
    const top = join(staging, name);
    const lock = JSON.parse(await Deno.readTextFile(join(root, "deno.lock"))) as { npm: NpmLock };
    await stageRuntime(
      root,
      target("x86_64-unknown-linux-gnu"),
      top,
      npmClosure(lock.npm, await importedPackages(root)),
    );
    await finishNodeModules(join(top, "app", "node_modules"));
    await Deno.copyFile(join(root, "deploy", "kestrel"), join(top, "bin", "kestrel"));
    await Deno.chmod(join(top, "bin", "kestrel"), 0o755);
    for (const file of REFERENCE_FILES) {
      await cp(join(inputs.referenceDir, file), join(top, "reference", file), { recursive: true });
    }
    // The reference data may be read-only (../shared is): its copy must stay removable.
    await run("chmod", ["-R", "u+w", join(top, "reference")], staging);
    for (const dir of ["models", "utils"]) {
      await cp(join(inputs.yolov5Dir, dir), join(top, "yolov5", dir), { recursive: true });
    }
    await Deno.mkdir(join(top, "vulkan"));
    for (const deb of debs) await Deno.copyFile(join(inputs.vulkanDebsDir, deb), join(top, "vulkan", deb));
    await Deno.mkdir(join(top, "bench"));
    for (const script of BENCH_SCRIPTS) {
      await Deno.copyFile(join(root, "scripts", script), join(top, "bench", script));
    }
    await Deno.writeTextFile(join(top, "VERSION"), `${version}\n`);
    const topParts = [...Deno.readDirSync(top)].filter((e) => e.name !== "app").map((e) => join(top, e.name));
    const largest = await largestParts(top, [
      ...topParts,
      join(top, "app", "models"),
      join(top, "app", "src"),
    ], 8);
    await Deno.mkdir(inputs.outDir, { recursive: true });
    const path = resolve(inputs.outDir, `${name}.tar.xz`);
    await archiveTree(path, staging, name, ["-I", `xz -T0 -${inputs.xzPreset ?? 6}`]);
    return { path, bytes: (await Deno.stat(path)).size, largest };
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
}

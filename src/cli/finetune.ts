/**
 * `deno task finetune --config FILE --model PATH --data DIR --out DIR [--epochs 3] [--hyp.lr0 0.02] ...`: fine-tunes
 * an ONNX YOLOv5 model on a YOLO-layout dataset with the WGSL trainer and writes DIR/last.onnx (final weights),
 * DIR/ema.onnx (EMA weights) and DIR/trace.jsonl (one train.py-style line per iteration). Any other `--key value`
 * overrides that config key (dots reach into `hyp` and `ema`). A config's own `model` and `data` keys (as in the
 * golden scenario.json files) are read relative to the config file. `--frozen-cache on|off|auto` forces or
 * forbids caching the frozen layers' features (auto: when freeze > 0 and augment is off). `--amp true|false`
 * (the config key `amp`) trains in mixed precision or not; auto: on hardware adapters with shader-f16. The
 * summary line's `stages` says where the command's wall time went, start-up (the runtime and module loading
 * before this command runs, from the process's time origin) and the WebGPU device included.
 */
import { dirname, resolve } from "node:path";
import { applyOverrides, parseFinetuneConfig } from "../config/finetune.ts";
import { getGpu } from "../gpu/device.ts";
import { OnnxModel } from "../onnx/model.ts";
import { kernelChoice } from "../ops/kernel_family.ts";
import { DatasetError } from "../train/data/problems.ts";
import { runFinetune } from "../train/finetune_run.ts";
import { StageClock } from "../train/stages.ts";

const USAGE = "Usage: deno task finetune --config FILE [--model PATH] [--data DIR] --out DIR " +
  "[--frozen-cache auto|on|off] [--amp auto|true|false] [--<config key> VALUE ...] (e.g. --epochs 3 --hyp.lr0 0.02)";
const OWN_FLAGS = ["config", "model", "data", "out", "frozen-cache"];

/** `--key value` and `--key=value` pairs; throws on anything else. */
export function parseFlags(args: string[]): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--") || arg.length < 3) throw new Error(`unexpected argument '${arg}'`);
    const eq = arg.indexOf("=");
    if (eq > 0) {
      flags[arg.slice(2, eq)] = arg.slice(eq + 1);
    } else {
      if (i + 1 >= args.length) throw new Error(`flag '${arg}' needs a value`);
      flags[arg.slice(2)] = args[++i];
    }
  }
  return flags;
}

export async function run(args: string[]): Promise<number> {
  // performance.now() counts from the process's start: what passed before this line is the runtime's start-up.
  const startup = performance.now() / 1000;
  let flags: Record<string, string>;
  try {
    flags = parseFlags(args);
  } catch (err) {
    console.error(`finetune: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const overrides = Object.fromEntries(Object.entries(flags).filter(([k]) => !OWN_FLAGS.includes(k)));
  const cacheFlag = flags["frozen-cache"] ?? "auto";
  if (!flags.out || !["auto", "on", "off"].includes(cacheFlag)) {
    console.error(USAGE);
    return 2;
  }
  const configPath = flags.config;
  const base = configPath ? dirname(resolve(configPath)) : Deno.cwd();
  let config;
  try {
    const raw = configPath ? JSON.parse(await Deno.readTextFile(configPath)) : {};
    config = parseFinetuneConfig(applyOverrides(raw, overrides), configPath ?? "command line");
  } catch (err) {
    console.error(`finetune: ${(err as Error).message}`);
    return 2;
  }
  const modelPath = flags.model ?? (config.model && resolve(base, config.model));
  const dataDir = flags.data ?? (config.data && resolve(base, config.data));
  if (!modelPath || !dataDir) {
    console.error(`finetune: --model and --data are required (or 'model'/'data' in the config)\n${USAGE}`);
    return 2;
  }
  try {
    const clock = new StageClock();
    const gpu = await getGpu();
    const device = clock.lap();
    const kernels = kernelChoice(gpu.device);
    console.error(
      `adapter: ${gpu.adapterName}${gpu.isFallback ? " (fallback)" : ""}; ` +
        `conv kernels: ${kernels.family} (${kernels.reason})`,
    );
    const model = OnnxModel.parse(await Deno.readFile(modelPath));
    const modelSeconds = clock.lap();
    const result = await runFinetune({
      gpu,
      model,
      config,
      dataDir,
      outDir: flags.out,
      frozenCache: cacheFlag === "auto" ? undefined : cacheFlag === "on",
      log: (message) => console.error(message),
    });
    console.log(JSON.stringify({
      out: flags.out,
      iterations: result.trace.length,
      kernels: kernels.family,
      images_per_second: result.imagesPerSecond,
      step_images_per_second: result.stepImagesPerSecond,
      cache_seconds: result.cacheSeconds,
      base: result.base && { map50: result.base.map50, map50_95: result.base.map50_95 },
      ema: result.ema && { map50: result.ema.map50, map50_95: result.ema.map50_95 },
      stages: roundedSeconds({ startup, device, model: modelSeconds, ...result.stages }),
      total_seconds: round2(performance.now() / 1000),
    }));
    return 0;
  } catch (err) {
    console.error(`finetune: ${(err as Error).message}`);
    return err instanceof DatasetError ? 1 : 3;
  }
}

function round2(seconds: number): number {
  return Math.round(seconds * 100) / 100;
}

function roundedSeconds(stages: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, round2(v)]));
}

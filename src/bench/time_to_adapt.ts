/**
 * Time to an adapted model (issue 18): the whole `deno task finetune` command of a frozen-backbone site
 * scenario, timed from outside as a user waits for it (runtime start-up to the written, evaluated model), with
 * the command's own stages (its summary line's `stages`), and beside it train.py's epoch-loop time on the same
 * frames and settings when a YOLOv5 checkout is given.
 *
 * The scenario is made here, so it needs no reference data: 67 synthetic 320x320 site frames to adapt on
 * (`deno task synth`, seed 1) and 17 held back to score the base and the result (seed 2, in val/), a freshly
 * initialised yolov5n-architecture model for their 3 classes (`deno task new-model`), freeze 10 (the backbone),
 * 20 epochs at 320, batch 16, augmentation off (so the frozen features are cached).
 *
 * `KESTREL_YOLOV5_DIR` (an ultralytics YOLOv5 v7.0 checkout; `KESTREL_PYTHON`, default python3, must have
 * PyTorch) adds train.py's loop time on the same scenario, run right after Kestrel's (scripts/train_py_loop.py),
 * and `ratio`: Kestrel's whole command over train.py's loop alone (goal <= 2).
 */
import { join } from "node:path";
import { newModelBytes } from "../train/new_model.ts";
import { writeSynthDataset } from "../train/synth.ts";

const IMGSZ = 320, TRAIN_FRAMES = 67, HELD_BACK = 17;
const SETTINGS = { epochs: 20, imgsz: IMGSZ, batch_size: 16, freeze: 10, augment: false };
const ROOT = new URL("../../", import.meta.url);

export async function bench(): Promise<Record<string, unknown>> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-adapt-" });
  try {
    const data = join(dir, "site");
    await writeSynthDataset(data, { n: TRAIN_FRAMES, imgsz: IMGSZ, seed: 1 });
    await writeSynthDataset(join(data, "val"), { n: HELD_BACK, imgsz: IMGSZ, seed: 2 });
    const model = join(dir, "model.onnx");
    await Deno.writeFile(model, newModelBytes({ nc: 3, depth: 0.33, width: 0.25, imgsz: IMGSZ }));
    const kestrel = await runKestrel(model, data, join(dir, "kestrel"));
    const trainPy = await runTrainPy(data, join(dir, "train_py"));
    return {
      scenario:
        `${TRAIN_FRAMES} synthetic frames (+${HELD_BACK} held back) at ${IMGSZ}, yolov5n architecture ` +
        `(nc 3), freeze ${SETTINGS.freeze}, ${SETTINGS.epochs} epochs, batch ${SETTINGS.batch_size}, augment off`,
      kestrel_seconds: kestrel.seconds,
      kestrel_stages: kestrel.summary.stages,
      kestrel_loop_images_per_second: round2(kestrel.summary.images_per_second),
      kestrel_kernels: kestrel.summary.kernels,
      frozen_cache: kestrel.summary.cache_seconds !== null,
      ...("skipped" in trainPy ? { train_py: trainPy } : {
        train_py_loop_seconds: trainPy.loop_seconds,
        train_py_threads: trainPy.threads,
        ratio: round2(kestrel.seconds / trainPy.loop_seconds),
      }),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface FinetuneSummary {
  stages: Record<string, number>;
  /** trained images per second over the training loop */
  images_per_second: number;
  kernels: string;
  cache_seconds: number | null;
}

/** `deno task finetune` in its own process; wall seconds from spawn to exit, and its summary line. */
async function runKestrel(model: string, data: string, out: string) {
  const flags = Object.entries(SETTINGS).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const args = ["run", "-A", "main.ts", "finetune", "--model", model, "--data", data, "--out", out, ...flags];
  const t0 = performance.now();
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const seconds = round2((performance.now() - t0) / 1000);
  const stdout = new TextDecoder().decode(result.stdout).trim();
  if (!result.success) {
    const stderr = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-3).join(" | ");
    throw new Error(`deno task finetune exited ${result.code}: ${stderr}`);
  }
  return { seconds, summary: JSON.parse(stdout.split("\n").at(-1)!) as FinetuneSummary };
}

/** scripts/train_py_loop.py on the same data, or why it was skipped. */
async function runTrainPy(data: string, out: string) {
  const yolov5 = Deno.env.get("KESTREL_YOLOV5_DIR");
  if (!yolov5) {
    return { skipped: "set KESTREL_YOLOV5_DIR to a YOLOv5 v7.0 checkout to compare with train.py" };
  }
  const script = new URL("scripts/train_py_loop.py", ROOT).pathname;
  const flags = ["--epochs", "--imgsz", "--batch", "--freeze"]
    .flatMap((f, i) => [f, String([SETTINGS.epochs, IMGSZ, SETTINGS.batch_size, SETTINGS.freeze][i])]);
  const result = await new Deno.Command(Deno.env.get("KESTREL_PYTHON") ?? "python3", {
    args: [script, yolov5, data, out, ...flags],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(result.stdout).trim();
  if (!result.success) {
    const stderr = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-3).join(" | ");
    throw new Error(`scripts/train_py_loop.py exited ${result.code}: ${stderr}`);
  }
  return JSON.parse(stdout.split("\n").at(-1)!) as { loop_seconds: number; threads: number };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

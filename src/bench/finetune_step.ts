/**
 * Fine-tune throughput of the yolov5n export at imgsz 320, batch 8 (KESTREL_BENCH_* change them:
 * support/bench_env.ts), every layer trained: forward, loss,
 * backward and the SGD optimizer step in one submit per step, as the training loop runs it. Also GFLOP/s per op
 * class (each class's dispatches replayed alone, timed per submit) and the adapter's matmul roofline measured by
 * the reference data's tools/wgsl_roofline.ts in a subprocess before and after each round of timed steps
 * (roofline_fraction = images/s over the mean of the two readings / the step's own GFLOP per image (the sum of its
 * dispatches' FLOPs), the median over rounds), and (with timestamp queries) the slowest dispatches of one step
 * timed each on its own (src/ops/dispatch_profile.ts). `precision` times the same step in f32 and with amp (f16
 * GEMM operands, loss scale, unscale + overflow check; needs shader-f16) in alternating rounds, so both figures
 * come from the same phase of the host. With KESTREL_BENCH_THROUGHPUT_ONLY only images/s over one round is
 * measured (what scripts/gpu_bench.sh compares with PyTorch). Needs the reference data
 * (src/config/reference_dir.ts); reports `skipped` without it.
 */
import { getGpu, type Gpu } from "../gpu/device.ts";
import { ProgramCache } from "../gpu/programs.ts";
import { decodeImage } from "../image/decode.ts";
import { OnnxModel } from "../onnx/model.ts";
import { submitDispatches } from "../ops/context.ts";
import type { Dispatch } from "../ops/types.ts";
import { GRAD_SCALER_DEFAULTS } from "../optim/grad_scaler.ts";
import { Optimizer } from "../optim/optimizer.ts";
import { streamChunk } from "../gpu/runs.ts";
import { TrainProgram } from "../train/program.ts";
import { profileDispatches } from "../ops/dispatch_profile.ts";
import { missingReferenceFiles, missingReferenceMessage, referenceDir } from "../config/reference_dir.ts";
import { median } from "./support/stats.ts";
import { trainBenchOptions } from "./support/bench_env.ts";

/** The golden images' size: other sizes resample them. */
const GOLDEN_IMGSZ = 320;
const OPTIONS = trainBenchOptions({ batch: 8, imgsz: GOLDEN_IMGSZ, steps: 2 });
const { batch: BATCH, imgsz: IMGSZ } = OPTIONS;
/** Rounds of (roofline, KESTREL_BENCH_STEPS steps); the reported fraction is their median. */
const ROUNDS = 3;
/** Slowest dispatches listed from the timestamped replay. */
const TOP_DISPATCHES = 12;
const SHARED = referenceDir();
const REFERENCE_FILES = [
  "models/yolov5n.onnx",
  "golden/finetune-sgd/",
  ...(OPTIONS.throughputOnly ? [] : ["tools/wgsl_roofline.ts"]),
];
const GOLDEN = new URL("golden/finetune-sgd/", SHARED);
/** hyp.scratch-low.yaml's loss keys (the reference data's golden/finetune-sgd/scenario.json uses the same). */
const HYP = { box: 0.05, obj: 1.0, cls: 0.5, cls_pw: 1.0, obj_pw: 1.0, anchor_t: 4.0, fl_gamma: 0.0 };

/**
 * The golden fine-tune's 320x320 images (nearest-resampled to IMGSZ: the pixels do not change the work) and
 * labels (normalised, so valid at any size), repeated to fill the batch.
 */
async function batchData(): Promise<{ images: Float32Array; targets: Float32Array }> {
  const stems = ["bus", "chelsea", "coffee", "zidane"];
  const per = 3 * IMGSZ * IMGSZ;
  const images = new Float32Array(BATCH * per);
  const rows: number[] = [];
  for (let b = 0; b < BATCH; b++) {
    const stem = stems[b % stems.length];
    const img = await decodeImage(await Deno.readFile(new URL(`images/${stem}.png`, GOLDEN)));
    for (let y = 0; y < IMGSZ; y++) {
      const sy = Math.floor(y * GOLDEN_IMGSZ / IMGSZ);
      for (let x = 0; x < IMGSZ; x++) {
        const from = (sy * GOLDEN_IMGSZ + Math.floor(x * GOLDEN_IMGSZ / IMGSZ)) * 3;
        for (let c = 0; c < 3; c++) {
          images[b * per + c * IMGSZ * IMGSZ + y * IMGSZ + x] = img.data[from + c] / 255;
        }
      }
    }
    const labels = await Deno.readTextFile(new URL(`labels/${stem}.txt`, GOLDEN));
    for (const line of labels.trim().split("\n")) rows.push(b, ...line.trim().split(/\s+/).map(Number));
  }
  return { images, targets: new Float32Array(rows) };
}

async function timeDispatches(device: GPUDevice, dispatches: Dispatch[]): Promise<number> {
  submitDispatches(device, dispatches);
  await device.queue.onSubmittedWorkDone();
  const t = performance.now();
  submitDispatches(device, dispatches);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t) / 1000;
}

async function roofline(): Promise<unknown> {
  const tool = new URL("tools/wgsl_roofline.ts", SHARED);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", tool.pathname],
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (!out.success) return { error: new TextDecoder().decode(out.stderr).trim().slice(-300) };
  return JSON.parse(text);
}

/** One training step of the yolov5n program (f32, or amp at GradScaler's initial scale), SGD included. */
function stepper(
  gpu: Gpu,
  programs: ProgramCache,
  model: OnnxModel,
  amp: boolean,
  data: { images: Float32Array; targets: Float32Array },
) {
  const { device } = gpu;
  const program = TrainProgram.create(device, model, {
    batch: BATCH,
    imgsz: IMGSZ,
    hyp: HYP,
    freeze: 0,
    programs,
    amp,
    chunk: streamChunk(gpu.isFallback),
  });
  const lossScale = amp ? program.loss!.scale : undefined;
  if (lossScale) {
    const s = GRAD_SCALER_DEFAULTS.initScale;
    device.queue.writeBuffer(lossScale, 0, new Float32Array([s, 1 / s]));
  }
  const optimizer = new Optimizer(device, programs, program.layout.entries, {
    params: program.params,
    grads: program.grads!,
  }, { kind: "SGD", weightDecay: 5e-4, chunk: streamChunk(gpu.isFallback), lossScale });
  const hyper = { lr: [0.01, 0.01, 0.01], momentum: [0.937, 0.937, 0.937] };
  return {
    program,
    step: () => program.step(data.images, data.targets, BATCH, (enc) => optimizer.step(enc, hyper)),
    destroy() {
      optimizer.destroy();
      program.destroy();
    },
  };
}

/** f32 and amp steps in alternating rounds: images/s of each (medians) and their ratio. */
async function precision(
  gpu: Gpu,
  programs: ProgramCache,
  model: OnnxModel,
  data: { images: Float32Array; targets: Float32Array },
): Promise<Record<string, unknown>> {
  if (!gpu.hasF16) return { skipped: "the adapter has no shader-f16" };
  const runs = [false, true].map((amp) => stepper(gpu, programs, model, amp, data));
  try {
    for (const r of runs) await r.step();
    const rates: [number[], number[]] = [[], []];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [k, r] of runs.entries()) {
        const t0 = performance.now();
        for (let i = 0; i < OPTIONS.steps; i++) await r.step();
        rates[k].push(BATCH * OPTIONS.steps / ((performance.now() - t0) / 1000));
      }
    }
    const [f32, amp] = rates.map(median);
    return {
      f32_images_per_s: +f32.toFixed(3),
      amp_images_per_s: +amp.toFixed(3),
      amp_over_f32: +(amp / f32).toFixed(3),
    };
  } finally {
    runs.forEach((r) => r.destroy());
  }
}

export async function bench(): Promise<Record<string, unknown>> {
  const missing = missingReferenceFiles(REFERENCE_FILES);
  if (missing.length) return { skipped: missingReferenceMessage(missing) };
  const gpu = await getGpu();
  if (OPTIONS.amp && !gpu.hasF16) return { skipped: "amp: not available (the adapter has no shader-f16)" };
  const { device } = gpu;
  const programs = new ProgramCache(device);
  const model = OnnxModel.parse(await Deno.readFile(new URL("models/yolov5n.onnx", SHARED)));
  const { images, targets } = await batchData();
  const main = stepper(gpu, programs, model, OPTIONS.amp, { images, targets });
  const { program, step } = main;
  const all = program.stepDispatches;
  const totalFlops = all.reduce((s, d) => s + (d.flops ?? 0), 0);
  const gflopPerImage = totalFlops / BATCH / 1e9;
  const first = await step();
  for (let i = 1; i < OPTIONS.warmup; i++) await step();
  // This host's speed changes by up to 2x from one few-second phase to the next (the same kernel measured
  // 6.3 then 12 GFLOP/s a second later), so the roofline is timed between rounds of steps and each round's
  // fraction uses the mean of the readings just before and just after it; the reported figure is their median.
  const rounds: { images_per_s: number; matmul_gflops: number[]; roofline_fraction: number }[] = [];
  const gflopsOf = (r: unknown) => (r as { matmul_gflops?: number }).matmul_gflops ?? NaN;
  const timedRound = async () => {
    const t0 = performance.now();
    let steps = 0;
    while (steps < OPTIONS.steps && (steps === 0 || performance.now() - t0 < OPTIONS.seconds * 1000)) {
      await step();
      steps++;
    }
    return { steps, imagesPerS: BATCH * steps / ((performance.now() - t0) / 1000) };
  };
  if (OPTIONS.throughputOnly) {
    const { steps, imagesPerS } = await timedRound();
    return {
      adapter: gpu.adapterName,
      fallback: gpu.isFallback,
      model: "yolov5n.onnx",
      imgsz: IMGSZ,
      batch: BATCH,
      amp: OPTIONS.amp,
      kernels: program.kernels,
      optimizer: "SGD (src/optim)",
      warmup_steps: OPTIONS.warmup,
      timed_steps: steps,
      images_per_s: +imagesPerS.toFixed(2),
      first_loss: first.loss,
    };
  }
  let roof: unknown = await roofline();
  for (let r = 0; r < ROUNDS; r++) {
    const before = gflopsOf(roof);
    const { imagesPerS } = await timedRound();
    roof = await roofline();
    const after = gflopsOf(roof);
    rounds.push({
      images_per_s: +imagesPerS.toFixed(3),
      matmul_gflops: [before, after],
      roofline_fraction: +(imagesPerS / ((before + after) / 2 / gflopPerImage)).toFixed(3),
    });
  }
  const stepSeconds = BATCH / median(rounds.map((r) => r.images_per_s));

  const classes = new Map<string, Dispatch[]>();
  for (const d of all) classes.set(d.opClass ?? "other", [...(classes.get(d.opClass ?? "other") ?? []), d]);
  const opClasses: Record<string, { ms: number; gflops: number; dispatches: number }> = {};
  for (const [name, list] of classes) {
    const seconds = await timeDispatches(device, list);
    const flops = list.reduce((s, d) => s + (d.flops ?? 0), 0);
    opClasses[name] = {
      ms: +(seconds * 1e3).toFixed(2),
      gflops: +(flops / seconds / 1e9).toFixed(2),
      dispatches: list.length,
    };
  }
  const profile = gpu.hasTimestamps ? await profileDispatches(device, all) : undefined;
  main.destroy();
  const precisionRates = await precision(gpu, programs, model, { images, targets });
  return {
    adapter: gpu.adapterName,
    fallback: gpu.isFallback,
    kernels: program.kernels,
    model: "yolov5n.onnx",
    imgsz: IMGSZ,
    batch: BATCH,
    amp: OPTIONS.amp,
    optimizer: "SGD (src/optim)",
    images_per_s: +(BATCH / stepSeconds).toFixed(2),
    roofline_fraction: median(rounds.map((r) => r.roofline_fraction)),
    rounds,
    step_ms: +(stepSeconds * 1e3).toFixed(1),
    step_gflop: +(totalFlops / 1e9).toFixed(2),
    step_gflop_per_image: +gflopPerImage.toFixed(3),
    achieved_gflops: +(totalFlops / stepSeconds / 1e9).toFixed(2),
    first_loss: first.loss,
    dispatches: all.length,
    memory_mb: {
      values_and_grads: +(program.memoryBytes / 2 ** 20).toFixed(1),
      op_scratch: +(program.scratchBytes / 2 ** 20).toFixed(1),
    },
    op_classes: opClasses,
    timestamped_step_ms: profile && +profile.reduce((s, d) => s + d.ms, 0).toFixed(1),
    top_dispatches: profile?.slice(0, TOP_DISPATCHES),
    roofline: roof,
    precision: precisionRates,
  };
}

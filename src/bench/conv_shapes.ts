/**
 * GFLOP/s of the conv kernels (forward with im2col, backward-data with col2im, backward-weight with bias grad and
 * reduce) on every distinct conv shape of YOLOv5n at imgsz 320, batch 8 (the fine-tune benchmark's model;
 * KESTREL_BENCH_IMGSZ and KESTREL_BENCH_BATCH change them: support/bench_env.ts), timed
 * with several dispatches per submit because one submit+sync costs >= 11 ms on lavapipe. On lavapipe the kernels
 * run on the CPU, so where other processes share it wall-clock rates drop with the load; `cpu_gflops` divides by
 * this process's CPU time spread over all cores instead (Linux /proc), which tracks what an idle machine gives.
 * Measures the adapter's kernel family (src/ops/kernel_family.ts; KESTREL_KERNELS=tiled|register picks one); on a
 * hardware adapter with no family forced it measures the other family too, in the same run, and reports its
 * totals under `other` and the two families' conv time ratio: the figure that says whether `tiled` pays there.
 */
import { getGpu } from "../gpu/device.ts";
import { createStorage } from "../gpu/buffers.ts";
import { ProgramCache } from "../gpu/programs.ts";
import { GpuMemory } from "../gpu/memory.ts";
import { createOpContext, submitDispatches } from "../ops/context.ts";
import { planConv } from "../ops/conv.ts";
import { forcedKernelFamily, kernelChoice, type KernelFamily } from "../ops/kernel_family.ts";
import type { Dispatch } from "../ops/types.ts";
import { trainBenchOptions } from "./support/bench_env.ts";

/** The size YOLOV5N_320_CONVS lists input sizes for; another imgsz scales them. */
const LISTED_IMGSZ = 320;
const { batch: BATCH, imgsz: IMGSZ } = trainBenchOptions({ batch: 8, imgsz: LISTED_IMGSZ, steps: 1 });
/** [cin, cout, k, stride, input size, how many such convs YOLOv5n has] at imgsz 320. */
export const YOLOV5N_320_CONVS: [number, number, number, number, number, number][] = [
  [3, 16, 6, 2, 320, 1],
  [16, 32, 3, 2, 160, 1],
  [32, 16, 1, 1, 80, 2],
  [16, 16, 1, 1, 80, 1],
  [16, 16, 3, 1, 80, 1],
  [32, 32, 1, 1, 80, 1],
  [32, 64, 3, 2, 80, 1],
  [64, 32, 1, 1, 40, 2],
  [32, 32, 1, 1, 40, 2],
  [32, 32, 3, 1, 40, 2],
  [64, 64, 1, 1, 40, 2],
  [64, 128, 3, 2, 40, 1],
  [128, 64, 1, 1, 20, 4],
  [64, 64, 1, 1, 20, 4],
  [64, 64, 3, 1, 20, 4],
  [128, 128, 1, 1, 20, 3],
  [128, 256, 3, 2, 20, 1],
  [256, 128, 1, 1, 10, 6],
  [128, 128, 1, 1, 10, 2],
  [128, 128, 3, 1, 10, 2],
  [256, 256, 1, 1, 10, 2],
  [512, 256, 1, 1, 10, 1],
  [128, 64, 1, 1, 40, 2],
  [64, 64, 3, 2, 40, 1],
  [128, 128, 3, 2, 20, 1],
  [64, 255, 1, 1, 40, 1],
  [128, 255, 1, 1, 20, 1],
  [256, 255, 1, 1, 10, 1],
];
const REPS = 4;

/** This process's user+system CPU time in ms, or undefined off Linux. */
function cpuMs(): number | undefined {
  try {
    const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** Median wall ms per repetition, and CPU ms per repetition divided by the core count. */
async function time(device: GPUDevice, dispatches: Dispatch[]): Promise<{ wall: number; cpu?: number }> {
  const reps = Array.from({ length: REPS }, () => dispatches).flat();
  submitDispatches(device, reps);
  await device.queue.onSubmittedWorkDone();
  const ms: number[] = [];
  const c0 = cpuMs();
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    submitDispatches(device, reps);
    await device.queue.onSubmittedWorkDone();
    ms.push((performance.now() - t) / REPS);
  }
  const c1 = cpuMs();
  const cpu = c0 === undefined || c1 === undefined
    ? undefined
    : (c1 - c0) / (3 * REPS * navigator.hardwareConcurrency);
  return { wall: ms.sort((a, b) => a - b)[1], cpu };
}

export async function bench(): Promise<Record<string, unknown>> {
  const gpu = await getGpu();
  const { family, reason } = kernelChoice(gpu.device);
  const first = await measure(gpu.device, family);
  // On lavapipe the tiled family takes minutes here; it is compared where it is meant to run.
  const other: KernelFamily = family === "tiled" ? "register" : "tiled";
  const compare = !gpu.isFallback && forcedKernelFamily() === undefined;
  const second = compare ? await measure(gpu.device, other) : undefined;
  const totals = ({ shapes: _, ...t }: Measured) => t;
  return {
    adapter: gpu.adapterName,
    batch: BATCH,
    imgsz: IMGSZ,
    kernels: `${family} (${reason})`,
    ...totals(first),
    ...(second && {
      other: { kernels: other, ...totals(second) },
      [`conv_ms_${family}_over_${other}`]: Number(
        (first.conv_ms_per_step / second.conv_ms_per_step).toFixed(3),
      ),
    }),
    shapes: first.shapes,
  };
}

type Measured = Awaited<ReturnType<typeof measure>>;

/** GFLOP/s per shape and in total of `kernels` on YOLOv5n's conv shapes. */
async function measure(device: GPUDevice, kernels: KernelFamily) {
  const ctx = createOpContext(new GpuMemory(device), new ProgramCache(device), kernels);
  const shapes = [];
  const totals = { fwd: [0, 0, 0], bwd_data: [0, 0, 0], bwd_weight: [0, 0, 0] };
  for (const [cin, cout, k, s, listedSize, count] of YOLOV5N_320_CONVS) {
    const size = listedSize * IMGSZ / LISTED_IMGSZ;
    const pad = Math.floor(k / 2) - (k === 6 ? 1 : 0);
    const out = Math.floor((size + 2 * pad - k) / s) + 1;
    const t = (c: number, hw: number, label: string) => ({
      buffer: createStorage(device, 4 * BATCH * c * hw * hw, label),
      offset: 0,
      shape: [BATCH, c, hw, hw],
    });
    const x = t(cin, size, "x"), y = t(cout, out, "y"), dy = t(cout, out, "dy"), dx = t(cin, size, "dx");
    const w = {
      buffer: createStorage(device, 4 * cout * cin * k * k, "w"),
      offset: 0,
      shape: [cout, cin, k, k],
    };
    const grads = createStorage(device, 4 * (cout * cin * k * k + cout + 4), "grads");
    const dw = { buffer: grads, offset: 0, shape: [cout, cin, k, k] };
    const db = { buffer: grads, offset: Math.ceil(cout * cin * k * k / 4) * 4, shape: [cout] };
    const b = { buffer: w.buffer, offset: 0, shape: [cout] };
    // The stem's input is the image, so training never asks for its dx.
    const plan = planConv(ctx, { x, w, b, y, dy, dx: cin === 3 ? undefined : dx, dw, db, stride: s, pad });
    const flops = (ds: Dispatch[]) => ds.reduce((a, d) => a + (d.flops ?? 0), 0);
    const isData = (d: Dispatch) => d.opClass === "conv_bwd_data" || d.opClass === "conv_col2im";
    const data = plan.backward.filter(isData);
    const weight = plan.backward.filter((d) => !isData(d));
    const row: Record<string, number> = { cin, cout, k, s, size, count };
    for (const [key, ds] of [["fwd", plan.forward], ["bwd_data", data], ["bwd_weight", weight]] as const) {
      if (ds.length === 0) continue;
      const { wall, cpu } = await time(device, ds);
      row[`${key}_ms`] = Number(wall.toFixed(3));
      row[`${key}_gflops`] = Number((flops(ds) / wall / 1e6).toFixed(2));
      if (cpu) row[`${key}_cpu_gflops`] = Number((flops(ds) / cpu / 1e6).toFixed(2));
      totals[key][0] += count * flops(ds);
      totals[key][1] += count * wall;
      totals[key][2] += count * (cpu ?? 0);
    }
    shapes.push(row);
    [x.buffer, y.buffer, dy.buffer, dx.buffer, w.buffer, grads].forEach((bf) => bf.destroy());
  }
  const summary = Object.fromEntries(
    Object.entries(totals).flatMap(([k, [f, wall, cpu]]) => [
      [`${k}_gflops`, Number((f / wall / 1e6).toFixed(2))],
      ...(cpu ? [[`${k}_cpu_gflops`, Number((f / cpu / 1e6).toFixed(2))]] : []),
    ]),
  );
  const sum = (i: number) => Number(Object.values(totals).reduce((a, t) => a + t[i], 0).toFixed(1));
  ctx.memory.destroy();
  return { ...summary, conv_ms_per_step: sum(1), conv_cpu_ms_per_step: sum(2) || undefined, shapes };
}

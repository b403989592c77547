/**
 * A whole fine-tune run, as `deno task finetune` and the jobs trainer both do it: the dataset split, the base
 * model's evaluation on the held-out images, training (resumed from a checkpoint when there is one, checkpointing
 * after every epoch and, when suspended, after the iteration it stops at), `last.onnx`, `ema.onnx` and
 * `trace.jsonl` in the output directory, and the EMA model's evaluation.
 * @module
 */
import { join } from "node:path";
import type { FinetuneConfig } from "../config/finetune.ts";
import type { Gpu } from "../gpu/device.ts";
import type { OnnxModel } from "../onnx/model.ts";
import { inspectYolo } from "../onnx/yolo.ts";
import { type TraceLine, TraceWriter } from "../optim/trace.ts";
import { type Dataset, loadDataset } from "./data/dataset.ts";
import { DatasetError } from "./data/problems.ts";
import { FinetuneSession } from "./finetune.ts";
import { epochStart, type IterationReport, type LoopPosition } from "./loop.ts";
import type { ValMetrics } from "./metrics.ts";
import { StageClock, type StageSeconds } from "./stages.ts";

/** A run's state between two iterations (opaque to the job queue, which stores it). */
export interface Checkpoint {
  /** epochs completed; training resumes in this epoch */
  epoch: number;
  /** batches of epoch `epoch` trained: 0 for an epoch-end checkpoint, more for one taken on a suspend */
  iteration: number;
  /** the serialised state (weights, EMA, optimizer moments, gradients, batch stream position, ...) */
  state: Uint8Array;
}

/** Durable checkpoint storage of one run (a job's: jobs/checkpoint.ts). */
export interface CheckpointStore {
  /** The checkpoint of an earlier attempt, or null to start from scratch. Throws if it exists but is damaged. */
  load(): Promise<Checkpoint | null>;
  /** Persist a checkpoint; when this resolves, a restart resumes from it. */
  save(checkpoint: Checkpoint): Promise<void>;
}

export interface RunOptions {
  gpu: Gpu;
  model: OnnxModel;
  config: FinetuneConfig;
  dataDir: string;
  /** receives last.onnx, ema.onnx and trace.jsonl */
  outDir: string;
  signal?: AbortSignal;
  /** Stop after the iteration in flight, with a checkpoint of it (when there is a store); rejects with the reason. */
  suspend?: AbortSignal;
  checkpoint?: CheckpointStore;
  frozenCache?: boolean;
  onIteration?(report: IterationReport, totals: { iterations: number; epochs: number }): void;
  /** Progress notes for a human (the CLI prints them). */
  log?(message: string): void;
}

export interface RunResult {
  dataset: Dataset;
  base: ValMetrics | null;
  ema: ValMetrics | null;
  emaBytes: Uint8Array<ArrayBuffer>;
  trace: TraceLine[];
  /** training images per second over the trained iterations (data loading included) */
  imagesPerSecond: number;
  /** the same, counting only the GPU steps */
  stepImagesPerSecond: number;
  /** seconds the frozen-feature cache took to fill, or null without it */
  cacheSeconds: number | null;
  /** where training started: the checkpoint's position, or the start */
  resumedFrom: LoopPosition;
  /** where the run's wall time went */
  stages: StageSeconds;
}

/**
 * The images a config trains on: exactly `images_in_order` when the config lists them (a golden scenario, no
 * hold-out), else the dataset's val/ split or a `val_fraction` hold-out.
 */
export async function finetuneDataset(dir: string, nc: number, config: FinetuneConfig): Promise<Dataset> {
  const listed = config.images_in_order;
  const dataset = await loadDataset(dir, { nc, valFraction: listed ? 0 : config.val_fraction });
  if (!listed) return dataset;
  const names = dataset.train.map((s) => s.name);
  if (names.join("\n") !== listed.join("\n")) {
    throw new DatasetError([{
      file: ".",
      message: `images_in_order lists [${listed.join(", ")}] but the dataset's sorted images are [${
        names.join(", ")
      }]`,
    }]);
  }
  return dataset;
}

export async function runFinetune(o: RunOptions): Promise<RunResult> {
  const { config } = o;
  const log = o.log ?? (() => {});
  const clock = new StageClock();
  const dataset = await finetuneDataset(o.dataDir, inspectYolo(o.model).nc, config);
  const datasetSeconds = clock.lap();
  const session = await FinetuneSession.create({
    gpu: o.gpu,
    model: o.model,
    config,
    train: dataset.train,
    frozenCache: o.frozenCache,
  });
  const cache = session.cacheSeconds ?? 0;
  const setup = { dataset: datasetSeconds, program: clock.lap() - cache, cache };
  log(
    `${dataset.train.length} training images, ${dataset.val.length} held out; ${session.optimizer.describe()}` +
      (session.cached ? "; frozen features cached" : "") +
      (session.amp ? "; amp: f16 GEMM operands, dynamic loss scale" : ""),
  );
  try {
    return await runSession(o, session, dataset, log, setup);
  } finally {
    session.destroy();
  }
}

async function runSession(
  o: RunOptions,
  session: FinetuneSession,
  dataset: Dataset,
  log: (message: string) => void,
  setup: Pick<StageSeconds, "dataset" | "program" | "cache">,
): Promise<RunResult> {
  const { config } = o;
  const clock = new StageClock();
  const base = dataset.val.length ? await session.evaluate("live", dataset.val) : null;
  const evalBase = clock.lap();
  if (base) log(`base model: mAP@0.5 ${base.map50.toFixed(4)}, mAP@0.5:0.95 ${base.map50_95.toFixed(4)}`);
  const saved = await o.checkpoint?.load();
  const start = saved ? session.restore(saved.state) : epochStart(0);
  if (saved) log(`resuming at epoch ${start.epoch}, iteration ${start.iteration}`);

  await Deno.mkdir(o.outDir, { recursive: true });
  const tracePath = join(o.outDir, "trace.jsonl");
  // A resumed run keeps the trace of the iterations its checkpoint covers, and none trained after it.
  const covered = (l: TraceLine) =>
    l.epoch < start.epoch || (l.epoch === start.epoch && l.i < start.iteration);
  const trace = saved ? (await readTrace(tracePath)).filter(covered) : [];
  // The kept lines are written beside the old trace, which the new one replaces in one rename (the writer
  // goes on writing to it): a crash while they are written leaves the old trace, whole, for the next resume.
  const fresh = `${tracePath}.${crypto.randomUUID()}.tmp`;
  const writer = new TraceWriter(fresh);
  trace.forEach((line) => writer.write(line));
  const suspendAt = async (position: LoopPosition) => {
    log(`suspended at epoch ${position.epoch}, iteration ${position.iteration}`);
    if (!o.checkpoint) return;
    const state = await session.checkpoint(position);
    await o.checkpoint.save({ epoch: position.epoch, iteration: position.iteration, state });
  };
  const totals = { iterations: session.loader.batchesPerEpoch * config.epochs, epochs: config.epochs };
  let loop;
  try {
    await Deno.rename(fresh, tracePath);
    loop = await session.train({
      signal: o.signal,
      start,
      suspend: o.suspend,
      onSuspend: suspendAt,
      onIteration: (report) => {
        writer.write(report.line);
        trace.push(report.line);
        o.onIteration?.(report, totals);
      },
      onEpochEnd: async (epoch) => {
        const last = trace.at(-1);
        log(`epoch ${epoch + 1}/${config.epochs}: loss items ${last?.loss_items.map((v) => v.toFixed(5))}`);
        if (o.checkpoint && epoch + 1 < config.epochs) {
          const state = await session.checkpoint(epochStart(epoch + 1));
          await o.checkpoint.save({ epoch: epoch + 1, iteration: 0, state });
        }
      },
    });
  } finally {
    writer.close();
  }
  // Suspended as the last epoch ended: the trained state is kept, so the restart only evaluates and exports.
  if (o.suspend?.aborted) {
    await suspendAt(epochStart(config.epochs));
    throw o.suspend.reason;
  }
  const train = clock.lap();
  const { last, ema } = await session.models();
  const emaBytes = ema.toBytes();
  await Deno.writeFile(join(o.outDir, "last.onnx"), last.toBytes());
  await Deno.writeFile(join(o.outDir, "ema.onnx"), emaBytes);
  const write = clock.lap();
  const emaMetrics = dataset.val.length ? await session.evaluate("ema", dataset.val) : null;
  if (emaMetrics) {
    log(`EMA model: mAP@0.5 ${emaMetrics.map50.toFixed(4)}, mAP@0.5:0.95 ${emaMetrics.map50_95.toFixed(4)}`);
  }
  return {
    dataset,
    base,
    ema: emaMetrics,
    emaBytes,
    trace,
    imagesPerSecond: loop.images / Math.max(loop.seconds, 1e-9),
    stepImagesPerSecond: loop.images / Math.max(loop.stepSeconds, 1e-9),
    cacheSeconds: session.cacheSeconds,
    resumedFrom: start,
    stages: {
      ...setup,
      eval_base: evalBase,
      train,
      train_host: train - loop.stepSeconds,
      write,
      eval_result: clock.lap(),
    },
  };
}

async function readTrace(path: string): Promise<TraceLine[]> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

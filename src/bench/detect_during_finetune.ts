/**
 * detect_during_finetune: HTTP detect latency of a served model while a fine-tune job of it trains in the same
 * server, against the same requests with the server idle, for the server's trainer (a Web Worker per job) and
 * for the same WGSL trainer on the serving thread (what the worker avoids: a lavapipe step blocks its thread).
 * One client sends one request at a time, so each number is one request's latency, not queueing behind others.
 * The worker trainer runs with --serve-budget-ms off, at its default (100) and tight (20), with training's
 * images/s and how many times it paused for detect.
 * The model is a fresh `new-model` (depth 0.33, width 0.125) at imgsz 128 on the synthetic shapes data.
 */
import { join } from "node:path";
import { zipSync } from "fflate";
import { startServer } from "../api/server.ts";
import { ServerConfigSchema } from "../config/server.ts";
import { publishResult } from "../jobs/publish.ts";
import type { Job, Trainer } from "../jobs/types.ts";
import type { Registry } from "../registry/registry.ts";
import { newModelBytes } from "../train/new_model.ts";
import { SYNTH_CLASSES, writeSynthDataset } from "../train/synth.ts";
import { WgslTrainer } from "../train/trainer.ts";
import { quantile, round2 } from "./support/stats.ts";

const IMGSZ = 128;
const IMAGES = 32;
const IDLE_REQUESTS = 100;
const CONFIG = { imgsz: IMGSZ, batch_size: 8, epochs: 3, val_fraction: 0.25, activate: "never" };

function stats(xs: number[]) {
  const at = (p: number) => round2(quantile(xs, p));
  return { n: xs.length, p50_ms: at(0.5), p95_ms: at(0.95), p99_ms: at(0.99), max_ms: at(1) };
}

/** The WGSL trainer called directly on the serving thread. */
const inThread = (registry: Registry): Trainer =>
  new WgslTrainer<Job>({
    readModel: (job) => registry.read(job.model, job.baseVersion!),
    publish: (job, bytes, evals) => publishResult(registry, job, bytes, evals),
  });

async function measure(
  dir: string,
  modelPath: string,
  zip: Uint8Array<ArrayBuffer>,
  image: Uint8Array,
  trainer?: typeof inThread,
  serveBudgetMs = 0,
) {
  const dataDir = await Deno.makeTempDir({ dir, prefix: "data-" });
  const config = ServerConfigSchema.parse({
    port: 0,
    models: [modelPath],
    backend: "native",
    dataDir,
    serveBudgetMs,
  });
  const server = await startServer(config, { trainer });
  try {
    await server.ready;
    const detect = async () => {
      const t = performance.now();
      const res = await fetch(`${server.url}/v1/models/shapes/detect`, {
        method: "POST",
        body: image as Uint8Array<ArrayBuffer>,
        headers: { "content-type": "image/png" },
      });
      await res.body?.cancel();
      if (res.status !== 200) throw new Error(`detect answered ${res.status}`);
      return performance.now() - t;
    };
    for (let i = 0; i < 10; i++) await detect();
    const idle: number[] = [];
    for (let i = 0; i < IDLE_REQUESTS; i++) idle.push(await detect());

    const form = new FormData();
    form.append("config", JSON.stringify(CONFIG));
    form.append("dataset", new File([zip], "shapes.zip"));
    const res = await fetch(`${server.url}/v1/models/shapes/finetune`, { method: "POST", body: form });
    const job = await res.json();
    if (res.status !== 202) throw new Error(`fine-tune answered ${res.status}: ${JSON.stringify(job)}`);
    const training: number[] = [];
    const started = performance.now();
    while (["queued", "running"].includes(server.jobs.get(job.id).status)) {
      if (server.jobs.get(job.id).progress.iteration > 0) training.push(await detect());
      else await new Promise((r) => setTimeout(r, 20));
    }
    const done = server.jobs.get(job.id);
    if (done.status !== "succeeded") throw new Error(`job ${done.status}: ${done.error?.message}`);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const pauses = /^kestrel_trainer_pauses_total (\d+)$/m.exec(metrics)?.[1];
    return {
      serve_budget_ms: serveBudgetMs,
      trainer_pauses: pauses === undefined ? null : Number(pauses),
      job_seconds: round2((performance.now() - started) / 1000),
      train_images_per_second: round2(done.progress.imagesPerSecond ?? NaN),
      idle: stats(idle),
      during_training: stats(training),
    };
  } finally {
    await server.shutdown();
  }
}

export async function bench(): Promise<Record<string, unknown>> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-bench-ft-" });
  try {
    const modelPath = join(dir, "shapes.onnx");
    const opts = {
      nc: SYNTH_CLASSES.length,
      names: [...SYNTH_CLASSES],
      depth: 0.33,
      width: 0.125,
      imgsz: IMGSZ,
    };
    await Deno.writeFile(modelPath, newModelBytes(opts));
    const names = await writeSynthDataset(join(dir, "set"), { n: IMAGES, imgsz: IMGSZ, seed: 5 });
    const files: Record<string, Uint8Array> = {};
    for (const name of names) {
      const stem = name.slice(0, name.lastIndexOf("."));
      files[`images/${name}`] = await Deno.readFile(join(dir, "set", "images", name));
      files[`labels/${stem}.txt`] = await Deno.readFile(join(dir, "set", "labels", `${stem}.txt`));
    }
    const zip = zipSync(files) as Uint8Array<ArrayBuffer>;
    const image = files[`images/${names[0]}`];
    return {
      model: "new-model depth 0.33 width 0.125 nc 3",
      imgsz: IMGSZ,
      backend: "native",
      job: { ...CONFIG, images: IMAGES },
      worker_trainer: await measure(dir, modelPath, zip, image),
      worker_trainer_budget_100ms: await measure(dir, modelPath, zip, image, undefined, 100),
      worker_trainer_budget_20ms: await measure(dir, modelPath, zip, image, undefined, 20),
      in_thread_trainer: await measure(dir, modelPath, zip, image, inThread),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// Acceptance: a real server process on a loopback port, detect traffic from several clients, a fine-tune job
// over HTTP with a zip dataset followed over server-sent events, the job succeeds, its EMA version serves with
// zero failed detect requests, and a restart on the same data dir still serves it. A fresh `new-model` at a small
// width and imgsz keeps training to about a minute on lavapipe.
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import type { Job } from "../../src/jobs/types.ts";
import { ensureRuntimeDir } from "../../src/gpu/runtime_dir.ts";
import { newModelBytes } from "../../src/train/new_model.ts";
import { SYNTH_CLASSES, writeSynthDataset } from "../../src/train/synth.ts";
import { type ChildServer, startChild } from "../registry/_child_server.ts";

const IMGSZ = 128;
const MODEL = "shapes";
const CLIENTS = 4;
/** Enough images for a few batches per epoch and a held-out quarter to evaluate on. */
const IMAGES = 24;
const CONFIG = { imgsz: IMGSZ, batch_size: 8, epochs: 2, val_fraction: 0.25, activate: "always" };

interface Traffic {
  latencies: number[];
  failures: string[];
  versions: Set<number>;
}

/** `CLIENTS` loops posting `image` to detect until `stop` aborts; every non-200 answer is a failure. */
function detectTraffic(base: string, image: Uint8Array<ArrayBuffer>, stop: AbortSignal, traffic: Traffic) {
  return Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (!stop.aborted) {
      const t = performance.now();
      try {
        const res = await fetch(`${base}/v1/models/${MODEL}/detect`, {
          method: "POST",
          body: image,
          headers: { "content-type": "image/png" },
        });
        const body = await res.json();
        if (res.status !== 200) traffic.failures.push(`${res.status} ${JSON.stringify(body)}`);
        else traffic.versions.add(body.model.version);
      } catch (err) {
        traffic.failures.push(String(err));
      }
      traffic.latencies.push(performance.now() - t);
    }
  }));
}

/** The job's server-sent events until the stream ends, parsed. */
async function followJob(base: string, id: string): Promise<{ event: string; job: Job }[]> {
  const res = await fetch(`${base}/v1/jobs/${id}/events`);
  assert.equal(res.status, 200);
  const events: { event: string; job: Job }[] = [];
  for (const block of (await res.text()).split("\n\n")) {
    const line = (name: string) =>
      block.split("\n").find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1);
    const data = line("data");
    if (data) events.push({ event: line("event")!.trim(), job: JSON.parse(data).job });
  }
  return events;
}

/** The server trains on WebGPU; without an adapter the test is skipped as gpuTest skips GPU tests. */
ensureRuntimeDir();
const HAS_ADAPTER = (await navigator.gpu?.requestAdapter()) != null;

const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)];
const summary = (xs: number[]) =>
  `n=${xs.length} p50=${percentile(xs, 0.5).toFixed(1)} ms p95=${percentile(xs, 0.95).toFixed(1)} ms ` +
  `max=${Math.max(...xs).toFixed(1)} ms`;

async function servedVersion(server: ChildServer): Promise<number> {
  return (await (await fetch(`${server.base}/v1/models/${MODEL}`)).json()).version;
}

Deno.test({
  name:
    "e2e: fine-tune over HTTP under detect load, new version serves with zero failed requests, survives restart" +
    (HAS_ADAPTER ? "" : " (skipped: no WebGPU adapter)"),
  ignore: !HAS_ADAPTER,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-ft-e2e-" });
    const dataDir = join(dir, "data");
    const modelPath = join(dir, `${MODEL}.onnx`);
    await Deno.writeFile(
      modelPath,
      newModelBytes({
        nc: SYNTH_CLASSES.length,
        names: [...SYNTH_CLASSES],
        depth: 0.33,
        width: 0.125,
        imgsz: IMGSZ,
      }),
    );
    const names = await writeSynthDataset(join(dir, "set"), { n: IMAGES, imgsz: IMGSZ, seed: 3 });
    const entries: Record<string, Uint8Array> = {};
    for (const name of names) {
      const stem = name.slice(0, name.lastIndexOf("."));
      entries[`images/${name}`] = await Deno.readFile(join(dir, "set", "images", name));
      entries[`labels/${stem}.txt`] = await Deno.readFile(join(dir, "set", "labels", `${stem}.txt`));
    }
    const image = entries[`images/${names[0]}`] as Uint8Array<ArrayBuffer>;

    let server = await startChild(dataDir, ["--model", modelPath]);
    try {
      const idle: Traffic = { latencies: [], failures: [], versions: new Set() };
      const idleStop = new AbortController();
      const idleRun = detectTraffic(server.base, image, idleStop.signal, idle);
      await new Promise((r) => setTimeout(r, 2000));
      idleStop.abort();
      await idleRun;

      const traffic: Traffic = { latencies: [], failures: [], versions: new Set() };
      const stop = new AbortController();
      const clients = detectTraffic(server.base, image, stop.signal, traffic);
      const form = new FormData();
      form.append("config", JSON.stringify(CONFIG));
      form.append("dataset", new File([zipSync(entries) as Uint8Array<ArrayBuffer>], "shapes.zip"));
      const res = await fetch(`${server.base}/v1/models/${MODEL}/finetune`, { method: "POST", body: form });
      const accepted = await res.json();
      assert.equal(res.status, 202, JSON.stringify(accepted));

      const events = await followJob(server.base, accepted.id);
      await new Promise((r) => setTimeout(r, 500)); // traffic on the new version
      stop.abort();
      await clients;

      const final = events.at(-1)!.job;
      assert.equal(final.status, "succeeded", `${JSON.stringify(final.error)}\n${server.log()}`);
      const progress = events.filter((e) => e.event === "progress").map((e) => e.job.progress);
      assert.ok(progress.length > 0, "progress was reported while training");
      const last = progress.at(-1)!;
      assert.equal(last.iteration, last.iterations, "every iteration was reported");
      assert.ok(progress.some((p) => p.iteration < p.iterations), "progress seen before the end");
      assert.ok(last.lossItems?.every(Number.isFinite) && last.lr?.every(Number.isFinite));
      assert.ok(Number.isFinite(final.progress.metrics?.map50), "the result was evaluated");
      assert.deepEqual([final.resultVersion, final.activated], [2, true]);

      assert.deepEqual(traffic.failures, [], "no detect request failed during the job and the swap");
      assert.deepEqual([...traffic.versions].sort(), [1, 2], "detect served the base, then the new version");
      assert.equal(await servedVersion(server), 2);
      console.log(
        `detect latency, ${CLIENTS} clients, ${MODEL} at ${IMGSZ}: idle ${summary(idle.latencies)}`,
      );
      console.log(`detect latency during the fine-tune job: ${summary(traffic.latencies)}`);

      await server.stop();
      server = await startChild(dataDir, ["--model", modelPath]);
      assert.equal(await servedVersion(server), 2, "the fine-tuned version is still active after a restart");
      const after = await fetch(`${server.base}/v1/models/${MODEL}/detect`, {
        method: "POST",
        body: image,
        headers: { "content-type": "image/png" },
      });
      assert.deepEqual((await after.json()).model, { name: MODEL, version: 2 });
      const job = await (await fetch(`${server.base}/v1/jobs/${accepted.id}`)).json();
      assert.equal(job.status, "succeeded", "the job record survives the restart");
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

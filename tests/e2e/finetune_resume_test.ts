// SIGTERM during a fine-tune on a real `main.ts serve` child (issue 15): the training worker checkpoints the
// iteration it is at, the server exits 0 within --drain-seconds, and a restart on the same data dir resumes at
// that iteration (not at the epoch start) and publishes exactly the model a run never stopped makes (the same
// code on the same WebGPU adapter in this process).
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import { getGpu } from "../../src/gpu/device.ts";
import type { Job } from "../../src/jobs/types.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { FsStore } from "../../src/registry/fs_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { runFinetune } from "../../src/train/finetune_run.ts";
import { writeSynthDataset } from "../../src/train/synth.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { type Child, reap, serveOn } from "./_serve_child.ts";

const MODEL = "tiny";
const IMGSZ = 64;
/** 24 iterations per epoch: the stop lands inside an epoch, after its first iteration. */
const IMAGES = 48;
// Augmented and shuffled (the resumed epoch must continue the same random stream); no held-out images, no
// activation: nothing but training and publishing.
const CONFIG = {
  imgsz: IMGSZ,
  batch_size: 2,
  epochs: 2,
  augment: true,
  shuffle: true,
  seed: 3,
  val_fraction: 0,
  activate: "never",
};
const DRAIN_SECONDS = 10;
/** After the drain: closing the pool and the data-dir lock, and the process exit. */
const EXIT_MARGIN_MS = 5_000;
/** The whole job takes seconds; this bounds a run where it never ends. */
const JOB_TIMEOUT_MS = 60_000;
const POLL_MS = 20;

async function job(server: Child, id: string): Promise<Job> {
  return await (await fetch(`${server.url}/v1/jobs/${id}`)).json();
}

async function until<T>(what: string, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + JOB_TIMEOUT_MS;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${JOB_TIMEOUT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

gpuTest(
  "e2e: SIGTERM mid-epoch checkpoints the fine-tune, exit 0 in the drain; the restart resumes at that iteration",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-resume-e2e-" });
    const servers: Child[] = [];
    try {
      const modelPath = join(dir, `${MODEL}.onnx`);
      await Deno.writeFile(modelPath, tinyYolo({ nc: 3, imgsz: IMGSZ }));
      const setDir = join(dir, "set");
      const names = await writeSynthDataset(setDir, { n: IMAGES, imgsz: IMGSZ, seed: 4 });
      const files: Record<string, Uint8Array> = {};
      for (const name of names) {
        const stem = name.slice(0, name.lastIndexOf("."));
        files[`images/${name}`] = await Deno.readFile(join(setDir, "images", name));
        files[`labels/${stem}.txt`] = await Deno.readFile(join(setDir, "labels", `${stem}.txt`));
      }
      const form = new FormData();
      form.append("config", JSON.stringify(CONFIG));
      form.append("dataset", new File([zipSync(files) as Uint8Array<ArrayBuffer>], "data.zip"));

      const dataDir = join(dir, "data");
      const args = ["--model", modelPath, "--drain-seconds", String(DRAIN_SECONDS)];
      const first = await serveOn(dataDir, ...args);
      servers.push(first);
      const submitted = await fetch(`${first.url}/v1/models/${MODEL}/finetune`, {
        method: "POST",
        body: form,
      });
      assert.equal(submitted.status, 202, await submitted.clone().text());
      const { id } = await submitted.json() as Job;
      await until("training to start", async () => (await job(first, id)).progress.iteration > 0 || null);
      const signalled = Date.now();
      first.child.kill("SIGTERM");
      const status = await first.child.status;
      const took = Date.now() - signalled;
      assert.equal(status.code, 0, first.log.join("\n"));
      assert.ok(took < DRAIN_SECONDS * 1000 + EXIT_MARGIN_MS, `exited after ${took} ms`);
      assert.ok(first.log.some((l) => l.endsWith("kestrel: stopped")), "drained in time");

      const stopped: Job = JSON.parse(await Deno.readTextFile(join(dataDir, "jobs", id, "job.json")));
      assert.equal(stopped.status, "running", "left for the next start");
      const checkpoint = stopped.checkpoint;
      assert.ok(
        checkpoint && checkpoint.iteration > 0,
        `checkpointed within an epoch: ${JSON.stringify(stopped)}\n${first.log.join("\n")}`,
      );
      assert.ok(
        first.log.some((l) =>
          l.includes(`suspended at epoch ${checkpoint.epoch}, iteration ${checkpoint.iteration}`)
        ),
        first.log.join("\n"),
      );

      console.log(
        `exit ${took} ms after SIGTERM; checkpoint at epoch ${checkpoint.epoch}, iteration ${checkpoint.iteration}`,
      );
      const second = await serveOn(dataDir, ...args);
      servers.push(second);
      const ended = await until("the resumed job to end", async () => {
        const current = await job(second, id);
        return current.status === "queued" || current.status === "running" ? null : current;
      });
      assert.deepEqual(
        [ended.status, ended.attempts, ended.error],
        ["succeeded", 2, null],
        JSON.stringify(ended),
      );
      assert.ok(
        second.log.some((l) =>
          l.includes(`resuming at epoch ${checkpoint.epoch}, iteration ${checkpoint.iteration}`)
        ),
        second.log.join("\n"),
      );
      second.child.kill("SIGTERM");
      assert.equal((await second.child.status).code, 0);

      const registry = await Registry.open(new FsStore(dataDir), { maxBytes: 1 << 20 });
      const published = await registry.read(MODEL, ended.resultVersion!);
      const whole = await runFinetune({
        gpu: await getGpu(),
        model: OnnxModel.parse(await Deno.readFile(modelPath)),
        config: parseFinetuneConfig(CONFIG),
        dataDir: setDir,
        outDir: join(dir, "whole"),
      });
      assert.deepEqual([ended.progress.iteration, ended.progress.iterations], [
        whole.trace.length,
        whole.trace.length,
      ]);
      assert.deepEqual(published, whole.emaBytes, "the resumed job's EMA model is the uninterrupted run's");
    } finally {
      for (const server of servers) await reap(server);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

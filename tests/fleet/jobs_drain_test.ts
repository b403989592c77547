/**
 * SIGTERM of the fleet node running a real fine-tune (two `main.ts serve --nats` children, the WGSL trainer):
 * the node checkpoints the iteration in flight, uploads it, hands the job back and exits 0 within the drain; the
 * other node takes the job over at that iteration (not at the epoch start) and publishes exactly the model a
 * run never stopped makes (the same code on the same WebGPU adapter in this process).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import { getGpu } from "../../src/gpu/device.ts";
import type { Job } from "../../src/jobs/types.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { FsStore } from "../../src/registry/fs_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { runFinetune } from "../../src/train/finetune_run.ts";
import { writeSynthDataset } from "../../src/train/synth.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { type Child, serveOn, stop as stopNode } from "../e2e/_serve_child.ts";

const MODEL = "tiny";
const IMGSZ = 64;
/** 24 iterations per epoch: the stop lands inside the first epoch, after its first iteration. */
const IMAGES = 48;
// As the single-box resume test (tests/e2e/finetune_resume_test.ts): augmented and shuffled, so the node taking
// over must continue the same random stream; nothing but training and publishing.
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
/** After the drain: closing the fleet link, the pool and the data-dir lock, and the process exit. */
const EXIT_MARGIN_MS = 5_000;
/** Bound on each wait: the job takes seconds, a node's start up to a minute on a loaded 2-core box. */
const WAIT_MS = 90_000;
const POLL_MS = 20;

async function until<T>(what: string, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The job's record on a node: a fleet job's is read from the fleet's shared state on every node. */
async function record(node: Child, id: string): Promise<Job> {
  return await (await fetch(`${node.url}/v1/jobs/${id}`)).json();
}

async function datasetForm(dir: string): Promise<FormData> {
  const names = await writeSynthDataset(dir, { n: IMAGES, imgsz: IMGSZ, seed: 4 });
  const files: Record<string, Uint8Array> = {};
  for (const name of names) {
    const stem = name.slice(0, name.lastIndexOf("."));
    files[`images/${name}`] = await Deno.readFile(join(dir, "images", name));
    files[`labels/${stem}.txt`] = await Deno.readFile(join(dir, "labels", `${stem}.txt`));
  }
  const form = new FormData();
  form.append("config", JSON.stringify(CONFIG));
  form.append("dataset", new File([zipSync(files) as Uint8Array<ArrayBuffer>], "data.zip"));
  return form;
}

const NAME =
  "fleet: SIGTERM mid-epoch on the running node hands the job over at that iteration; the result is the whole run's";

if (NO_NATS) Deno.test({ name: `${NAME} (skipped: ${NO_NATS})`, ignore: true, fn() {} });
else {
  gpuTest(NAME, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-drain-" });
    const nats = await NatsServer.start(dir);
    const nodes: Child[] = [];
    try {
      const modelPath = join(dir, `${MODEL}.onnx`);
      await Deno.writeFile(modelPath, tinyYolo({ nc: 3, imgsz: IMGSZ }));
      const setDir = join(dir, "set");
      const form = await datasetForm(setDir);
      const start = async (name: string) => {
        const node = await serveOn(
          join(dir, name),
          ...["--model", modelPath, "--drain-seconds", String(DRAIN_SECONDS)],
          ...["--nats", nats.url, "--node", name, "--fleet", "drain", "--jobs", "on"],
        );
        nodes.push(node);
        await node.line(/fleet: node \S+ joined/);
        return node;
      };
      // The first node alone, then the other (README: nodes that start together may each register the model).
      const [a, b] = [await start("a"), await start("b")];

      const submitted = await fetch(`${a.url}/v1/models/${MODEL}/finetune`, { method: "POST", body: form });
      assert.equal(submitted.status, 202, await submitted.clone().text());
      const { id } = await submitted.json() as Job;
      // Whichever node the queue gave it to runs it; the other takes it over.
      const runnerName = await until("a node to train the job", async () => {
        const job = await record(a, id);
        return job.status === "running" && job.progress.iteration > 0 ? job.node : null;
      });
      const [runner, other] = runnerName === "a" ? [a, b] : [b, a];
      const signalled = Date.now();
      runner.child.kill("SIGTERM");
      const status = await runner.child.status;
      const took = Date.now() - signalled;
      assert.equal(status.code, 0, runner.log.join("\n"));
      assert.ok(took < DRAIN_SECONDS * 1000 + EXIT_MARGIN_MS, `exited after ${took} ms`);
      assert.ok(
        runner.log.some((l) => l.endsWith("kestrel: stopped")),
        `drained in time:\n${runner.log.join("\n")}`,
      );
      const suspended = runner.log.map((l) => l.match(/suspended at epoch (\d+), iteration (\d+)/)).find((
        m,
      ) => m);
      assert.ok(suspended, runner.log.join("\n"));
      const [epoch, iteration] = [Number(suspended[1]), Number(suspended[2])];
      assert.ok(iteration > 0, `stopped within an epoch: ${suspended[0]}`);
      assert.ok(runner.log.some((l) => l.includes(`fleet: job ${id} handed back`)), runner.log.join("\n"));

      console.log(`exit ${took} ms after SIGTERM; handed back at epoch ${epoch}, iteration ${iteration}`);
      await other.line(new RegExp(`job ${id}: resuming at epoch ${epoch}, iteration ${iteration}\\b`));
      const ended = await until("the job to end on the node that took it over", async () => {
        const job = await record(other, id);
        return job.status === "queued" || job.status === "running" ? null : job;
      });
      assert.deepEqual(
        [ended.status, ended.node, ended.attempts, ended.error],
        ["succeeded", runnerName === "a" ? "b" : "a", 2, null],
        JSON.stringify(ended),
      );
      const version = ended.resultVersion!;
      await stopNode(other);

      const registry = await Registry.open(new FsStore(other.dataDir), { maxBytes: 1 << 20 });
      const published = await registry.read(MODEL, version);
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
      assert.deepEqual(
        published,
        whole.emaBytes,
        "the taken-over job's EMA model is the uninterrupted run's",
      );
    } catch (err) {
      for (const node of nodes) console.error(`--- ${node.dataDir}\n${node.log.join("\n")}`);
      throw err;
    } finally {
      for (const node of nodes) await stopNode(node);
      await nats.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

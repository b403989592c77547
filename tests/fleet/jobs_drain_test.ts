/**
 * SIGTERM of the fleet node running a real fine-tune (two `main.ts serve --nats` children, the WGSL trainer):
 * the node checkpoints the iteration in flight, uploads it, hands the job back and exits 0 within the drain; the
 * other node takes the job over at that iteration (not at the epoch start) and publishes exactly the model a
 * run never stopped makes (the same code on the same WebGPU adapter in this process).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import type { Job } from "../../src/jobs/types.ts";
import { FsStore } from "../../src/registry/fs_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import {
  DRAIN_SECONDS,
  EXIT_MARGIN_MS,
  jobRecord,
  MODEL,
  uninterruptedRun,
  until,
  writeResumeScenario,
} from "../e2e/_resume_scenario.ts";
import { type Child, serveOn, stop as stopNode } from "../e2e/_serve_child.ts";

/** Bound on each wait: the job takes seconds, a node's start up to a minute on a loaded 2-core box. */
const WAIT_MS = 90_000;

const NAME =
  "fleet: SIGTERM mid-epoch on the running node hands the job over at that iteration; the result is the whole run's";

if (NO_NATS) Deno.test({ name: `${NAME} (skipped: ${NO_NATS})`, ignore: true, fn() {} });
else {
  gpuTest(NAME, async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-drain-" });
    const nats = await NatsServer.start(dir);
    const nodes: Child[] = [];
    try {
      const scenario = await writeResumeScenario(dir);
      const start = async (name: string) => {
        const node = await serveOn(
          join(dir, name),
          ...["--model", scenario.modelPath, "--drain-seconds", String(DRAIN_SECONDS)],
          ...["--nats", nats.url, "--node", name, "--fleet", "drain", "--jobs", "on"],
        );
        nodes.push(node);
        await node.line(/fleet: node \S+ joined/);
        return node;
      };
      // The first node alone, then the other (README: nodes that start together may each register the model).
      const [a, b] = [await start("a"), await start("b")];

      const submitted = await fetch(`${a.url}/v1/models/${MODEL}/finetune`, {
        method: "POST",
        body: scenario.form,
      });
      assert.equal(submitted.status, 202, await submitted.clone().text());
      const { id } = await submitted.json() as Job;
      // Whichever node the queue gave it to runs it; the other takes it over.
      const runnerName = await until("a node to train the job", WAIT_MS, async () => {
        const job = await jobRecord(a.url, id);
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
      assert.ok(
        !runner.log.some((l) => l.includes("worker thread(s) still running")),
        `every worker ended before the exit:\n${runner.log.join("\n")}`,
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
      const ended = await until("the job to end on the node that took it over", WAIT_MS, async () => {
        const job = await jobRecord(other.url, id);
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
      const whole = await uninterruptedRun(scenario, join(dir, "whole"));
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

// SIGTERM during a fine-tune on a real `main.ts serve` child (issue 15): the training worker checkpoints the
// iteration it is at, the server exits 0 within --drain-seconds, and a restart on the same data dir resumes at
// that iteration (not at the epoch start) and publishes exactly the model a run never stopped makes (the same
// code on the same WebGPU adapter in this process).
import assert from "node:assert/strict";
import { join } from "node:path";
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
} from "./_resume_scenario.ts";
import { type Child, reap, serveOn } from "./_serve_child.ts";

/** The whole job takes seconds; this bounds a run where it never ends. */
const JOB_TIMEOUT_MS = 60_000;

gpuTest(
  "e2e: SIGTERM mid-epoch checkpoints the fine-tune, exit 0 in the drain; the restart resumes at that iteration",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-resume-e2e-" });
    const servers: Child[] = [];
    try {
      const scenario = await writeResumeScenario(dir);

      const dataDir = join(dir, "data");
      const args = ["--model", scenario.modelPath, "--drain-seconds", String(DRAIN_SECONDS)];
      const first = await serveOn(dataDir, ...args);
      servers.push(first);
      const submitted = await fetch(`${first.url}/v1/models/${MODEL}/finetune`, {
        method: "POST",
        body: scenario.form,
      });
      assert.equal(submitted.status, 202, await submitted.clone().text());
      const { id } = await submitted.json() as Job;
      await until(
        "training to start",
        JOB_TIMEOUT_MS,
        async () => (await jobRecord(first.url, id)).progress.iteration > 0 || null,
      );
      const signalled = Date.now();
      first.child.kill("SIGTERM");
      const status = await first.child.status;
      const took = Date.now() - signalled;
      assert.equal(status.code, 0, first.log.join("\n"));
      assert.ok(took < DRAIN_SECONDS * 1000 + EXIT_MARGIN_MS, `exited after ${took} ms`);
      assert.ok(first.log.some((l) => l.endsWith("kestrel: stopped")), "drained in time");
      assert.ok(
        !first.log.some((l) => l.includes("worker thread(s) still running")),
        `every worker ended before the exit:\n${first.log.join("\n")}`,
      );

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
      const ended = await until("the resumed job to end", JOB_TIMEOUT_MS, async () => {
        const current = await jobRecord(second.url, id);
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
      const whole = await uninterruptedRun(scenario, join(dir, "whole"));
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

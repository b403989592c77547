import assert from "node:assert/strict";
import { JobRequestError } from "../../src/jobs/errors.ts";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import { canTransition, queuedJob, transition } from "../../src/jobs/state.ts";
import type { Job, JobStatus } from "../../src/jobs/types.ts";

const STATUSES: JobStatus[] = ["queued", "running", "succeeded", "failed", "cancelled"];

function job(status: JobStatus): Job {
  return { id: "j", status, startedAt: null, finishedAt: null, attempts: 0 } as Job;
}

Deno.test("canTransition() allows exactly the job lifecycle, and terminal states are final", () => {
  const allowed = STATUSES.flatMap((from) =>
    STATUSES.filter((to) => canTransition(from, to)).map((to) => `${from}>${to}`)
  );
  assert.deepEqual(allowed, [
    "queued>running",
    "queued>failed",
    "queued>cancelled",
    "running>queued",
    "running>succeeded",
    "running>failed",
    "running>cancelled",
  ]);
});

Deno.test("transition() stamps start, counts attempts, stamps the finish, and refuses illegal moves", () => {
  const first = transition(job("queued"), "running", "t1");
  assert.deepEqual([first.startedAt, first.attempts, first.finishedAt], ["t1", 1, null]);
  const resumed = transition(transition(first, "queued", "t2"), "running", "t3");
  assert.deepEqual([resumed.startedAt, resumed.attempts], ["t1", 2]);
  const done = transition(resumed, "succeeded", "t4", { resultVersion: 7 });
  assert.deepEqual([done.finishedAt, done.resultVersion, done.status], ["t4", 7, "succeeded"]);
  assert.throws(
    () => transition(done, "cancelled", "t5"),
    (e) => e instanceof JobRequestError && e.code === "conflict",
  );
  assert.throws(() => transition(job("queued"), "succeeded", "t5"), /queued; it cannot become succeeded/);
});

Deno.test("queuedJob() starts a record queued, never started, with the config's epochs and nothing else yet", () => {
  const config = parseFinetuneConfig({ epochs: 4 });
  const init = {
    id: "j",
    seq: 3,
    model: "m",
    baseVersion: null,
    adapter: "default",
    config,
    createdAt: "t0",
    dataset: { files: 0, bytes: 0 },
  };
  assert.deepEqual(queuedJob(init), {
    ...init,
    status: "queued",
    startedAt: null,
    finishedAt: null,
    progress: {
      epoch: 0,
      epochs: 4,
      iteration: 0,
      iterations: 0,
      lossItems: null,
      lr: null,
      imagesPerSecond: null,
      etaSeconds: null,
      metrics: null,
    },
    resultVersion: null,
    activated: null,
    error: null,
    attempts: 0,
    node: null,
    checkpoint: null,
  });
  assert.equal(transition(queuedJob(init), "running", "t1").attempts, 1);
});

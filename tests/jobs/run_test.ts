import assert from "node:assert/strict";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import { type AttemptEnv, etaSeconds, runAttempt } from "../../src/jobs/run.ts";
import { queuedJob } from "../../src/jobs/state.ts";
import type { Job, JobProgress } from "../../src/jobs/types.ts";

Deno.test("etaSeconds() extrapolates this attempt's iteration rate", () => {
  const progress = { iteration: 30, iterations: 100 } as JobProgress;
  assert.equal(etaSeconds(progress, 10, 40), (100 - 30) * 40 / 20);
  assert.equal(etaSeconds(progress, 30, 40), null, "no iterations yet in this attempt");
  assert.equal(etaSeconds({ ...progress, iterations: 0 }, 10, 40), null, "total unknown");
});

function env(job: Job, signal = new AbortController().signal) {
  let current = job;
  const env: AttemptEnv = {
    signal,
    suspend: new AbortController().signal,
    now: () => 0,
    datasetDir: "/nonexistent/dataset",
    workDir: "/nonexistent/work",
    checkpoints: () => ({ load: () => Promise.resolve(null), save: () => Promise.resolve() }),
    current: () => current,
    update: (next) => Promise.resolve(current = next),
  };
  return env;
}

const runningJob: Job = {
  ...queuedJob({
    id: "j",
    seq: 0,
    model: "tiny",
    baseVersion: null,
    adapter: "default",
    config: parseFinetuneConfig({ epochs: 1 }),
    createdAt: "t0",
    dataset: { files: 0, bytes: 0 },
  }),
  status: "running",
};

Deno.test("runAttempt() merges reports, turns a diverging loss into nulls, and fails on off-schema reports", async () => {
  const e = env(runningJob);
  const outcome = await runAttempt(
    {
      run(_job, ctx) {
        ctx.onProgress({
          iteration: 1,
          iterations: 4,
          lossItems: [NaN, 0.5, Infinity],
          imagesPerSecond: NaN,
        });
        ctx.onProgress({ lr: [0.1, 0.01, 0.01] });
        return Promise.resolve({ resultVersion: 3, activated: false, metrics: null });
      },
    },
    runningJob,
    e,
  );
  assert.deepEqual(outcome, { ok: true, result: { resultVersion: 3, activated: false, metrics: null } });
  const p = e.current().progress;
  assert.deepEqual([p.iteration, p.iterations, p.lossItems, p.lr, p.imagesPerSecond], [
    1,
    4,
    [null, 0.5, null],
    [0.1, 0.01, 0.01],
    null,
  ]);
  const bad = await runAttempt(
    {
      run(_job, ctx) {
        ctx.onProgress({ iteration: 1.5 });
        return Promise.resolve({ resultVersion: null, activated: null, metrics: null });
      },
    },
    runningJob,
    env(runningJob),
  );
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? "" : bad.error, /Invalid trainer progress report: iteration/);
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import { JobRequestError } from "../../src/jobs/errors.ts";
import { extractArchive } from "../../src/train/data/archive.ts";
import { DatasetError } from "../../src/train/data/problems.ts";
import type { JobEvent } from "../../src/jobs/events.ts";
import { JobService, type SubmitRequest } from "../../src/jobs/service.ts";
import type { DatasetFile } from "../../src/jobs/store.ts";
import type { Job, Trainer, TrainerResult } from "../../src/jobs/types.ts";
import { ITERATIONS_PER_EPOCH, TestTrainer } from "./_test_trainer.ts";

const DATASET: DatasetFile[] = [
  { path: "images/a.png", data: new Uint8Array([137, 80, 78, 71, 1, 2, 3]) },
  { path: "labels/a.txt", data: new TextEncoder().encode("0 0.5 0.5 0.2 0.2\n") },
];

function request(overrides: Partial<SubmitRequest> = {}): SubmitRequest {
  return { model: "yolov5n", config: { epochs: 2, batch_size: 2 }, dataset: DATASET, ...overrides };
}

/** A clock that moves 100 ms every time it is read, so rates and ETAs are always defined. */
function tickingClock(): () => Date {
  let t = Date.UTC(2026, 0, 1);
  return () => new Date(t += 100);
}

async function withService(
  fn: (ctx: { dataDir: string; trainer: TestTrainer; service: JobService }) => Promise<void>,
  options: { progressPersistMs?: number } = {},
): Promise<void> {
  const dataDir = await Deno.makeTempDir();
  const trainer = new TestTrainer();
  const service = await JobService.open({ dataDir, trainer, log: () => {}, now: tickingClock(), ...options });
  try {
    await fn({ dataDir, trainer, service });
  } finally {
    await service.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

async function readRecord(dataDir: string, id: string): Promise<unknown> {
  return JSON.parse(await Deno.readTextFile(join(dataDir, "jobs", id, "job.json")));
}

Deno.test("JobService runs a submitted job to succeeded, streaming progress and persisting record and dataset", async () => {
  await withService(async ({ dataDir, trainer, service }) => {
    const events: JobEvent[] = [];
    const unsubscribe = service.subscribe((e) => events.push(e));
    const hold = trainer.holdAt(0);
    const job = await service.submit(request());
    assert.equal(job.status, "queued");
    await hold.reached;
    for (const file of DATASET) {
      assert.deepEqual(await Deno.readFile(join(dataDir, "jobs", job.id, "dataset", file.path)), file.data);
    }
    hold.release();
    const streamed = await collect(service.events(job.id));
    unsubscribe();
    assert.equal(streamed[streamed.length - 1].job.status, "succeeded");
    const statuses = events.filter((e) => e.type === "status").map((e) => e.job.status);
    assert.deepEqual(statuses.filter((s, i) => s !== statuses[i - 1]), ["queued", "running", "succeeded"]);
    const iterations = events.filter((e) => e.type === "progress").map((e) => e.job.progress.iteration);
    assert.ok(iterations.length > 0 && iterations.every((n, i) => i === 0 || n >= iterations[i - 1]));

    const done = service.get(job.id);
    const total = 2 * ITERATIONS_PER_EPOCH;
    assert.equal(done.status, "succeeded");
    assert.deepEqual([done.progress.iteration, done.progress.iterations, done.progress.epochs], [
      total,
      total,
      2,
    ]);
    assert.deepEqual(done.progress.lossItems, [1 / total, 2 / total, 3 / total]);
    assert.equal(done.progress.etaSeconds, 0);
    assert.deepEqual([done.resultVersion, done.activated, done.progress.metrics], [2, true, {
      map50_95: total / 100,
    }]);
    assert.deepEqual(done.checkpoint?.epoch, 2);
    assert.deepEqual([done.attempts, done.error], [1, null]);
    await service.idle();
    assert.deepEqual(await readRecord(dataDir, job.id), done);
  });
});

Deno.test("JobService runs one job at a time per adapter, in submission order, adapters in parallel", async () => {
  await withService(async ({ trainer, service }) => {
    const gate = trainer.holdAt(0);
    const a = await service.submit(request({ adapter: "gpu0" }));
    const b = await service.submit(request({ adapter: "gpu0" }));
    const c = await service.submit(request({ adapter: "gpu0" }));
    const other = await service.submit(request({ adapter: "gpu1" }));
    await gate.reached;
    await collect(service.events(other.id));
    assert.deepEqual([a, b, c].map((j) => service.get(j.id).status), ["running", "queued", "queued"]);
    gate.release();
    await service.idle();
    assert.deepEqual(trainer.calls.map((call) => call.jobId), [a.id, other.id, b.id, c.id]);
    assert.equal(trainer.maxActivePerAdapter, 1);
    assert.deepEqual(service.list().map((j) => j.status), [
      "succeeded",
      "succeeded",
      "succeeded",
      "succeeded",
    ]);
  });
});

Deno.test("JobService.cancel() cancels queued jobs at once, aborts running ones, refuses finished ones", async () => {
  await withService(async ({ dataDir, trainer, service }) => {
    const gate = trainer.holdAt(1);
    const running = await service.submit(request());
    const queued = await service.submit(request());
    await gate.reached;
    assert.equal((await service.cancel(queued.id)).status, "cancelled");
    await service.cancel(running.id);
    const events = await collect(service.events(running.id));
    assert.equal(events[events.length - 1].job.status, "cancelled");
    await service.idle();
    assert.deepEqual(trainer.calls.map((c) => c.jobId), [running.id]);
    assert.equal(service.get(running.id).progress.iteration, 1);
    assert.equal((await readRecord(dataDir, queued.id) as { status: string }).status, "cancelled");
    await assert.rejects(
      service.cancel(queued.id),
      (e) => e instanceof JobRequestError && e.code === "conflict",
    );
    assert.throws(() => service.get("nope"), (e) => e instanceof JobRequestError && e.code === "not_found");
  });
});

Deno.test("JobService marks a job failed with the trainer's error and moves on to the next", async () => {
  await withService(async ({ trainer, service }) => {
    trainer.failAt = { iteration: 4, message: "Cannot decode image 'images/a.png'" };
    const bad = await service.submit(request());
    const next = await service.submit(request({ config: { epochs: 1 } }));
    await service.idle();
    const failed = service.get(bad.id);
    assert.equal(failed.status, "failed");
    assert.deepEqual(failed.error, { code: "trainer", message: "Cannot decode image 'images/a.png'" });
    assert.equal(failed.progress.iteration, 4);
    assert.equal(service.get(next.id).status, "succeeded");
  });
});

Deno.test("JobService writes progress at most every progressPersistMs but checkpoints at once", async () => {
  await withService(async ({ dataDir, trainer, service }) => {
    const gate = trainer.holdAt(ITERATIONS_PER_EPOCH + 1);
    const job = await service.submit(request());
    await gate.reached;
    const onDisk = await readRecord(dataDir, job.id) as {
      progress: { iteration: number };
      checkpoint: unknown;
    };
    assert.equal(service.get(job.id).progress.iteration, ITERATIONS_PER_EPOCH + 1);
    assert.equal(onDisk.progress.iteration, ITERATIONS_PER_EPOCH);
    assert.deepEqual(onDisk.checkpoint, service.get(job.id).checkpoint);
    gate.release();
  }, { progressPersistMs: 1e9 });
});

Deno.test("JobService.submit() stores an unpacked archive and passes dataset errors through", async () => {
  await withService(async ({ dataDir, service }) => {
    /** The writer the fine-tune route gives: the upload is a file, unpacked into the job's directory. */
    const unpack = (bytes: Uint8Array, name: string) => async (dir: string) => {
      await Deno.writeFile(join(dataDir, name), bytes);
      await extractArchive(join(dataDir, name), dir);
    };
    const zip = zipSync({ "images/a.png": DATASET[0].data, "labels/a.txt": DATASET[1].data });
    const job = await service.submit(request({ dataset: unpack(zip, "good.zip") }));
    const bytes = DATASET.reduce((sum, f) => sum + f.data.length, 0);
    assert.deepEqual(job.dataset, { files: 2, bytes });
    assert.deepEqual(
      await Deno.readFile(join(dataDir, "jobs", job.id, "dataset", "labels", "a.txt")),
      DATASET[1].data,
    );
    const evil = zipSync({ "../evil.txt": new Uint8Array(1) });
    await assert.rejects(
      service.submit(request({ dataset: unpack(evil, "evil.zip") })),
      (e) => e instanceof DatasetError && e.problems[0].file === "../evil.txt",
    );
    await service.idle();
    assert.deepEqual(service.list().map((j) => j.id), [job.id]);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(join(dataDir, "jobs")))).map((e) => e.name), [
      job.id,
    ]);
  });
});

Deno.test("JobService.submit() rejects bad requests without storing anything", async () => {
  await withService(async ({ dataDir, service }) => {
    const invalid = (e: unknown) => e instanceof JobRequestError && e.code === "invalid";
    await assert.rejects(service.submit(request({ model: "../etc" })), invalid);
    await assert.rejects(service.submit(request({ dataset: [] })), invalid);
    await assert.rejects(service.submit(request({ dataset: () => Promise.resolve() })), /dataset is empty/);
    await assert.rejects(service.submit(request({ config: { epochs: 0 } })), /epochs/);
    await assert.rejects(
      service.submit(request({ dataset: [{ path: "../x.txt", data: new Uint8Array(1) }] })),
      invalid,
    );
    await assert.rejects(
      service.submit(request({ dataset: [{ path: "/abs.txt", data: new Uint8Array(1) }] })),
      invalid,
    );
    assert.deepEqual(service.list(), []);
    const stored = await Array.fromAsync(Deno.readDir(join(dataDir, "jobs"))).catch(() => []);
    assert.deepEqual(stored, []);
  });
});

Deno.test("JobService resumes a job interrupted by a restart from its last checkpoint", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const first = new TestTrainer();
    const gate = first.holdAt(ITERATIONS_PER_EPOCH + 1); // mid-way through epoch 1, after epoch 0's checkpoint
    let service = await JobService.open({ dataDir, trainer: first, log: () => {}, progressPersistMs: 0 });
    const job = await service.submit(request({ config: { epochs: 3 } }));
    const waiting = await service.submit(request({ config: { epochs: 1 } }));
    await gate.reached;
    await service.close(); // leaves the records exactly as a crash would
    const crashed = await readRecord(dataDir, job.id) as Job;
    assert.deepEqual([crashed.status, crashed.progress.iteration], ["running", ITERATIONS_PER_EPOCH + 1]);

    const second = new TestTrainer();
    const resumeGate = second.holdAt(ITERATIONS_PER_EPOCH);
    service = await JobService.open({ dataDir, trainer: second, log: () => {} });
    await resumeGate.reached;
    // Progress restarts from the checkpoint (end of epoch 0), where the trainer continues.
    assert.deepEqual([service.get(job.id).progress.epoch, service.get(job.id).progress.iteration], [
      1,
      ITERATIONS_PER_EPOCH,
    ]);
    resumeGate.release();
    await service.idle();
    assert.deepEqual(second.calls.map((c) => [c.jobId, c.startEpoch, c.startIterations]), [
      [job.id, 1, ITERATIONS_PER_EPOCH],
      [waiting.id, 0, 0],
    ]);
    const resumed = service.get(job.id);
    assert.deepEqual([resumed.status, resumed.attempts, resumed.progress.iteration], [
      "succeeded",
      2,
      3 * ITERATIONS_PER_EPOCH,
    ]);
    assert.equal(resumed.progress.metrics?.map50_95, (3 * ITERATIONS_PER_EPOCH) / 100);
    await service.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("JobService.close({ checkpoint }) checkpoints the iteration a job is at; the next open resumes there", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const first = new TestTrainer();
    const stopAt = ITERATIONS_PER_EPOCH + 2; // within epoch 1, after epoch 0's checkpoint
    const gate = first.holdAt(stopAt);
    let service = await JobService.open({ dataDir, trainer: first, log: () => {}, progressPersistMs: 0 });
    const job = await service.submit(request({ config: { epochs: 3 } }));
    await gate.reached;
    await service.close({ checkpoint: true });
    const stopped = await readRecord(dataDir, job.id) as Job;
    assert.equal(stopped.status, "running", "left for the next start, as after a crash");
    assert.deepEqual([stopped.checkpoint?.epoch, stopped.checkpoint?.iteration], [1, 2]);

    const second = new TestTrainer();
    const resumeGate = second.holdAt(stopAt);
    service = await JobService.open({ dataDir, trainer: second, log: () => {} });
    await resumeGate.reached;
    assert.deepEqual([service.get(job.id).progress.epoch, service.get(job.id).progress.iteration], [
      1,
      stopAt,
    ]);
    resumeGate.release();
    await service.idle();
    assert.deepEqual(second.calls.map((c) => [c.startEpoch, c.startIterations]), [[1, stopAt]]);
    const resumed = service.get(job.id);
    assert.deepEqual([resumed.status, resumed.attempts], ["succeeded", 2]);
    // Each iteration trained exactly once over the two attempts.
    assert.equal(resumed.progress.metrics?.map50_95, (3 * ITERATIONS_PER_EPOCH) / 100);
    await service.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("JobService.close({ checkpoint }) stops a trainer that cannot suspend at once", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const started = Promise.withResolvers<void>();
    // Ends only when aborted, as a trainer following a job elsewhere (the fleet's) does.
    const trainer: Trainer = {
      run: (_job, ctx) => {
        started.resolve();
        return new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
        );
      },
    };
    const service = await JobService.open({ dataDir, trainer, log: () => {} });
    const job = await service.submit(request());
    await started.promise;
    await service.close({ checkpoint: true });
    assert.equal((await readRecord(dataDir, job.id) as Job).status, "running", "left for the next start");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("JobService fails a job it cannot resume after a restart and says why", async () => {
  const dataDir = await Deno.makeTempDir();
  const open = (trainer: TestTrainer, maxAttempts?: number) =>
    JobService.open({ dataDir, trainer, log: () => {}, maxAttempts });
  try {
    // 1. a damaged checkpoint
    const first = new TestTrainer();
    const gateA = first.holdAt(ITERATIONS_PER_EPOCH + 1);
    let service = await open(first);
    const damaged = await service.submit(request({ config: { epochs: 3 } }));
    await gateA.reached;
    await service.close();
    const checkpointDir = join(dataDir, "jobs", damaged.id, "checkpoint");
    for await (const entry of Deno.readDir(checkpointDir)) {
      if (entry.name.endsWith(".bin")) {
        await Deno.writeFile(join(checkpointDir, entry.name), new Uint8Array([1]));
      }
    }
    // 2. too many interruptions, 3. a queued job whose upload disappeared
    const second = new TestTrainer();
    const gateB = second.holdAt(0);
    service = await open(second);
    const failed = service.get(damaged.id);
    assert.deepEqual([failed.status, failed.error?.code], ["failed", "interrupted"]);
    assert.match(
      failed.error?.message ?? "",
      /after the checkpoint of epoch 1.*checkpoint cannot be read.*damaged/,
    );
    assert.deepEqual(await readRecord(dataDir, damaged.id), failed);
    const retried = await service.submit(request());
    const lost = await service.submit(request());
    await gateB.reached;
    await service.close();
    await Deno.remove(join(dataDir, "jobs", lost.id, "dataset"), { recursive: true });

    service = await open(new TestTrainer(), 1);
    assert.deepEqual(service.list().map((j) => [j.status, j.error?.code]), [
      ["failed", "interrupted"],
      ["failed", "interrupted"],
      ["failed", "dataset"],
    ]);
    assert.match(service.get(retried.id).error?.message ?? "", /before any checkpoint.*interrupted 1 times/);
    await service.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("JobService.open() keeps queued jobs queued and drops uploads that were never acknowledged", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const trainer = new TestTrainer();
    const gate = trainer.holdAt(0);
    let service = await JobService.open({ dataDir, trainer, log: () => {} });
    const running = await service.submit(request());
    const queued = await service.submit(request());
    await gate.reached;
    await service.close();
    await Deno.mkdir(join(dataDir, "jobs", ".staging-partial", "dataset"), { recursive: true });
    const notes: string[] = [];
    const second = new TestTrainer();
    service = await JobService.open({ dataDir, trainer: second, log: (m) => notes.push(m) });
    await service.idle();
    assert.deepEqual(second.calls.map((c) => c.jobId), [running.id, queued.id]);
    assert.deepEqual(service.list().map((j) => j.status), ["succeeded", "succeeded"]);
    assert.match(notes.join("\n"), /removed 1 upload/);
    await assert.rejects(Deno.stat(join(dataDir, "jobs", ".staging-partial")), Deno.errors.NotFound);
    await service.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** The entries left in a job's directory. */
async function jobDirEntries(dataDir: string, id: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(join(dataDir, "jobs", id)))).map((e) => e.name).sort();
}

Deno.test("JobService deletes an ended job's dataset, checkpoint and work files and keeps its record", async () => {
  await withService(async ({ dataDir, trainer, service }) => {
    const gate = trainer.holdAt(ITERATIONS_PER_EPOCH + 1); // after epoch 0's checkpoint
    const cancelledRunning = await service.submit(request());
    const cancelledQueued = await service.submit(request());
    const succeeded = await service.submit(request());
    await gate.reached;
    assert.deepEqual(await jobDirEntries(dataDir, cancelledRunning.id), [
      "checkpoint",
      "dataset",
      "job.json",
      "work",
    ]);
    assert.deepEqual(await jobDirEntries(dataDir, cancelledQueued.id), ["dataset", "job.json"]);
    await service.cancel(cancelledQueued.id);
    await service.cancel(cancelledRunning.id);
    await service.idle();
    trainer.failAt = { iteration: 1, message: "diverged" };
    const failed = await service.submit(request());
    await service.idle();

    const ended = [cancelledRunning, cancelledQueued, succeeded, failed].map((j) => service.get(j.id));
    assert.deepEqual(ended.map((j) => j.status), ["cancelled", "cancelled", "succeeded", "failed"]);
    for (const job of ended) {
      assert.deepEqual(
        await jobDirEntries(dataDir, job.id),
        ["job.json"],
        `${job.status} job keeps only its record`,
      );
      assert.deepEqual(await readRecord(dataDir, job.id), job);
    }
  });
});

Deno.test("JobService.open() deletes the files an ended job still has (a crash came before their removal)", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    let service = await JobService.open({ dataDir, trainer: new TestTrainer(), log: () => {} });
    const job = await service.submit(request());
    await service.idle();
    await service.close();
    for (const dir of ["dataset/images", "checkpoint", "work"]) {
      await Deno.mkdir(join(dataDir, "jobs", job.id, dir), { recursive: true });
    }
    service = await JobService.open({ dataDir, trainer: new TestTrainer(), log: () => {} });
    assert.equal(service.get(job.id).status, "succeeded");
    assert.deepEqual(await jobDirEntries(dataDir, job.id), ["job.json"]);
    await service.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("JobService: a cancel while the trainer publishes loses; the job ends succeeded with its version", async () => {
  const publishing = Promise.withResolvers<void>();
  const published = Promise.withResolvers<void>();
  // Like WorkerTrainer: once the publish began it is let finish, whatever the signal says.
  const trainer = {
    async run(): Promise<TrainerResult> {
      publishing.resolve();
      await published.promise;
      return { resultVersion: 7, activated: true, metrics: { map50_95: 0.5 } };
    },
  };
  const dataDir = await Deno.makeTempDir();
  try {
    const service = await JobService.open({ dataDir, trainer, log: () => {} });
    const job = await service.submit(request());
    await publishing.promise;
    assert.equal((await service.cancel(job.id)).status, "running", "the cancel is asked for, not done");
    published.resolve();
    await service.idle();
    const done = service.get(job.id);
    assert.deepEqual([done.status, done.resultVersion, done.activated], ["succeeded", 7, true]);
    assert.deepEqual(await readRecord(dataDir, job.id), done);
    await service.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("JobService.submit() counts submissions still being stored against maxQueuedJobs", async () => {
  const dataDir = await Deno.makeTempDir();
  const trainer = new TestTrainer();
  const service = await JobService.open({ dataDir, trainer, log: () => {}, limits: { maxQueuedJobs: 1 } });
  try {
    const gate = trainer.holdAt(0);
    await service.submit(request()); // runs, so it does not wait in the queue
    await gate.reached;
    const unpacking = Promise.withResolvers<void>();
    const stored = Promise.withResolvers<void>();
    const slow = service.submit(request({
      dataset: async (dir) => {
        unpacking.resolve();
        await stored.promise;
        await Deno.mkdir(join(dir, "images"));
        await Deno.writeFile(join(dir, "images", "a.png"), DATASET[0].data);
      },
    }));
    await unpacking.promise;
    await assert.rejects(
      service.submit(request()),
      (e) => e instanceof JobRequestError && e.code === "busy" && e.retryAfterSeconds !== undefined,
    );
    stored.resolve();
    assert.equal((await slow).status, "queued");
    await assert.rejects(service.submit(request()), (e) => e instanceof JobRequestError && e.code === "busy");
    gate.release();
    await service.idle();
  } finally {
    await service.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { JobService } from "../../src/jobs/service.ts";
import { checkDatasetPath, JobStore } from "../../src/jobs/store.ts";
import { TestTrainer } from "./_test_trainer.ts";

Deno.test("checkDatasetPath() keeps uploads inside the dataset directory", () => {
  assert.equal(checkDatasetPath("images/train/a.jpg"), "images/train/a.jpg");
  for (const bad of ["", "/etc/passwd", "../a.txt", "images/../../a", "images//a", "./a", "images\\a.jpg"]) {
    assert.throws(() => checkDatasetPath(bad), TypeError, bad);
  }
});

Deno.test("JobStore.loadAll() reports unreadable job directories and leaves them in place", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(root, "broken"));
    await Deno.writeTextFile(join(root, "broken", "job.json"), "{ not json");
    const { jobs, unreadable, discardedStaging } = await new JobStore(root).loadAll();
    assert.deepEqual([jobs, discardedStaging], [[], 0]);
    assert.equal(unreadable.length, 1);
    assert.match(unreadable[0].reason, /broken\/job\.json/);
    assert.ok((await Deno.stat(join(root, "broken", "job.json"))).isFile);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("JobStore.loadAll() drops the temp file of a record write a crash interrupted, keeping the record", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dataDir = await Deno.makeTempDir({ dir: root });
    const service = await JobService.open({ dataDir, trainer: new TestTrainer(), log: () => {} });
    const job = await service.submit({
      model: "m",
      config: { epochs: 1 },
      dataset: [{ path: "images/a.png", data: new Uint8Array([1]) }],
    });
    await service.idle();
    await service.close();
    const dir = join(dataDir, "jobs", job.id);
    await Deno.writeTextFile(join(dir, "job.json.tmp-1234"), '{"status": "runn');
    const { jobs } = await new JobStore(join(dataDir, "jobs")).loadAll();
    assert.deepEqual(jobs.map((j) => [j.id, j.status]), [[job.id, "succeeded"]]);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["job.json"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

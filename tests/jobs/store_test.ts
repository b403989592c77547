import assert from "node:assert/strict";
import { join } from "node:path";
import { checkDatasetPath, JobStore } from "../../src/jobs/store.ts";

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

import assert from "node:assert/strict";
import { join } from "node:path";
import { FsCheckpoints } from "../../src/jobs/checkpoint.ts";

Deno.test("FsCheckpoints saves and loads the newest state, keeps one state file, detects damage", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const saved: number[] = [];
    const checkpoints = new FsCheckpoints(join(dir, "checkpoint"), (epoch) => {
      saved.push(epoch);
      return Promise.resolve();
    });
    assert.equal(await checkpoints.load(), null);
    await checkpoints.save({ epoch: 1, state: new Uint8Array([1, 2, 3]) });
    await checkpoints.save({ epoch: 2, state: new Uint8Array([4, 5]) });
    assert.deepEqual(await checkpoints.load(), { epoch: 2, state: new Uint8Array([4, 5]) });
    assert.deepEqual(saved, [1, 2]);
    const files = (await Array.fromAsync(Deno.readDir(join(dir, "checkpoint")))).map((e) => e.name).sort();
    assert.equal(files.length, 2);
    assert.equal(files[0], "checkpoint.json");
    assert.match(files[1], /^state-2-.*\.bin$/);
    await Deno.writeFile(join(dir, "checkpoint", files[1]), new Uint8Array([4, 6]));
    await assert.rejects(checkpoints.load(), /is damaged/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

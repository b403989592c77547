import assert from "node:assert/strict";
import { join } from "node:path";
import { FsCheckpoints } from "../../src/jobs/checkpoint.ts";

Deno.test("FsCheckpoints saves and loads the newest state, keeps one state file, detects damage", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const saved: { epoch: number; iteration: number }[] = [];
    const checkpoints = new FsCheckpoints(join(dir, "checkpoint"), (position) => {
      saved.push(position);
      return Promise.resolve();
    });
    assert.equal(await checkpoints.load(), null);
    await checkpoints.save({ epoch: 1, iteration: 0, state: new Uint8Array([1, 2, 3]) });
    await checkpoints.save({ epoch: 2, iteration: 3, state: new Uint8Array([4, 5]) });
    assert.deepEqual(await checkpoints.load(), { epoch: 2, iteration: 3, state: new Uint8Array([4, 5]) });
    assert.deepEqual(saved, [{ epoch: 1, iteration: 0 }, { epoch: 2, iteration: 3 }]);
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

Deno.test("a pointer written before mid-epoch checkpoints existed loads as an epoch-end checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const checkpoints = new FsCheckpoints(dir);
    await checkpoints.save({ epoch: 2, iteration: 0, state: new Uint8Array([7]) });
    const pointer = JSON.parse(await Deno.readTextFile(join(dir, "checkpoint.json")));
    delete pointer.iteration;
    await Deno.writeTextFile(join(dir, "checkpoint.json"), JSON.stringify(pointer));
    assert.deepEqual(await checkpoints.load(), { epoch: 2, iteration: 0, state: new Uint8Array([7]) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

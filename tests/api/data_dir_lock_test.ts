import assert from "node:assert/strict";
import { join } from "node:path";
import { DataDirInUseError, lockDataDir } from "../../src/api/data_dir_lock.ts";

Deno.test("a data dir takes one server at a time, and is free again once released", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-lock-" });
  try {
    const first = await lockDataDir(join(dir, "data"));
    await assert.rejects(lockDataDir(join(dir, "data")), (err: Error) => {
      assert.ok(err instanceof DataDirInUseError);
      assert.match(err.message, /in use by another Kestrel server/);
      return true;
    });
    first.release();
    (await lockDataDir(join(dir, "data"))).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a killed holder's lock is released by the operating system", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-lock-" });
  const moduleUrl = new URL("../../src/api/data_dir_lock.ts", import.meta.url).href;
  const holder = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const { lockDataDir } = await import(${JSON.stringify(moduleUrl)});
       globalThis.held = await lockDataDir(${JSON.stringify(dir)});
       console.log("locked");
       setInterval(() => {}, 1000);`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = holder.stdout.getReader();
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value).trim(), "locked");
    reader.releaseLock();
    await assert.rejects(lockDataDir(dir), DataDirInUseError);
    holder.kill("SIGKILL");
    await holder.status;
    (await lockDataDir(dir)).release();
  } finally {
    await holder.stdout.cancel().catch(() => {});
    try {
      holder.kill("SIGKILL");
    } catch {
      // already exited
    }
    await holder.status;
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseServerArgs } from "../../src/config/server.ts";
import { DEFAULT_MAX_QUEUE } from "../../src/serving/session_queue.ts";

Deno.test("parseServerArgs() reads the hardening flags and their defaults", () => {
  const defaults = parseServerArgs([]);
  assert.deepEqual(
    [defaults.allowedHosts, defaults.maxInflightDetect, defaults.maxEventStreams, defaults.maxQueue],
    [[], 32, 64, DEFAULT_MAX_QUEUE],
  );
  const set = parseServerArgs([
    "--allowed-hosts",
    "Kestrel.LAN, box.example,",
    "--max-inflight-detect",
    "4",
    "--max-event-streams",
    "2",
    "--max-queue",
    "3",
  ]);
  assert.deepEqual([set.allowedHosts, set.maxInflightDetect, set.maxEventStreams, set.maxQueue], [
    ["kestrel.lan", "box.example"],
    4,
    2,
    3,
  ]);
  assert.throws(() => parseServerArgs(["--max-inflight-detect", "0"]), /maxInflightDetect/);
  assert.throws(() => parseServerArgs(["--max-queue", "0"]), /maxQueue/);
});

Deno.test("--api-key-file reads the key trimmed, and refuses a world-readable or empty file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-key-" });
  try {
    const path = join(dir, "key");
    await Deno.writeTextFile(path, "s3cret-key\n", { mode: 0o600 });
    await Deno.chmod(path, 0o600);
    assert.equal(parseServerArgs(["--api-key-file", path]).apiKey, "s3cret-key");
    assert.throws(() => parseServerArgs(["--api-key-file", path, "--api-key", "x"]), /not both/);
    await Deno.chmod(path, 0o644);
    assert.throws(() => parseServerArgs(["--api-key-file", path]), /readable by every user.*644.*chmod 600/);
    await Deno.writeTextFile(path, " \n");
    await Deno.chmod(path, 0o600);
    assert.throws(() => parseServerArgs(["--api-key-file", path]), /is empty/);
    assert.throws(
      () => parseServerArgs(["--api-key-file", join(dir, "missing")]),
      /--api-key-file .*missing/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--deepstack-model and --detect-needs-key parse; both are off by default", () => {
  const plain = parseServerArgs([]);
  assert.equal(plain.deepstackModel, undefined);
  assert.equal(plain.detectNeedsKey, false);
  const set = parseServerArgs(["--deepstack-model", "yolov5n", "--detect-needs-key"]);
  assert.equal(set.deepstackModel, "yolov5n");
  assert.equal(set.detectNeedsKey, true);
  assert.throws(() => parseServerArgs(["--deepstack-model", ""]), /deepstackModel/);
});

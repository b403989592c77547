import assert from "node:assert/strict";
import { parseServerArgs } from "../../src/config/server.ts";

Deno.test("--deepstack-model and --detect-needs-key parse; both are off by default", () => {
  const plain = parseServerArgs([]);
  assert.equal(plain.deepstackModel, undefined);
  assert.equal(plain.detectNeedsKey, false);
  const set = parseServerArgs(["--deepstack-model", "yolov5n", "--detect-needs-key"]);
  assert.equal(set.deepstackModel, "yolov5n");
  assert.equal(set.detectNeedsKey, true);
  assert.throws(() => parseServerArgs(["--deepstack-model", ""]), /deepstackModel/);
});

import assert from "node:assert/strict";
import { createLogger } from "../../src/api/log.ts";

Deno.test("a JSON log line is one object with time, level, msg and the defined fields", () => {
  const lines: string[] = [];
  const log = createLogger("json", { write: (l) => lines.push(l) });
  const before = Date.now();
  log.warn("disk low", { free_bytes: 12, dir: "/var/lib/kestrel", absent: undefined, none: null });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0].includes("\n"));
  const entry = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(entry), ["time", "level", "msg", "free_bytes", "dir", "none"]);
  assert.equal(entry.level, "warn");
  assert.equal(entry.msg, "disk low");
  assert.equal(entry.free_bytes, 12);
  assert.equal(entry.none, null);
  const time = Date.parse(entry.time);
  assert.ok(time >= before - 1000 && time <= Date.now(), entry.time);
});

Deno.test("a text log line is `kestrel: msg key=value`, values with spaces, quotes or = quoted, on one line", () => {
  const lines: string[] = [];
  const log = createLogger("text", { write: (l) => lines.push(l) });
  log.info("listening on http://127.0.0.1:8000");
  log.error("failed", { error: 'Error: boom\n  at "x"', route: "/v1/models", empty: "" });
  assert.deepEqual(lines, [
    "kestrel: listening on http://127.0.0.1:8000",
    `kestrel: error: failed error=${JSON.stringify('Error: boom\n  at "x"')} route=/v1/models empty=""`,
  ]);
});

Deno.test("lines below minLevel are dropped", () => {
  const lines: string[] = [];
  const log = createLogger("text", { write: (l) => lines.push(l), minLevel: "warn" });
  log.info("request");
  log.warn("slow");
  log.error("broken");
  assert.deepEqual(lines, ["kestrel: warn: slow", "kestrel: error: broken"]);
});

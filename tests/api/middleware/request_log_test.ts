import assert from "node:assert/strict";
import sharp from "sharp";
import { createLogger } from "../../../src/api/log.ts";
import { MAX_REQUEST_ID_LENGTH } from "../../../src/api/middleware/request_log.ts";
import { openTestApp } from "../_app_setup.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function appWithLog() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("json", { write: (l) => lines.push(JSON.parse(l)) });
  const t = await openTestApp({ log });
  return { ...t, lines };
}

Deno.test("a detect is logged once with its request id, route, model, version, status and duration", async () => {
  const t = await appWithLog();
  try {
    const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#5a8c3c" } }).png()
      .toBuffer();
    const res = await t.call("/v1/models/tiny/detect", {
      method: "POST",
      body: new Uint8Array(png),
      headers: { "content-type": "image/png", "x-request-id": "cam-7_frame=42" },
    });
    assert.equal(res.status, 200, await res.clone().text());
    await res.body?.cancel();
    assert.equal(res.headers.get("x-request-id"), "cam-7_frame=42");
    const requests = t.lines.filter((l) => l.msg === "request");
    assert.equal(requests.length, 1);
    const { time: _, duration_ms, ...rest } = requests[0];
    assert.deepEqual(rest, {
      level: "info",
      msg: "request",
      request_id: "cam-7_frame=42",
      method: "POST",
      route: "/v1/models/:name/detect",
      model: "tiny",
      version: 1,
      status: 200,
    });
    assert.equal(typeof duration_ms, "number");
    assert.ok((duration_ms as number) >= 0);
  } finally {
    await t.close();
  }
});

Deno.test("an id that is too long or not a plain token is replaced by a UUID, echoed on errors too", async () => {
  const t = await appWithLog();
  try {
    const longest = "a".repeat(MAX_REQUEST_ID_LENGTH);
    const kept = await t.call("/v1/models", { headers: { "x-request-id": longest } });
    await kept.body?.cancel();
    assert.equal(kept.headers.get("x-request-id"), longest);
    for (const bad of ["a".repeat(MAX_REQUEST_ID_LENGTH + 1), "id with spaces", "id\u00e9", "a;b"]) {
      const res = await t.call("/no/such/route", { headers: { "x-request-id": bad } });
      assert.equal(res.status, 404);
      await res.body?.cancel();
      assert.match(res.headers.get("x-request-id") ?? "", UUID, bad);
    }
    const ids = t.lines.filter((l) => l.msg === "request").map((l) => l.request_id);
    assert.equal(new Set(ids).size, ids.length, "every generated id is fresh");
    assert.equal(t.lines.at(-1)!.route, "unmatched");
  } finally {
    await t.close();
  }
});

Deno.test("a request that fails with a 500 logs the error and an error-level request line under its id", async () => {
  const t = await appWithLog();
  try {
    t.app.get("/v1/test-boom", () => {
      throw new Error("boom");
    });
    const res = await t.call("/v1/test-boom");
    assert.equal(res.status, 500);
    assert.equal((await res.json()).error.code, "internal_error");
    const id = res.headers.get("x-request-id");
    assert.match(id ?? "", UUID);
    const mine = t.lines.filter((l) => l.request_id === id);
    assert.deepEqual(mine.map((l) => [l.level, l.msg]), [
      ["error", "GET /v1/test-boom failed"],
      ["error", "request"],
    ]);
    assert.match(String(mine[0].error), /Error: boom/);
    assert.equal(mine[1].status, 500);
  } finally {
    await t.close();
  }
});

Deno.test("a 503 refusal (models loading) is logged at info level: it is no failure of the server", async () => {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("json", { write: (l) => lines.push(JSON.parse(l)) });
  const t = await openTestApp({ log, isReady: () => false });
  try {
    const res = await t.call("/v1/models");
    assert.equal(res.status, 503);
    await res.body?.cancel();
    assert.deepEqual(lines.map((l) => [l.level, l.status]), [["info", 503]]);
  } finally {
    await t.close();
  }
});

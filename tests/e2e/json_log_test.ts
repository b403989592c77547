// `--log-format json` on a real server: every line it writes from start to exit is one JSON object, and a
// request's line carries the id echoed to the client.
import assert from "node:assert/strict";
import { reap, serve } from "./_serve_child.ts";

Deno.test({
  name:
    "--log-format json: every line from start to exit is a JSON object; a request's line has its echoed id",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s = await serve("--log-format", "json");
    try {
      const res = await fetch(`http://127.0.0.1:${s.port}/v1/models/default`, {
        headers: { "x-request-id": "nvr-1_cam-3" },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal(res.headers.get("x-request-id"), "nvr-1_cam-3");
      s.child.kill("SIGTERM");
      assert.equal((await s.child.status).code, 0, s.log.join("\n"));
      const entries = s.log.map((line) => {
        try {
          return JSON.parse(line);
        } catch {
          assert.fail(`not a JSON line: ${line}`);
        }
      });
      for (const e of entries) {
        assert.ok(!Number.isNaN(Date.parse(e.time)) && ["info", "warn", "error"].includes(e.level), e);
        assert.equal(typeof e.msg, "string");
      }
      const listening = entries.find((e) => e.msg.startsWith("listening on "));
      assert.equal(listening?.url, `http://127.0.0.1:${s.port}`);
      const request = entries.find((e) => e.request_id === "nvr-1_cam-3");
      assert.deepEqual(
        { ...request, time: undefined, duration_ms: undefined },
        {
          time: undefined,
          level: "info",
          msg: "request",
          request_id: "nvr-1_cam-3",
          method: "GET",
          route: "/v1/models/:name",
          status: 200,
          duration_ms: undefined,
        },
      );
      assert.ok(entries.some((e) => e.msg === "stopped"), s.log.join("\n"));
    } finally {
      await reap(s);
    }
  },
});

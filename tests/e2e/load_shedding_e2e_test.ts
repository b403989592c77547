// `deno task start --max-queue 2` under a burst: the requests its model cannot queue are answered 503
// `overloaded` with Retry-After, the rest 200, and every request gets one of the two (none lost or hung).
import assert from "node:assert/strict";
import { join } from "node:path";
import { bigJpeg } from "../_helpers/big_jpeg.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { serve, stop } from "./_serve_child.ts";

const MAX_QUEUE = 2;
const BURST = 24;

Deno.test({
  name: "a burst against --max-queue 2 gets some 503 overloaded + Retry-After and the rest 200, none lost",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-shed-" });
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo());
    const server = await serve("--model", modelPath, "--max-queue", String(MAX_QUEUE));
    const { url } = server;
    try {
      const image = await bigJpeg();
      const answers = await Promise.all(
        Array.from({ length: BURST }, async () => {
          const res = await fetch(`${url}/v1/models/tiny/detect`, {
            method: "POST",
            body: image,
            headers: { "content-type": "image/jpeg" },
          });
          return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.json() };
        }),
      );
      const ok = answers.filter((a) => a.status === 200);
      const shed = answers.filter((a) => a.status === 503);
      assert.equal(ok.length + shed.length, BURST, JSON.stringify(answers.map((a) => a.status)));
      assert.ok(ok.length >= 1 && shed.length >= 1, `200: ${ok.length}, 503: ${shed.length}`);
      for (const a of ok) assert.deepEqual(a.body.model, { name: "tiny", version: 1 });
      for (const a of shed) {
        assert.equal(a.retryAfter, "1");
        assert.equal(a.body.error.code, "overloaded");
      }
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, new RegExp(`^kestrel_detect_shed_total\\{model="tiny"\\} ${shed.length}$`, "m"));
    } finally {
      await stop(server);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// Load shedding (--max-queue): a detect request that finds its model's queue full is answered 503 `overloaded`
// with Retry-After at once, in every API family's error shape, and counted in /metrics. The queue is held full
// by admissions the test takes itself, so what is refused does not depend on timing.
import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { expectError, LOOPBACK } from "./_app_setup.ts";
import { familyDetectRequests } from "./_family_requests.ts";

const MAX_QUEUE = 2;
/** tinyYolo's default input side. */
const IMGSZ = 32;

Deno.test({
  name:
    "a full model queue sheds detect with 503 overloaded + Retry-After in each family, counted in /metrics",
  sanitizeResources: false,
  fn: async () => {
    const pool = new ModelPool(nativeBackend, undefined, undefined, MAX_QUEUE);
    await pool.swap("tiny", 1, tinyYolo());
    const app = createApp({ pool });
    const call = (path: string, init: RequestInit = {}) => app.request(path, init, LOOPBACK);
    const { image, send } = await familyDetectRequests(call, "tiny", IMGSZ);
    try {
      for (const [family, request] of Object.entries(send)) {
        const res = await request();
        assert.equal(res.status, 200, `${family} answers while the queue has room: ${await res.text()}`);
      }
      const held = Array.from({ length: MAX_QUEUE }, () => pool.get("tiny")!.admit());
      const native = await send.native();
      assert.equal(native.headers.get("retry-after"), "1");
      const { message } = await expectError(native, 503, "overloaded");
      assert.match(message, /'tiny' has 2 requests queued/);
      const deepstack = await send.deepstack();
      assert.equal(deepstack.status, 503);
      assert.equal(deepstack.headers.get("retry-after"), "1");
      assert.deepEqual(await deepstack.json(), { success: false, code: 503, error: message });
      const v2 = await send.v2();
      assert.equal(v2.status, 503);
      assert.equal(v2.headers.get("retry-after"), "1");
      assert.deepEqual(await v2.json(), { error: message });
      const metrics = await (await call("/metrics")).text();
      assert.match(metrics, /^kestrel_detect_shed_total\{model="tiny"\} 3$/m);
      assert.match(metrics, /^kestrel_inference_queue_depth 2$/m);
      held.forEach((h) => h.withdraw());
      assert.equal((await send.native()).status, 200, "a freed place is taken again");
      for (let i = 0; i <= MAX_QUEUE; i++) {
        const broken = image.slice(0, 200);
        const res = call("/v1/models/tiny/detect", {
          method: "POST",
          body: broken,
          headers: { "content-type": "image/jpeg" },
        });
        await expectError(res, 422, "undecodable_image");
      }
      assert.equal(pool.queueDepth(), 0, "a request whose image fails to decode gives its place back");
    } finally {
      await pool.close();
    }
  },
});

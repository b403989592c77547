// A native inference worker that crashes under a request: the request is answered 503 `inference_unavailable`
// (with Retry-After, in each API family's error shape) instead of hanging, the worker is replaced, and the next
// request of every family is answered by the model as before.
import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { crashNextWorkerCall } from "../serving/_crash_worker.ts";
import { expectError, LOOPBACK } from "./_app_setup.ts";
import { familyDetectRequests } from "./_family_requests.ts";

/** tinyYolo's default input side. */
const IMGSZ = 32;

Deno.test({
  name: "a crashed inference worker answers 503 inference_unavailable in each family, then is replaced",
  sanitizeResources: false,
  fn: async () => {
    const pool = new ModelPool(nativeBackend);
    await pool.swap("tiny", 1, tinyYolo());
    const app = createApp({ pool });
    const call = (path: string, init: RequestInit = {}) => app.request(path, init, LOOPBACK);
    const { send } = await familyDetectRequests(call, "tiny", IMGSZ);
    try {
      const before: Record<string, string> = {};
      for (const [family, request] of Object.entries(send)) {
        const res = await request();
        before[family] = await res.text();
        assert.equal(res.status, 200, `${family}: ${before[family]}`);
      }
      crashNextWorkerCall();
      const native = await send.native();
      assert.equal(native.headers.get("retry-after"), "1");
      const { message } = await expectError(native, 503, "inference_unavailable");
      assert.match(message, /stopped with an error; it has been replaced, retry/);
      crashNextWorkerCall();
      const deepstack = await send.deepstack();
      assert.equal(deepstack.status, 503);
      assert.deepEqual(await deepstack.json(), { success: false, code: 503, error: message });
      crashNextWorkerCall();
      const v2 = await send.v2();
      assert.equal(v2.status, 503);
      assert.deepEqual(await v2.json(), { error: message });
      for (const [family, request] of Object.entries(send)) {
        const res = await request();
        const body = await res.text();
        assert.equal(res.status, 200, `${family} after the crash: ${body}`);
        if (family === "v2") assert.equal(body, before[family], "v2: the same output as before the crash");
      }
    } finally {
      await pool.close();
    }
  },
});

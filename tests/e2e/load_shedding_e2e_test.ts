// `deno task start --max-queue 2` under a burst: the requests its model cannot queue are answered 503
// `overloaded` with Retry-After, the rest 200, and every request gets one of the two (none lost or hung).
import assert from "node:assert/strict";
import { join } from "node:path";
import { bigJpeg } from "../_helpers/big_jpeg.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const ROOT = new URL("../../", import.meta.url);
const MAX_QUEUE = 2;
const BURST = 24;
/** How long the server gets to stop on SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;

Deno.test({
  name: "a burst against --max-queue 2 gets some 503 overloaded + Retry-After and the rest 200, none lost",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-shed-" });
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo());
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "main.ts",
        "serve",
        "--port",
        "0",
        "--backend",
        "native",
        "--data-dir",
        join(dir, "data"),
      ]
        .concat(["--model", modelPath, "--max-queue", String(MAX_QUEUE)]),
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log: string[] = [];
    const listening = Promise.withResolvers<string>();
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        log.push(chunk);
        const url = /listening on (http:\/\/\S+)/.exec(log.join(""))?.[1];
        if (url) listening.resolve(url);
      }
      listening.reject(new Error(`server exited before listening:\n${log.join("")}`));
    })();
    try {
      const url = await listening.promise;
      for (let i = 0; (await fetch(`${url}/readyz`).then((r) => (r.body?.cancel(), r.status))) !== 200; i++) {
        assert.ok(i < 600, "not ready after 60 s");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
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
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await child.status;
      clearTimeout(timer);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

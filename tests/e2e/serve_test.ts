import assert from "node:assert/strict";
import { referenceData, referenceName } from "../_helpers/reference.ts";

const ROOT = new URL("../../", import.meta.url);
const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx", "images/bus.jpg");
const SHARED = REFERENCE.url("");
const BUS = REFERENCE.missing ? new Uint8Array() : await Deno.readFile(new URL("images/bus.jpg", SHARED));
/** Body limit given to the server, so an oversized upload is cheap to send. */
const MAX_BODY = 600_000;

/** Starts `deno task start` on a free loopback port and resolves with its URL once it logs it. */
async function startServer(
  dataDir: string,
): Promise<{ url: string; child: Deno.ChildProcess; log: string[] }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--backend",
      "native",
      "--data-dir",
      dataDir,
      "--max-body-bytes",
      String(MAX_BODY),
      "--model",
      new URL("models/yolov5n.onnx", SHARED).pathname,
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const listening = Promise.withResolvers<string>();
  (async () => {
    let pending = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        log.push(line);
        const url = /listening on (http:\/\/\S+)/.exec(line)?.[1];
        if (url) listening.resolve(url);
      }
    }
    listening.reject(new Error(`server exited before listening:\n${log.join("\n")}`));
  })();
  return { url: await listening.promise, child, log };
}

Deno.test({
  name: referenceName(
    "deno task start serves detection over a real loopback socket and survives bad requests",
    REFERENCE,
  ),
  ignore: REFERENCE.missing,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "kestrel-e2e-" });
    const { url, child, log } = await startServer(dataDir);
    try {
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      for (let i = 0; (await fetch(`${url}/readyz`).then((r) => (r.body?.cancel(), r.status))) !== 200; i++) {
        assert.ok(i < 600, "not ready after 60 s");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(log.some((l) => l.includes("backend native")), log.join("\n"));

      const detect = (body: BodyInit, type = "image/jpeg") =>
        fetch(`${url}/v1/models/yolov5n/detect`, { method: "POST", body, headers: { "content-type": type } });
      const answers = await Promise.all([1, 2, 3, 4].map(() => detect(BUS)));
      const bodies = await Promise.all(answers.map((r) => r.json()));
      for (const body of bodies) {
        assert.deepEqual(body.model, { name: "yolov5n", version: 1 });
        assert.deepEqual(body.detections, bodies[0].detections, "concurrent requests agree");
      }
      assert.equal(bodies[0].detections.length, 4);

      const garbage = await detect("garbage");
      assert.equal(garbage.status, 415);
      assert.equal((await garbage.json()).error.code, "unsupported_media_type");
      const huge = await detect(new Uint8Array(MAX_BODY + 1));
      assert.equal(huge.status, 413);
      assert.equal((await huge.json()).error.code, "payload_too_large");
      const again = await detect(BUS);
      assert.equal(again.status, 200, "still serving after bad requests");
      await again.body?.cancel();

      const models = await (await fetch(`${url}/v1/models`)).json();
      assert.equal(models.backend, "native");
    } finally {
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, log.join("\n"));
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

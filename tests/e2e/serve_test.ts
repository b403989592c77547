import assert from "node:assert/strict";
import { reap, serve } from "./_serve_child.ts";

const ROOT = new URL("../../", import.meta.url);
// A fixture image with one labelled triangle; `deno task start` serves the embedded default model, which
// detects the three synthetic shapes (models/README.md).
const FIXTURE = new URL("tests/fixtures/shapes/", ROOT);
const IMAGE = await Deno.readFile(new URL("images/shapes_0001.png", FIXTURE));
const LABEL = (await Deno.readTextFile(new URL("labels/shapes_0001.txt", FIXTURE))).trim().split(/\s+/).map(
  Number,
);
const NAMES = ["circle", "square", "triangle"]; // tests/fixtures/shapes/data.yaml
/** The detection must overlap the label like a true positive at mAP@0.5. */
const MIN_IOU = 0.5;
/** Body limit given to the server, so an oversized upload is cheap to send. */
const MAX_BODY = 600_000;

function iou(a: number[], b: number[]): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h);
}

Deno.test({
  name: "deno task start serves detection over a real loopback socket and survives bad requests",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // Resolves once /readyz answers 200 (_serve_child.ts).
    const server = await serve("--host", "127.0.0.1", "--max-body-bytes", String(MAX_BODY));
    const { url, log } = server;
    try {
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      assert.ok(log.some((l) => l.includes("backend native")), log.join("\n"));

      const detect = (body: BodyInit, type = "image/png") =>
        fetch(`${url}/v1/models/default/detect`, { method: "POST", body, headers: { "content-type": type } });
      const answers = await Promise.all([1, 2, 3, 4].map(() => detect(IMAGE)));
      const bodies = await Promise.all(answers.map((r) => r.json()));
      for (const body of bodies) {
        assert.deepEqual(body.model, { name: "default", version: 1 });
        assert.deepEqual(body.detections, bodies[0].detections, "concurrent requests agree");
      }
      const [cls, cx, cy, w, h] = LABEL;
      const { width, height } = bodies[0].image;
      const want = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height];
      assert.equal(bodies[0].detections.length, 1, JSON.stringify(bodies[0].detections));
      const [found] = bodies[0].detections;
      assert.equal(found.class_name, NAMES[cls]);
      const { x1, y1, x2, y2 } = found.box;
      assert.ok(iou([x1, y1, x2, y2], want) >= MIN_IOU, `${JSON.stringify(found.box)} vs label ${want}`);

      const garbage = await detect("garbage", "image/jpeg");
      assert.equal(garbage.status, 415);
      assert.equal((await garbage.json()).error.code, "unsupported_media_type");
      const huge = await detect(new Uint8Array(MAX_BODY + 1));
      assert.equal(huge.status, 413);
      assert.equal((await huge.json()).error.code, "payload_too_large");
      const again = await detect(IMAGE);
      assert.equal(again.status, 200, "still serving after bad requests");
      await again.body?.cancel();

      const models = await (await fetch(`${url}/v1/models`)).json();
      assert.equal(models.backend, "native");
    } finally {
      server.child.kill("SIGTERM");
      await reap(server); // SIGKILLs a server that outlives the grace period, removes its data dir
      assert.equal((await server.child.status).code, 0, log.join("\n"));
    }
  },
});

import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";

// The embedded default model (3 shapes, 128x128 input: models/README.md) and a 128x128 fixture image whose labels
// are the reference for what it should find.
const FIXTURE = new URL("../fixtures/shapes/", import.meta.url);
const IMAGE = await Deno.readFile(new URL("images/shapes_0000.png", FIXTURE));
const IMAGE_SIZE = 128;
/** Label rows [class, x1, y1, x2, y2] in image pixels. */
const LABELS = (await Deno.readTextFile(new URL("labels/shapes_0000.txt", FIXTURE))).trim().split("\n").map(
  (line) => {
    const [c, cx, cy, w, h] = line.trim().split(/\s+/).map(Number);
    return [c, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2].map((v, i) => i === 0 ? v : v * IMAGE_SIZE);
  },
);
/** A detection matches a label like a true positive at mAP@0.5. */
const MIN_IOU = 0.5;

const pool = new ModelPool(nativeBackend);
await pool.swap("shapes", 1, await Deno.readFile(new URL("../../models/default.onnx", import.meta.url)));
const app = createApp({ pool });
const DETECT = "/v1/models/shapes/detect";

interface Detected {
  class_id: number;
  class_name: string;
  confidence: number;
  box: { x1: number; y1: number; x2: number; y2: number };
}

function iou(a: number[], b: number[]): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h);
}

/** Labels no detection of the same class overlaps by MIN_IOU. */
function missedLabels(detections: Detected[]): number[][] {
  return LABELS.filter(([c, ...box]) =>
    !detections.some((d) => d.class_id === c && iou([d.box.x1, d.box.y1, d.box.x2, d.box.y2], box) >= MIN_IOU)
  );
}

const post = (body: BodyInit, type?: string, path = DETECT, target = app) =>
  target.request(path, { method: "POST", body, headers: type ? { "content-type": type } : {} });

async function expectError(res: Response | Promise<Response>, status: number, code: string): Promise<void> {
  const r = await res;
  const body = await r.json();
  assert.equal(r.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, JSON.stringify(body));
  assert.equal(typeof body.error.message, "string");
}

const test = (name: string, fn: () => Promise<void>) => Deno.test({ name, fn, sanitizeResources: false });

test("GET /healthz and /readyz answer 200 once models are loaded", async () => {
  assert.deepEqual(await (await app.request("/healthz")).json(), { status: "ok" });
  assert.equal((await app.request("/readyz")).status, 200);
});

test("/readyz and /v1/* answer 503 while models load; /healthz stays 200", async () => {
  const loading = createApp({ pool, isReady: () => false });
  assert.equal((await loading.request("/healthz")).status, 200);
  await expectError(loading.request("/readyz"), 503, "not_ready");
  await expectError(loading.request("/v1/models"), 503, "not_ready");
  await expectError(post(IMAGE, "image/png", DETECT, loading), 503, "not_ready");
});

test("GET /v1/models lists the served version and the backend", async () => {
  const body = await (await app.request("/v1/models")).json();
  assert.equal(body.backend, "native");
  assert.deepEqual(body.models.map((m: { name: string; version: number }) => [m.name, m.version]), [[
    "shapes",
    1,
  ]]);
  const one = await (await app.request("/v1/models/shapes")).json();
  assert.deepEqual([one.imgsz, one.stride, one.nc, one.names, one.backend], [
    128,
    32,
    3,
    ["circle", "square", "triangle"],
    "native",
  ]);
  await expectError(app.request("/v1/models/nope"), 404, "model_not_found");
  await expectError(app.request("/v1/models/..bad"), 400, "invalid_request");
});

test("POST detect accepts a raw body, multipart field 'image' and JSON base64 alike", async () => {
  const form = new FormData();
  form.append("image", new File([IMAGE], "shapes.png", { type: "image/png" }));
  const answers = [
    await post(IMAGE, "image/png"),
    await post(IMAGE, "application/octet-stream"),
    await post(form),
    await post(JSON.stringify({ image: IMAGE.toBase64() }), "application/json"),
  ];
  const bodies = await Promise.all(answers.map((r) => r.json()));
  for (const [i, body] of bodies.entries()) {
    assert.equal(answers[i].status, 200, JSON.stringify(body));
    assert.deepEqual(body.model, { name: "shapes", version: 1 });
    assert.deepEqual(body.image, { width: IMAGE_SIZE, height: IMAGE_SIZE });
    assert.deepEqual(missedLabels(body.detections), [], "every labelled shape is found");
    assert.deepEqual(body.detections, bodies[0].detections);
  }
  assert.equal(bodies[2].file, "shapes.png");
});

test("POST detect applies conf, classes and max_det from the query", async () => {
  const get = async (query: string) =>
    (await (await post(IMAGE, "image/png", `${DETECT}?${query}`)).json()).detections;
  // Each filter keeps exactly the default answer's detections it should (NMS runs per class, so they agree).
  const all: Detected[] = await get("conf=0.25");
  assert.ok(all.length > 1, JSON.stringify(all));
  const threshold = (all[0].confidence + all[all.length - 1].confidence) / 2;
  assert.deepEqual(await get(`conf=${threshold}`), all.filter((d) => d.confidence > threshold));
  const cls = all[all.length - 1].class_id;
  assert.deepEqual(await get(`classes=${cls}`), all.filter((d) => d.class_id === cls));
  assert.deepEqual(await get("max_det=1&iou=0.45"), all.slice(0, 1));
});

test("POST detect maps every bad input to its status and error code, and keeps serving", async () => {
  await expectError(post("not an image at all", "image/jpeg"), 415, "unsupported_media_type");
  await expectError(post(IMAGE.subarray(0, IMAGE.length / 2), "image/png"), 422, "undecodable_image");
  await expectError(post("hello", "text/plain"), 415, "unsupported_media_type");
  await expectError(post("{not json", "application/json"), 400, "bad_request");
  await expectError(post("{}", "application/json"), 422, "invalid_body");
  await expectError(post(JSON.stringify({ image: "@@@" }), "application/json"), 422, "invalid_base64");
  await expectError(post(new FormData(), undefined), 422, "invalid_body");
  for (const q of ["conf=abc", "conf=2", "iou=-1", "max_det=0", "max_det=1.5", "classes=a,b"]) {
    await expectError(post(IMAGE, "image/png", `${DETECT}?${q}`), 400, "invalid_request");
  }
  await expectError(post(IMAGE, "image/png", "/v1/models/nope/detect"), 404, "model_not_found");
  const small = createApp({ pool, maxBodyBytes: 1000, maxPixels: 1000 });
  await expectError(post(IMAGE, "image/png", DETECT, small), 413, "payload_too_large");
  const tiny = createApp({ pool, maxPixels: 1000 });
  await expectError(post(IMAGE, "image/png", DETECT, tiny), 413, "image_too_large");
  assert.equal((await post(IMAGE, "image/png")).status, 200, "still serving after all of the above");
});

test("GET /metrics exposes requests by route and status, latency, inference time, queue and versions", async () => {
  await post("garbage", "image/jpeg");
  await post(IMAGE, "image/png");
  const text = await (await app.request("/metrics")).text();
  const route = 'route="/v1/models/:name/detect"';
  assert.match(text, new RegExp(`kestrel_http_requests_total\\{method="POST",${route},status="415"\\} \\d+`));
  assert.match(text, new RegExp(`kestrel_http_requests_total\\{method="POST",${route},status="200"\\} \\d+`));
  assert.match(
    text,
    new RegExp(`kestrel_http_request_duration_seconds_bucket\\{${route},le="\\+Inf"\\} \\d+`),
  );
  assert.match(text, /kestrel_inference_seconds_count\{model="shapes"\} [1-9]\d*/);
  assert.match(text, /kestrel_inference_queue_depth 0/);
  assert.match(text, /kestrel_model_active\{name="shapes",version="1",backend="native"\} 1/);
});

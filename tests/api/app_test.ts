import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { referenceData, referenceName } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx", "images/bus.jpg");
const BUS = REFERENCE.missing ? new Uint8Array() : await Deno.readFile(REFERENCE.url("images/bus.jpg"));
/** Classes of bus.jpg's detections in the reference data's reference/detect_yolov5n_640.json, best first. */
const BUS_CLASSES = [0, 0, 0, 5];

const pool = new ModelPool(nativeBackend);
if (!REFERENCE.missing) {
  await pool.swap("yolov5n", 1, await Deno.readFile(REFERENCE.url("models/yolov5n.onnx")));
}
const app = createApp({ pool });
const DETECT = "/v1/models/yolov5n/detect";

const post = (body: BodyInit, type?: string, path = DETECT, target = app) =>
  target.request(path, { method: "POST", body, headers: type ? { "content-type": type } : {} });

async function expectError(res: Response | Promise<Response>, status: number, code: string): Promise<void> {
  const r = await res;
  const body = await r.json();
  assert.equal(r.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, JSON.stringify(body));
  assert.equal(typeof body.error.message, "string");
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: referenceName(name, REFERENCE),
    ignore: REFERENCE.missing,
    fn,
    sanitizeResources: false,
  });

test("GET /healthz and /readyz answer 200 once models are loaded", async () => {
  assert.deepEqual(await (await app.request("/healthz")).json(), { status: "ok" });
  assert.equal((await app.request("/readyz")).status, 200);
});

test("/readyz and /v1/* answer 503 while models load; /healthz stays 200", async () => {
  const loading = createApp({ pool, isReady: () => false });
  assert.equal((await loading.request("/healthz")).status, 200);
  await expectError(loading.request("/readyz"), 503, "not_ready");
  await expectError(loading.request("/v1/models"), 503, "not_ready");
  await expectError(post(BUS, "image/jpeg", DETECT, loading), 503, "not_ready");
});

test("GET /v1/models lists the served version and the backend", async () => {
  const body = await (await app.request("/v1/models")).json();
  assert.equal(body.backend, "native");
  assert.deepEqual(body.models.map((m: { name: string; version: number }) => [m.name, m.version]), [[
    "yolov5n",
    1,
  ]]);
  const one = await (await app.request("/v1/models/yolov5n")).json();
  assert.deepEqual([one.imgsz, one.stride, one.nc, one.names[5], one.backend], [
    640,
    32,
    80,
    "bus",
    "native",
  ]);
  await expectError(app.request("/v1/models/nope"), 404, "model_not_found");
  await expectError(app.request("/v1/models/..bad"), 400, "invalid_request");
});

test("POST detect accepts a raw body, multipart field 'image' and JSON base64 alike", async () => {
  const form = new FormData();
  form.append("image", new File([BUS], "bus.jpg", { type: "image/jpeg" }));
  const answers = [
    await post(BUS, "image/jpeg"),
    await post(BUS, "application/octet-stream"),
    await post(form),
    await post(JSON.stringify({ image: BUS.toBase64() }), "application/json"),
  ];
  const bodies = await Promise.all(answers.map((r) => r.json()));
  for (const [i, body] of bodies.entries()) {
    assert.equal(answers[i].status, 200, JSON.stringify(body));
    assert.deepEqual(body.model, { name: "yolov5n", version: 1 });
    assert.deepEqual(body.image, { width: 810, height: 1080 });
    assert.deepEqual(body.detections.map((d: { class_id: number }) => d.class_id), BUS_CLASSES);
    assert.deepEqual(body.detections, bodies[0].detections);
  }
  assert.equal(bodies[2].file, "bus.jpg");
});

test("POST detect applies conf, classes and max_det from the query", async () => {
  const get = async (query: string) =>
    (await (await post(BUS, "image/jpeg", `${DETECT}?${query}`)).json()).detections;
  const confident = await get("conf=0.6");
  assert.ok(confident.length === 3 && confident.every((d: { confidence: number }) => d.confidence > 0.6));
  assert.deepEqual((await get("classes=5")).map((d: { class_name: string }) => d.class_name), ["bus"]);
  assert.equal((await get("max_det=1&iou=0.45")).length, 1);
});

test("POST detect maps every bad input to its status and error code, and keeps serving", async () => {
  await expectError(post("not an image at all", "image/jpeg"), 415, "unsupported_media_type");
  await expectError(post(BUS.subarray(0, BUS.length / 2), "image/jpeg"), 422, "undecodable_image");
  await expectError(post("hello", "text/plain"), 415, "unsupported_media_type");
  await expectError(post("{not json", "application/json"), 400, "bad_request");
  await expectError(post("{}", "application/json"), 422, "invalid_body");
  await expectError(post(JSON.stringify({ image: "@@@" }), "application/json"), 422, "invalid_base64");
  await expectError(post(new FormData(), undefined), 422, "invalid_body");
  for (const q of ["conf=abc", "conf=2", "iou=-1", "max_det=0", "max_det=1.5", "classes=a,b"]) {
    await expectError(post(BUS, "image/jpeg", `${DETECT}?${q}`), 400, "invalid_request");
  }
  await expectError(post(BUS, "image/jpeg", "/v1/models/nope/detect"), 404, "model_not_found");
  const small = createApp({ pool, maxBodyBytes: 1000, maxPixels: 1000 });
  await expectError(post(BUS, "image/jpeg", DETECT, small), 413, "payload_too_large");
  const tiny = createApp({ pool, maxPixels: 1000 });
  await expectError(post(BUS, "image/jpeg", DETECT, tiny), 413, "image_too_large");
  assert.equal((await post(BUS, "image/jpeg")).status, 200, "still serving after all of the above");
});

test("GET /metrics exposes requests by route and status, latency, inference time, queue and versions", async () => {
  await post("garbage", "image/jpeg");
  await post(BUS, "image/jpeg");
  const text = await (await app.request("/metrics")).text();
  const route = 'route="/v1/models/:name/detect"';
  assert.match(text, new RegExp(`kestrel_http_requests_total\\{method="POST",${route},status="415"\\} \\d+`));
  assert.match(text, new RegExp(`kestrel_http_requests_total\\{method="POST",${route},status="200"\\} \\d+`));
  assert.match(
    text,
    new RegExp(`kestrel_http_request_duration_seconds_bucket\\{${route},le="\\+Inf"\\} \\d+`),
  );
  assert.match(text, /kestrel_inference_seconds_count\{model="yolov5n"\} [1-9]\d*/);
  assert.match(text, /kestrel_inference_queue_depth 0/);
  assert.match(text, /kestrel_model_active\{name="yolov5n",version="1",backend="native"\} 1/);
});

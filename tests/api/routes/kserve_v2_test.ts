import assert from "node:assert/strict";
import { referenceData, referenceName } from "../../_helpers/reference.ts";
import * as ort from "../../../src/serving/backends/ort_native.ts";
import sharp from "sharp";
import { z } from "zod";
import { createApp } from "../../../src/api/app.ts";
import { decodeImage } from "../../../src/image/decode.ts";
import { letterbox, letterboxGeometry } from "../../../src/image/letterbox.ts";
import { nativeBackend } from "../../../src/serving/backends/native.ts";
import { ModelPool } from "../../../src/serving/pool.ts";
import { Rng } from "../../../src/train/data/rng.ts";
import { synthImage } from "../../../src/train/synth.ts";
import { startLoopbackServer } from "./_loopback_server.ts";

/** The spec's REST objects as JSON Schema, written from KServe's rest_predict_v2.yaml (see its $comment). */
const SPEC = JSON.parse(
  await Deno.readTextFile(new URL("../../fixtures/kserve_v2/rest_schemas.json", import.meta.url)),
);
const specSchema = (name: string) =>
  z.fromJSONSchema({ $ref: `#/$defs/${name}`, $defs: SPEC.$defs } as never);
function assertSpec(name: string, value: unknown): void {
  const result = specSchema(name).safeParse(value);
  assert.ok(result.success, `${name}: ${JSON.stringify(value).slice(0, 300)}\n${result.error?.message}`);
}

const MODEL_BYTES = await Deno.readFile(new URL("../../../models/default.onnx", import.meta.url));
const IMGSZ = 128; // models/default.onnx's fixed input
const INPUT = "images";
const OUTPUT = "output0";
const NC = 3;
const BINARY_HEADER = "Inference-Header-Content-Length";

const pool = new ModelPool(nativeBackend);
await pool.swap("default", 1, MODEL_BYTES);
const app = createApp({ pool });
/** The same model on onnxruntime-node with the options the native backend uses. */
const reference = await ort.InferenceSession.create(MODEL_BYTES, { graphOptimizationLevel: "all" });

async function referenceRun(input: Float32Array): Promise<{ dims: number[]; data: number[] }> {
  const out =
    (await reference.run({ [INPUT]: new ort.Tensor("float32", input, [1, 3, IMGSZ, IMGSZ]) }))[OUTPUT];
  return { dims: [...out.dims], data: Array.from(out.data as Float32Array) };
}

/** A synthetic picture as a JPEG, and the model input the detect path makes of it. */
async function picture(seed: number, width: number, height: number) {
  const { rgb } = synthImage(Math.max(width, height), new Rng(seed));
  const side = Math.max(width, height);
  const jpeg = new Uint8Array(
    await sharp(rgb, { raw: { width: side, height: side, channels: 3 } }).resize(width, height, {
      fit: "fill",
    })
      .jpeg().toBuffer(),
  );
  const { tensor } = letterbox(await decodeImage(jpeg), IMGSZ);
  return { jpeg, tensor };
}

const infer = (body: BodyInit, headers: Record<string, string> = {}, path = "/v2/models/default/infer") =>
  app.request(path, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

/** Splits a binary-extension response into its JSON header and the bytes after it. */
async function splitBinary(res: Response): Promise<{ head: Record<string, unknown>; rest: Uint8Array }> {
  const length = Number(res.headers.get(BINARY_HEADER));
  const body = new Uint8Array(await res.arrayBuffer());
  return {
    head: JSON.parse(new TextDecoder().decode(body.subarray(0, length))),
    rest: body.subarray(length),
  };
}

const littleEndianFloats = (bytes: Uint8Array) => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.length / 4 }, (_, i) => view.getFloat32(4 * i, true));
};

/** An answer that must be the spec's error object with this status. */
async function expectV2Error(
  res: Response | Promise<Response>,
  status: number,
  pattern?: RegExp,
): Promise<void> {
  const r = await res;
  const body = await r.json();
  assert.equal(r.status, status, JSON.stringify(body));
  assertSpec("error_response", body);
  assert.deepEqual(Object.keys(body), ["error"]);
  if (pattern) assert.match(body.error, pattern);
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, fn, sanitizeResources: false, sanitizeOps: false });

test("v2 server metadata, health and model metadata/ready follow the spec", async () => {
  for (const path of ["/v2", "/v2/"]) {
    const meta = await (await app.request(path)).json();
    assertSpec("metadata_server_response", meta);
    assert.equal(meta.name, "kestrel");
    assert.ok(meta.extensions.includes("binary_tensor_data"));
  }
  for (const path of ["/v2/health/live", "/v2/health/ready", "/v2/models/default/ready"]) {
    const res = await app.request(path);
    assert.equal(res.status, 200, path);
    assert.equal(await res.text(), "", `${path}: the spec's health answers have an empty body`);
  }
  const loading = createApp({ pool, isReady: () => false });
  assert.equal((await loading.request("/v2/health/live")).status, 200);
  await expectV2Error(loading.request("/v2/health/ready"), 400);

  for (const path of ["/v2/models/default", "/v2/models/default/versions/1"]) {
    const meta = await (await app.request(path)).json();
    assertSpec("metadata_model_response", meta);
    assert.deepEqual(meta, {
      name: "default",
      versions: ["1"],
      platform: "onnxruntime_onnx",
      inputs: [{ name: INPUT, datatype: "FP32", shape: [1, 3, IMGSZ, IMGSZ] }],
      outputs: [{ name: OUTPUT, datatype: "FP32", shape: [1, -1, 5 + NC] }],
    });
  }
  assert.equal((await app.request("/v2/models/default/versions/1/ready")).status, 200);
  for (const path of ["/v2/models/nope", "/v2/models/default/versions/2", "/v2/models/nope/ready"]) {
    await expectV2Error(app.request(path), 404);
  }
  await expectV2Error(app.request("/v2/models/default/versions/2/ready"), 404, /version 1/);
  await expectV2Error(app.request("/v2/models/..bad"), 400);
  await expectV2Error(app.request("/v2/no/such/route"), 404);
});

test("v2 JSON infer (flat and nested data) returns exactly onnxruntime's output, id echoed, outputs filter", async () => {
  const { tensor } = await picture(21, 160, 120);
  const expected = await referenceRun(tensor);
  const flat = Array.from(tensor);
  const nested = Array.from(
    { length: 3 },
    (_, c) =>
      Array.from(
        { length: IMGSZ },
        (_, y) => flat.slice((c * IMGSZ + y) * IMGSZ, (c * IMGSZ + y + 1) * IMGSZ),
      ),
  );
  const requests = [
    { id: "42", inputs: [{ name: INPUT, shape: [1, 3, IMGSZ, IMGSZ], datatype: "FP32", data: flat }] },
    {
      parameters: { priority: 1, note: "accepted" },
      inputs: [{
        name: INPUT,
        shape: [1, 3, IMGSZ, IMGSZ],
        datatype: "FP32",
        parameters: {},
        data: [nested],
      }],
      outputs: [{ name: OUTPUT, parameters: { binary_data: false } }],
    },
  ];
  for (
    const [path, request] of [["/v2/models/default/infer", requests[0]], [
      "/v2/models/default/versions/1/infer",
      requests[1],
    ]] as const
  ) {
    assertSpec("inference_request", request);
    const res = await infer(JSON.stringify(request), {}, path);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    const body = await res.json();
    assertSpec("inference_response", body);
    assert.equal(body.model_name, "default");
    assert.equal(body.model_version, "1");
    assert.equal(body.id, "id" in request ? request.id : undefined);
    assert.equal(body.outputs.length, 1);
    assert.deepEqual(
      [body.outputs[0].name, body.outputs[0].datatype, body.outputs[0].shape],
      [OUTPUT, "FP32", expected.dims],
    );
    assert.deepEqual(body.outputs[0].data, expected.data, `${path}: output equals onnxruntime's`);
  }
  const none = await (await infer(JSON.stringify({ ...requests[0], outputs: [] }))).json();
  assert.deepEqual(none.outputs, [], "an empty outputs list asks for no outputs");
});

test("v2 binary tensor data: binary input and outputs round-trip onnxruntime's output on a real socket", async () => {
  const { server, close } = await startLoopbackServer();
  try {
    const { tensor } = await picture(22, 128, 96);
    const expected = await referenceRun(tensor);
    const raw = new Uint8Array(tensor.length * 4);
    tensor.forEach((v, i) => new DataView(raw.buffer).setFloat32(4 * i, v, true));
    const send = async (head: object) => {
      const json = new TextEncoder().encode(JSON.stringify(head));
      const body = new Uint8Array(json.length + raw.length);
      body.set(json);
      body.set(raw, json.length);
      return await fetch(`${server.url}/v2/models/default/infer`, {
        method: "POST",
        body,
        headers: { "content-type": "application/octet-stream", [BINARY_HEADER]: String(json.length) },
      });
    };
    const input = {
      name: INPUT,
      shape: [1, 3, IMGSZ, IMGSZ],
      datatype: "FP32",
      parameters: { binary_data_size: raw.length },
    };
    for (
      const head of [
        { id: "b1", inputs: [input], parameters: { binary_data_output: true } },
        { id: "b2", inputs: [input], outputs: [{ name: OUTPUT, parameters: { binary_data: true } }] },
      ]
    ) {
      const res = await send(head);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/octet-stream");
      const { head: answer, rest } = await splitBinary(res);
      assertSpec("binary_inference_response", answer);
      const out = (answer.outputs as Record<string, unknown>[])[0];
      assert.equal(answer.id, head.id);
      assert.equal("data" in out, false);
      assert.deepEqual(out.parameters, { binary_data_size: expected.data.length * 4 });
      assert.deepEqual(out.shape, expected.dims);
      assert.deepEqual(littleEndianFloats(rest), expected.data);
    }
    const jsonOut = await send({ inputs: [input] });
    assert.equal(jsonOut.headers.get(BINARY_HEADER), null);
    const body = await jsonOut.json();
    assertSpec("inference_response", body);
    assert.deepEqual(body.outputs[0].data, expected.data);
  } finally {
    await close();
  }
});

test("v2 BYTES input: an encoded image, letterboxed as the detect path does, gives onnxruntime's output", async () => {
  const { jpeg, tensor } = await picture(23, 200, 150);
  const expected = await referenceRun(tensor);
  const geometry = letterboxGeometry(200, 150, IMGSZ);
  const expectParameters = {
    image_width: 200,
    image_height: 150,
    letterbox_width: geometry.width,
    letterbox_height: geometry.height,
    letterbox_left: geometry.left,
    letterbox_top: geometry.top,
  };
  const jsonRequest = { inputs: [{ name: INPUT, shape: [1], datatype: "BYTES", data: [jpeg.toBase64()] }] };
  assertSpec("inference_request", jsonRequest);
  const viaJson = await (await infer(JSON.stringify(jsonRequest))).json();
  assertSpec("inference_response", viaJson);
  assert.deepEqual(viaJson.parameters, expectParameters);
  assert.deepEqual(viaJson.outputs[0].data, expected.data);

  // the extension's BYTES layout (4-byte little-endian length, then the bytes), and the bare image OVMS takes
  const element = new Uint8Array(4 + jpeg.length);
  new DataView(element.buffer).setUint32(0, jpeg.length, true);
  element.set(jpeg, 4);
  const sendBinary = (data: Uint8Array, parameters: object = {}) => {
    const input = {
      name: INPUT,
      shape: [1],
      datatype: "BYTES",
      parameters: { binary_data_size: data.length },
    };
    const head = new TextEncoder().encode(JSON.stringify({ inputs: [input], parameters }));
    return infer(new Uint8Array([...head, ...data]), { [BINARY_HEADER]: String(head.length) });
  };
  for (const data of [element, jpeg]) {
    const viaBinary = await sendBinary(data, { binary_data_output: true });
    assert.equal(viaBinary.status, 200);
    const { head: answer, rest } = await splitBinary(viaBinary);
    assertSpec("binary_inference_response", answer);
    assert.deepEqual(answer.parameters, expectParameters);
    assert.deepEqual(littleEndianFloats(rest), expected.data);
  }
  // two length-prefixed elements where the shape says one: not an image
  await expectV2Error(sendBinary(new Uint8Array([...element, ...element])), 415);
});

test("v2 bad infer requests get 400 (404 for unknown models) with the spec's error object", async () => {
  const { tensor } = await picture(24, 64, 64);
  const ok = { name: INPUT, shape: [1, 3, IMGSZ, IMGSZ], datatype: "FP32", data: Array.from(tensor) };
  const cases: [string, unknown, RegExp][] = [
    ["wrong shape", { inputs: [{ ...ok, shape: [1, 3, 64, 64] }] }, /shape \[1,3,64,64\]/],
    ["too few values", { inputs: [{ ...ok, data: ok.data.slice(1) }] }, /values for shape/],
    ["a string value", { inputs: [{ ...ok, data: ["0.5", ...ok.data.slice(1)] }] }, /not a number/],
    ["wrong datatype", { inputs: [{ ...ok, datatype: "INT32" }] }, /datatype INT32/],
    ["wrong name", { inputs: [{ ...ok, name: "input0" }] }, /'images'/],
    ["two inputs", { inputs: [ok, ok] }, /one input/],
    ["no inputs field", { id: "1" }, /inputs/],
    ["unknown output", { inputs: [ok], outputs: [{ name: "boxes" }] }, /No output 'boxes'/],
    ["id not a string", { id: 7, inputs: [ok] }, /id/],
    [
      "BYTES of two images",
      { inputs: [{ name: INPUT, shape: [2], datatype: "BYTES", data: ["", ""] }] },
      /\[1\]/,
    ],
    [
      "BYTES not base64",
      { inputs: [{ name: INPUT, shape: [1], datatype: "BYTES", data: ["%%%"] }] },
      /base64/,
    ],
    ["no data", { inputs: [{ ...ok, data: undefined }] }, /neither data/],
  ];
  for (const [what, request, pattern] of cases) {
    await expectV2Error(infer(JSON.stringify(request)), 400, pattern).catch((err) => {
      throw new Error(`${what}: ${err.message}`);
    });
  }
  await expectV2Error(infer("{not json"), 400, /not JSON/);
  await expectV2Error(infer("{}", { [BINARY_HEADER]: "99" }), 400, /not a length within/);
  const head = JSON.stringify({
    inputs: [{ ...ok, data: undefined, parameters: { binary_data_size: tensor.length * 4 } }],
  });
  await expectV2Error(infer(head + "abcd", { [BINARY_HEADER]: String(head.length) }), 400, /does not fit/);
  const noImage = { inputs: [{ name: INPUT, shape: [1], datatype: "BYTES", data: [btoa("not an image")] }] };
  await expectV2Error(infer(JSON.stringify(noImage)), 415);
  await expectV2Error(infer(JSON.stringify({ inputs: [ok] }), {}, "/v2/models/nope/infer"), 404, /nope/);
  await expectV2Error(
    infer(JSON.stringify({ inputs: [ok] }), {}, "/v2/models/default/versions/9/infer"),
    404,
  );
});

test("the DeepStack and v2 routes are in /openapi.json under their tags, and /metrics labels them by route", async () => {
  const doc = await (await app.request("/openapi.json")).json();
  const tagged = (prefix: string) =>
    Object.entries(doc.paths as Record<string, Record<string, { tags?: string[] }>>)
      .filter(([path]) => path.startsWith(prefix))
      .flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => [`${method} ${path}`, op.tags]));
  const v2 = tagged("/v2");
  const deepstack = tagged("/v1/vision");
  const model = "/v2/models/{name}";
  const versioned = `${model}/versions/{version}`;
  assert.deepEqual(
    v2.map(([op]) => op).sort(),
    [
      "get /v2",
      "get /v2/",
      "get /v2/health/live",
      "get /v2/health/ready",
      ...[model, versioned].flatMap((m) => [`get ${m}`, `get ${m}/ready`, `post ${m}/infer`]),
    ].sort(),
  );
  assert.deepEqual(deepstack.map(([op]) => op).sort(), [
    "post /v1/vision/custom/list",
    "post /v1/vision/custom/{name}",
    "post /v1/vision/detection",
  ]);
  for (const [op, tags] of v2) assert.deepEqual(tags, ["v2"], String(op));
  for (const [op, tags] of deepstack) assert.deepEqual(tags, ["deepstack"], String(op));

  const metricsApp = createApp({ pool });
  const { jpeg } = await picture(25, 64, 64);
  const form = new FormData();
  form.append("image", new File([jpeg], "frame.jpg"));
  for (const path of ["/v1/vision/detection", "/v1/vision/custom/default", "/v1/vision/custom/nope"]) {
    await (await metricsApp.request(path, { method: "POST", body: form })).body?.cancel();
  }
  const bytes = { inputs: [{ name: INPUT, shape: [1], datatype: "BYTES", data: [jpeg.toBase64()] }] };
  for (const path of ["/v2/models/default/infer", "/v2/models/default/versions/1/infer"]) {
    await (await metricsApp.request(path, { method: "POST", body: JSON.stringify(bytes) })).body?.cancel();
  }
  await (await metricsApp.request("/v2/models/default")).body?.cancel();
  const text = await (await metricsApp.request("/metrics")).text();
  const expected: [string, string, number][] = [
    ["POST", "/v1/vision/detection", 200],
    ["POST", "/v1/vision/custom/:name", 200],
    ["POST", "/v1/vision/custom/:name", 404],
    ["POST", "/v2/models/:name/infer", 200],
    ["POST", "/v2/models/:name/versions/:version/infer", 200],
    ["GET", "/v2/models/:name", 200],
  ];
  for (const [method, route, status] of expected) {
    const line = `kestrel_http_requests_total{method="${method}",route="${route}",status="${status}"} 1`;
    assert.ok(text.includes(line), `${line} in\n${text}`);
  }
  assert.ok(!/route="\/v[12]\/[^"]*(default|nope)/.test(text), "model names stay out of the route label");
});

test("v2 follows the active version: after a swap the new version answers and the old one is 404", async () => {
  const swapping = new ModelPool(nativeBackend);
  await swapping.swap("m", 1, MODEL_BYTES);
  const v2 = createApp({ pool: swapping });
  try {
    const { tensor } = await picture(26, 96, 96);
    const request = JSON.stringify({
      inputs: [{ name: INPUT, shape: [1, 3, IMGSZ, IMGSZ], datatype: "FP32", data: Array.from(tensor) }],
    });
    const post = (path: string) => v2.request(path, { method: "POST", body: request });
    assert.equal((await (await post("/v2/models/m/versions/1/infer")).json()).model_version, "1");
    await swapping.swap("m", 2, MODEL_BYTES);
    const body = await (await post("/v2/models/m/infer")).json();
    assert.equal(body.model_version, "2");
    assert.deepEqual(body.outputs[0].data, (await referenceRun(tensor)).data);
    assert.equal((await (await post("/v2/models/m/versions/2/infer")).json()).model_version, "2");
    await expectV2Error(post("/v2/models/m/versions/1/infer"), 404, /serves version 2/);
    assert.deepEqual((await (await v2.request("/v2/models/m")).json()).versions, ["2"]);
  } finally {
    await swapping.close();
  }
});

const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx", "images/bus.jpg");

Deno.test({
  name: referenceName(
    "v2 on yolov5n: bus.jpg as a binary BYTES input gives onnxruntime's output on the letterboxed image",
    REFERENCE,
  ),
  ignore: REFERENCE.missing,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const onnx = await Deno.readFile(REFERENCE.url("models/yolov5n.onnx"));
    const bus = await Deno.readFile(REFERENCE.url("images/bus.jpg"));
    const yolo = new ModelPool(nativeBackend);
    await yolo.swap("yolov5n", 1, onnx);
    const session = await ort.InferenceSession.create(onnx, { graphOptimizationLevel: "all" });
    try {
      const input = {
        name: INPUT,
        shape: [1],
        datatype: "BYTES",
        parameters: { binary_data_size: bus.length },
      };
      const head = new TextEncoder().encode(
        JSON.stringify({ inputs: [input], parameters: { binary_data_output: true } }),
      );
      const res = await createApp({ pool: yolo }).request("/v2/models/yolov5n/infer", {
        method: "POST",
        body: new Uint8Array([...head, ...bus]),
        headers: { [BINARY_HEADER]: String(head.length) },
      });
      assert.equal(res.status, 200);
      const { head: answer, rest } = await splitBinary(res);
      assertSpec("binary_inference_response", answer);
      const { tensor } = letterbox(await decodeImage(bus), 640);
      const out =
        (await session.run({ [INPUT]: new ort.Tensor("float32", tensor, [1, 3, 640, 640]) }))[OUTPUT];
      assert.deepEqual((answer.outputs as { shape: number[] }[])[0].shape, [...out.dims]);
      assert.deepEqual(littleEndianFloats(rest), Array.from(out.data as Float32Array));
    } finally {
      await session.release();
      await yolo.close();
    }
  },
});

test("--detect-needs-key: v2 infer needs the Bearer key (401 in the spec's shape); metadata stays open", async () => {
  const locked = createApp({ pool, apiKey: "s3cret", detectNeedsKey: true });
  const { jpeg } = await picture(27, 64, 64);
  const body = JSON.stringify({
    inputs: [{ name: INPUT, shape: [1], datatype: "BYTES", data: [jpeg.toBase64()] }],
  });
  const post = (headers: Record<string, string>) =>
    locked.request("/v2/models/default/infer", { method: "POST", body, headers });
  await expectV2Error(post({}), 401);
  await expectV2Error(post({ authorization: "Bearer nope" }), 401);
  const ok = await post({ authorization: "Bearer s3cret" });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  assert.equal((await locked.request("/v2/models/default")).status, 200);
});

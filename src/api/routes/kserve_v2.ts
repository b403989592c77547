/**
 * The Open Inference Protocol (KServe v2) REST API, so inference platforms and their clients (KServe, Triton's
 * and OpenVINO Model Server's clients, Seldon) call Kestrel unchanged: server and model metadata, health, and
 * infer on a model's raw tensors, exactly as onnxruntime computes them. Beyond the spec's JSON: the binary
 * tensor data extension, and a `BYTES` input holding an encoded image (as OpenVINO Model Server accepts), which
 * goes through the detect path's decode and letterbox. Only the active version of a model is served. Errors
 * are `{"error": "<message>"}`, as the spec has them.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { decodeImage } from "../../image/decode.ts";
import type { CaptureOffer } from "../../capture/service.ts";
import { type Letterbox, letterbox } from "../../image/letterbox.ts";
import type { Lease } from "../../serving/pool.ts";
import { DEFAULT_DETECT_OPTIONS, postprocess } from "../../serving/postprocess.ts";
import type { RouteContext, RouteModule } from "../app.ts";
import { captureSource } from "../capture_source.ts";
import { requireDetectKey } from "../detect_key.ts";
import { offerCapture } from "../detect_run.ts";
import { limitBody } from "../middleware/body_limit.ts";
import { limitInflight } from "../middleware/inflight.ts";
import { ApiError } from "../errors.ts";
import { reshapeErrors } from "../foreign_errors.ts";
import { json } from "../openapi_responses.ts";
import {
  BINARY_HEADER,
  bytesValues,
  encodeInferResponse,
  fp32Values,
  type InferInput,
  InferRequestSchema,
  InferResponseSchema,
  type OutputTensor,
  parseInferBody,
} from "../kserve_v2_codec.ts";
import { ModelNameParamSchema } from "../schemas.ts";
import { OPENAPI_INFO } from "./docs.ts";

export const V2_PREFIX = "/v2";
const TAG = "v2";
/** Triton's platform name for ONNX models. */
const PLATFORM = "onnxruntime_onnx";
export const V2_EXTENSIONS = ["binary_tensor_data"];
/**
 * Upper bound on the JSON text of one FP32 value (`0.40784313725490196,`): infer bodies may be this much per
 * input element even when that is over --max-body-bytes, so JSON tensors of every served model fit.
 */
const JSON_BYTES_PER_VALUE = 24;

const V2ErrorSchema = z.object({ error: z.string() }).openapi("V2Error");
const TensorMetaSchema = z.object({
  name: z.string(),
  datatype: z.string(),
  shape: z.array(z.number().int()).openapi({ description: "-1 for a dimension that varies" }),
});
const ServerMetaSchema = z.object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) })
  .openapi("V2ServerMetadata");
const ModelMetaSchema = z.object({
  name: z.string(),
  versions: z.array(z.string()),
  platform: z.string(),
  inputs: z.array(TensorMetaSchema),
  outputs: z.array(TensorMetaSchema),
}).openapi("V2ModelMetadata");
const VersionParamSchema = ModelNameParamSchema.extend({
  version: z.string().openapi({ param: { name: "version", in: "path" }, example: "1" }),
});

const error = (description: string) => json(V2ErrorSchema, description);
const ok = (description: string) => ({ 200: { description } });

const modelPath = (suffix: string, versioned: boolean) =>
  `${V2_PREFIX}/models/{name}${versioned ? "/versions/{version}" : ""}${suffix}`;
/** OpenAPI's `{param}` path as Hono's `:param`. */
const honoPath = (path: string) => path.replace(/\{(\w+)\}/g, ":$1");
const params = (versioned: boolean) => (versioned ? VersionParamSchema : ModelNameParamSchema);

const serverMeta = (path: string) =>
  createRoute({
    method: "get",
    path,
    tags: [TAG],
    summary: "Server metadata: name, version, extensions",
    responses: {
      200: { description: "Metadata", content: { "application/json": { schema: ServerMetaSchema } } },
    },
  });
const live = createRoute({
  method: "get",
  path: `${V2_PREFIX}/health/live`,
  tags: [TAG],
  summary: "Server live: 200 while the process answers",
  responses: ok("Live"),
});
const ready = createRoute({
  method: "get",
  path: `${V2_PREFIX}/health/ready`,
  tags: [TAG],
  summary: "Server ready: 200 once every model is loaded, else 400",
  responses: { ...ok("Ready"), 400: error("Models still loading") },
});
const modelMeta = (versioned: boolean) =>
  createRoute({
    method: "get",
    path: modelPath("", versioned),
    tags: [TAG],
    summary: "Model metadata: versions, platform, input and output tensors",
    request: { params: params(versioned) },
    responses: {
      200: { description: "Metadata", content: { "application/json": { schema: ModelMetaSchema } } },
      400: error("Bad model name"),
      404: error("Unknown model, or a version that is not the active one"),
    },
  });
const modelReady = (versioned: boolean) =>
  createRoute({
    method: "get",
    path: modelPath("/ready", versioned),
    tags: [TAG],
    summary: "Model ready: 200 when the model (version) is loaded",
    request: { params: params(versioned) },
    responses: { ...ok("Ready"), 400: error("Bad model name"), 404: error("Not served") },
  });
const infer = (versioned: boolean) =>
  createRoute({
    method: "post",
    path: modelPath("/infer", versioned),
    tags: [TAG],
    summary: "Inference on the model's raw tensors (JSON, or the binary tensor data extension)",
    description: "Input: the model's FP32 NCHW input [1, 3, S, S] (row-major `data`, flat or nested), or a " +
      "`BYTES` input of shape [1] holding an encoded JPEG/PNG/WebP (base64 in JSON), which is letterboxed to " +
      "S as the detect route does (the geometry comes back in the response's `parameters`). Output: the " +
      "model's raw (1, N, 5+nc) output. With the binary extension the body is `" + BINARY_HEADER +
      "` bytes " +
      "of JSON followed by the raw little-endian data; ask for binary outputs with `parameters." +
      "binary_data_output` or per output `parameters.binary_data`.",
    request: {
      params: params(versioned),
      body: {
        content: {
          "application/json": { schema: InferRequestSchema },
          "application/octet-stream": {
            schema: z.string().openapi({ format: "binary", description: "JSON header, then binary data" }),
          },
        },
      },
    },
    responses: {
      200: {
        description: "Outputs",
        content: {
          "application/json": { schema: InferResponseSchema },
          "application/octet-stream": {
            schema: z.string().openapi({ format: "binary", description: "JSON header, then binary outputs" }),
          },
        },
      },
      400: error("Bad JSON, input name, datatype, shape or data; unknown output"),
      401: error("With --detect-needs-key: no or a wrong Bearer key"),
      404: error("Unknown model, or a version that is not the active one"),
      413: error("Body over the size limit, or image over the pixel limit"),
      415: error("A BYTES input that is not a JPEG, PNG or WebP"),
      422: error("A BYTES input that is not a decodable image"),
      500: error("Internal error"),
      503: error("Models still loading"),
    },
  });

/** The served version of `name`, leased; 404 for an unknown model or a version other than the active one. */
async function leaseVersion(ctx: RouteContext, name: string, version: string | undefined): Promise<Lease> {
  const lease = ctx.pool.lease(name);
  if (!lease) {
    if (!ctx.isReady()) throw new ApiError(503, "not_ready", "Models are still loading; retry shortly");
    throw new ApiError(404, "model_not_found", `No model named '${name}' is served`);
  }
  const active = String(lease.model.ref.version);
  if (version !== undefined && version !== active) {
    await lease.release();
    throw new ApiError(
      404,
      "version_not_found",
      `Model '${name}' serves version ${active}, not '${version}'`,
    );
  }
  return lease;
}

function describe(lease: Lease): z.infer<typeof ModelMetaSchema> {
  const { ref, spec } = lease.model;
  return {
    name: ref.name,
    versions: [String(ref.version)],
    platform: PLATFORM,
    inputs: [{ name: spec.inputName, datatype: "FP32", shape: [1, 3, spec.imgsz, spec.imgsz] }],
    // N (rows) follows from the export's strides and anchors, which serving does not keep
    outputs: [{ name: spec.outputName, datatype: "FP32", shape: [1, -1, spec.nc + 5] }],
  };
}

const bad = (message: string) => new ApiError(400, "bad_request", message);

/** The model's input tensor from the request's one input, and the parameters that describe how it was made. */
async function inputTensor(
  ctx: RouteContext,
  lease: Lease,
  input: InferInput,
  binary: Uint8Array | undefined,
): Promise<{ data: Float32Array; parameters?: Record<string, number>; frame?: EncodedFrame }> {
  const { imgsz } = lease.model.spec;
  if (input.datatype === "FP32") {
    const want = [1, 3, imgsz, imgsz];
    if (input.shape.join() !== want.join()) {
      throw bad(`Input '${input.name}' has shape [${input.shape}]; this model takes [${want}]`);
    }
    return { data: fp32Values(input, binary) };
  }
  if (input.datatype === "BYTES") {
    if (input.shape.join() !== "1") throw bad(`BYTES input '${input.name}' must have shape [1]: one image`);
    const bytes = bytesValues(input, binary)[0];
    const image = await decodeImage(bytes, ctx.maxPixels);
    const { tensor, box } = letterbox(image, imgsz);
    return {
      data: tensor,
      frame: { bytes, width: image.width, height: image.height, box },
      parameters: {
        image_width: image.width,
        image_height: image.height,
        letterbox_width: box.width,
        letterbox_height: box.height,
        letterbox_left: box.left,
        letterbox_top: box.top,
      },
    };
  }
  throw bad(
    `Input '${input.name}' has datatype ${input.datatype}; send FP32 (the tensor) or BYTES (an image)`,
  );
}

/** A BYTES input: the image as sent, its size and where the letterbox put it. */
interface EncodedFrame {
  bytes: Uint8Array;
  width: number;
  height: number;
  box: Letterbox;
}

/**
 * The capture offer for a v2 infer on an encoded image. The answer is the raw tensor, so the predictions a
 * capture records are the native route's defaults (conf, NMS), computed only when the model captures.
 */
function v2CaptureOffer(c: Context, lease: Lease, frame: EncodedFrame, output: Float32Array): CaptureOffer {
  const { ref, spec } = lease.model;
  return {
    model: ref.name,
    version: ref.version,
    image: frame.bytes,
    width: frame.width,
    height: frame.height,
    predictions: () =>
      postprocess(output, spec.nc, DEFAULT_DETECT_OPTIONS, frame.box, frame.width, frame.height).map((d) => ({
        class_id: d.classId,
        class_name: spec.names[d.classId],
        confidence: d.confidence,
        box: d.box,
      })),
    source: captureSource(c, "v2"),
    time: new Date(),
  };
}

async function runInfer(c: Context, ctx: RouteContext, name: string, version?: string): Promise<Response> {
  // An unknown model or version is refused before the body is read; the lease, which pins a version (a swap
  // waits for it), is taken only once the body is in, so a slow upload holds no model.
  await (await leaseVersion(ctx, name, version)).release();
  const requestBody = new Uint8Array(await c.req.arrayBuffer());
  const lease = await leaseVersion(ctx, name, version);
  try {
    const { request, binary } = parseInferBody(requestBody, c.req.header(BINARY_HEADER));
    const { spec, ref } = lease.model;
    if (request.inputs.length !== 1 || request.inputs[0].name !== spec.inputName) {
      throw bad(
        `This model takes one input, '${spec.inputName}'; got [${request.inputs.map((i) => `'${i.name}'`)}]`,
      );
    }
    const input = request.inputs[0];
    const { data, parameters, frame } = await inputTensor(ctx, lease, input, binary.get(input.name));
    const wanted = request.outputs ?? [{ name: spec.outputName }];
    const unknown = wanted.filter((o) => o.name !== spec.outputName);
    if (unknown.length) throw bad(`No output '${unknown[0].name}'; this model has '${spec.outputName}'`);
    const start = performance.now();
    const output = await lease.model.infer(data);
    ctx.metrics.inference.observe((performance.now() - start) / 1000, { model: name });
    ctx.serveBudget?.observe(performance.now() - start);
    ctx.fleet?.observeDetect(name, lease.model.ref.version, performance.now() - start);
    if (frame) offerCapture(ctx, v2CaptureOffer(c, lease, frame, output.data));
    const allBinary = request.parameters?.binary_data_output === true;
    const outputs: OutputTensor[] = wanted.map((o) => ({
      name: o.name,
      shape: output.dims,
      data: output.data,
      binary: (o.parameters?.binary_data ?? allBinary) === true,
    }));
    const { body, headerLength } = encodeInferResponse({
      model_name: ref.name,
      model_version: String(ref.version),
      ...(request.id !== undefined ? { id: request.id } : {}),
      ...(parameters ? { parameters } : {}),
    }, outputs);
    return new Response(body, {
      status: 200,
      headers: headerLength === null
        ? { "content-type": "application/json" }
        : { "content-type": "application/octet-stream", [BINARY_HEADER]: String(headerLength) },
    });
  } finally {
    await lease.release();
  }
}

/** `{"error": "<message>"}` for every error under /v2; registered ahead of other middleware in createApp. */
export const v2Errors = reshapeErrors((_status, message) => ({ error: message }));

export const kserveV2Routes: RouteModule = (app, ctx) => {
  const largestInput = () => Math.max(0, ...ctx.pool.list().map((m) => 3 * m.spec.imgsz ** 2));
  for (const path of [false, true].map((versioned) => honoPath(modelPath("/infer", versioned)))) {
    app.on("POST", path, limitInflight(ctx.detectInflight));
    app.use(path, requireDetectKey(ctx));
    // Per request: the largest served model's input changes as models are swapped.
    app.use(
      path,
      (c, next) => limitBody(Math.max(ctx.maxBodyBytes, JSON_BYTES_PER_VALUE * largestInput()))(c, next),
    );
  }
  for (const path of [V2_PREFIX, `${V2_PREFIX}/`]) {
    app.openapi(
      serverMeta(path),
      (c) => c.json({ name: "kestrel", version: OPENAPI_INFO.version, extensions: V2_EXTENSIONS }, 200),
    );
  }
  app.openapi(live, (c) => c.body(null, 200));
  app.openapi(ready, (c) => {
    if (!ctx.isReady()) throw new ApiError(400, "not_ready", "Models are still loading");
    return c.body(null, 200);
  });
  for (const versioned of [false, true]) {
    const version = (c: Context) => (versioned ? c.req.param("version") : undefined);
    app.openapi(modelMeta(versioned), async (c) => {
      const lease = await leaseVersion(ctx, c.req.param("name")!, version(c));
      await lease.release();
      return c.json(describe(lease), 200);
    });
    app.openapi(modelReady(versioned), async (c) => {
      await (await leaseVersion(ctx, c.req.param("name")!, version(c))).release();
      return c.body(null, 200);
    });
    // Registered for the document only: the handler parses the body itself (JSON or binary), so that every
    // bad request is a 400 with the spec's error shape rather than a validation error.
    const route = infer(versioned);
    app.openAPIRegistry.registerPath(route);
    app.post(honoPath(route.path), (c) => runInfer(c, ctx, c.req.param("name")!, version(c)));
  }
};

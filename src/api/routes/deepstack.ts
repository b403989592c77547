/**
 * The DeepStack / CodeProject.AI detection API, so NVRs and home-automation systems that speak it (Frigate's
 * `deepstack` detector, Blue Iris, Agent DVR, Home Assistant integrations) use Kestrel unchanged:
 * `POST /v1/vision/detection` (the `--deepstack-model`, else the first served model), `POST
 * /v1/vision/custom/{model}` and `POST /v1/vision/custom/list`. Detection runs the same path as the native route
 * (api/detect_run.ts); only the request form and the answer differ.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { DetectResult } from "../../serving/detector.ts";
import { DEFAULT_DETECT_OPTIONS } from "../../serving/postprocess.ts";
import type { RouteContext, RouteModule } from "../app.ts";
import { bearerKey, checkDetectKey } from "../detect_key.ts";
import { captureSource } from "../capture_source.ts";
import { detectOnModel } from "../detect_run.ts";
import { limitBody } from "../middleware/body_limit.ts";
import { limitInflight } from "../middleware/inflight.ts";
import { ApiError } from "../errors.ts";
import { reshapeErrors } from "../foreign_errors.ts";
import { json } from "../openapi_responses.ts";
import { ModelNameParamSchema } from "../schemas.ts";

export const DEEPSTACK_PREFIX = "/v1/vision";
/** DeepStack's and CodeProject.AI's default `min_confidence`. */
export const DEEPSTACK_MIN_CONFIDENCE = 0.45;
const TAG = "deepstack";

/** Every error under /v1/vision: clients call `.json()` on any answer and look at `success`. */
export const DeepStackErrorSchema = z.object({
  success: z.literal(false),
  error: z.string(),
  code: z.number().int().openapi({ description: "The HTTP status again" }),
}).openapi("DeepStackError");

export const DeepStackDetectionSchema = z.object({
  success: z.literal(true),
  predictions: z.array(z.object({
    label: z.string().openapi({ description: "The model's class name" }),
    confidence: z.number(),
    x_min: z.number().int(),
    y_min: z.number().int(),
    x_max: z.number().int(),
    y_max: z.number().int(),
  })).openapi({ description: "Original-image pixels; highest confidence first" }),
  count: z.number().int(),
  inferenceMs: z.number().int(),
  processMs: z.number().int(),
  code: z.literal(200),
}).openapi("DeepStackDetection");

type DeepStackDetection = z.infer<typeof DeepStackDetectionSchema>;

const ModelListSchema = z.object({ success: z.literal(true), models: z.array(z.string()) })
  .openapi("DeepStackModelList");

const FormSchema = z.object({
  image: z.instanceof(File).openapi({ type: "string", format: "binary" }),
  min_confidence: z.coerce.number().min(0).max(1).optional()
    .openapi({ description: `Keep predictions above this confidence (default ${DEEPSTACK_MIN_CONFIDENCE})` }),
  api_key: z.string().optional()
    .openapi({ description: "The server's API key; needed only with --detect-needs-key (Bearer works too)" }),
});

const ListFormSchema = z.object({ api_key: z.string().optional() });

const error = (description: string) => json(DeepStackErrorSchema, description);
const detectionResponses = {
  200: { description: "Detections", content: { "application/json": { schema: DeepStackDetectionSchema } } },
  401: error("With --detect-needs-key: no or a wrong key"),
  404: error("Unknown model"),
  413: error("Body over the size limit, or image over the pixel limit"),
  415: error("Not multipart/form-data, or the image is not a JPEG, PNG or WebP"),
  422: error("No `image` field, a bad `min_confidence`, or an undecodable image"),
  500: error("Internal error (still JSON: clients parse every answer)"),
  503: error("Models still loading"),
};
const body = { required: false, content: { "multipart/form-data": { schema: FormSchema } } };

const detection = createRoute({
  method: "post",
  path: `${DEEPSTACK_PREFIX}/detection`,
  tags: [TAG],
  summary: "DeepStack object detection on the default detection model (--deepstack-model)",
  request: { body },
  responses: detectionResponses,
});

const list = createRoute({
  method: "post",
  path: `${DEEPSTACK_PREFIX}/custom/list`,
  tags: [TAG],
  summary: "DeepStack custom model list: the served models' names",
  request: {
    body: {
      required: false,
      description: "Clients send their `api_key` form field; the list needs no key",
      content: Object.fromEntries(
        ["multipart/form-data", "application/x-www-form-urlencoded"].map((
          t,
        ) => [t, { schema: ListFormSchema }]),
      ),
    },
  },
  responses: {
    200: { description: "Models", content: { "application/json": { schema: ModelListSchema } } },
    503: error("Models still loading"),
  },
});

const custom = createRoute({
  method: "post",
  path: `${DEEPSTACK_PREFIX}/custom/{name}`,
  tags: [TAG],
  summary: "DeepStack custom model detection on a named model",
  request: { params: ModelNameParamSchema, body },
  responses: { ...detectionResponses, 400: error("Bad model name") },
});

/** Runs detection for a DeepStack request on model `name`; the answer in DeepStack's shape. */
async function deepstackDetect(c: Context, ctx: RouteContext, name: string): Promise<DeepStackDetection> {
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "multipart/form-data") {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `Content-Type '${type || "(none)"}' is not accepted; send multipart/form-data with the field 'image'`,
    );
  }
  const form = (c.req.valid as (t: "form") => z.infer<typeof FormSchema>)("form");
  await checkDetectKey(ctx, [bearerKey(c), form.api_key]);
  const conf = form.min_confidence ?? DEEPSTACK_MIN_CONFIDENCE;
  const result = await detectOnModel(
    ctx,
    name,
    { ...DEFAULT_DETECT_OPTIONS, conf },
    async () => new Uint8Array(await form.image.arrayBuffer()),
    captureSource(c, "deepstack"),
  );
  return deepstackAnswer(result);
}

/** DeepStack's answer for one detect result, best first (Frigate stops at the first one under its threshold). */
export function deepstackAnswer(result: DetectResult): DeepStackDetection {
  const predictions = [...result.detections].sort((a, b) => b.confidence - a.confidence).map((d) => ({
    label: d.class_name,
    confidence: d.confidence,
    x_min: d.box.x1,
    y_min: d.box.y1,
    x_max: d.box.x2,
    y_max: d.box.y2,
  }));
  return {
    success: true,
    predictions,
    count: predictions.length,
    inferenceMs: Math.round(result.timings_ms.inference),
    processMs: Math.round(result.timings_ms.total),
    code: 200,
  };
}

/** `{"success": false, "error", "code"}`, DeepStack's error body; registered ahead of readiness in createApp. */
export const deepstackErrors = reshapeErrors((status, message) => ({
  success: false,
  error: message,
  code: status,
}));

export const deepstackRoutes: RouteModule = (app, ctx) => {
  app.on(
    "POST",
    [`${DEEPSTACK_PREFIX}/detection`, `${DEEPSTACK_PREFIX}/custom/:name`],
    limitInflight(ctx.detectInflight),
  );
  app.use(`${DEEPSTACK_PREFIX}/*`, limitBody(ctx.maxBodyBytes));
  app.openapi(detection, async (c) => {
    const name = ctx.deepstackModel ?? ctx.pool.list()[0]?.ref.name;
    if (!name) throw new ApiError(404, "model_not_found", "No model is served");
    return c.json(await deepstackDetect(c, ctx, name), 200);
  });
  // Before custom/{name}: "list" is the listing, not a model.
  app.openapi(
    list,
    (c) => c.json({ success: true as const, models: ctx.pool.list().map((m) => m.ref.name) }, 200),
  );
  app.openapi(custom, async (c) => c.json(await deepstackDetect(c, ctx, c.req.valid("param").name), 200));
};

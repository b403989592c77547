import { z } from "@hono/zod-openapi";

/**
 * A schema another layer defines (jobs, fleet, registry, capture), named for the OpenAPI document. Those layers
 * build their schemas with plain zod, and @hono/zod-openapi's `.openapi` exists only on schemas created after it
 * was first imported: a process that loads such a layer before the API (the fleet tests did) would fail at
 * `.openapi`. A clone made here is created after, whatever the import order.
 */
export function named<T extends z.ZodType>(schema: T, name: string): T {
  return schema.clone().openapi(name);
}

/** Every API error: `{"error": {"code", "message"}}`. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().openapi({ example: "undecodable_image" }),
    message: z.string(),
  }),
}).openapi("Error");

export const ModelRefSchema = z.object({
  name: z.string().openapi({ example: "yolov5n" }),
  version: z.number().int().positive(),
}).openapi("ModelRef");

export const BoxSchema = z.object({ x1: z.number(), y1: z.number(), x2: z.number(), y2: z.number() })
  .openapi("Box", { description: "Original-image pixels, clipped and rounded as YOLOv5's detect.py" });

/** One image's detections: the HTTP detect response and each line of `deno task detect`. */
export const DetectResultSchema = z.object({
  file: z.string().optional().openapi({ description: "Input path (CLI) or multipart file name" }),
  model: ModelRefSchema,
  image: z.object({ width: z.number().int(), height: z.number().int() }),
  detections: z.array(z.object({
    class_id: z.number().int(),
    class_name: z.string(),
    confidence: z.number(),
    box: BoxSchema,
  })),
  timings_ms: z.object({
    decode: z.number(),
    preprocess: z.number(),
    inference: z.number(),
    postprocess: z.number(),
    total: z.number(),
  }),
}).openapi("DetectResult");

export const ModelSchema = z.object({
  name: z.string(),
  version: z.number().int(),
  backend: z.string().openapi({ example: "native" }),
  imgsz: z.number().int(),
  stride: z.number().int(),
  nc: z.number().int(),
  names: z.array(z.string()),
}).openapi("Model");

export const ModelListSchema = z.object({
  backend: z.string(),
  /** Why the backend was chosen and how its startup self-test went ("" when the app was given none). */
  backend_reason: z.string(),
  models: z.array(ModelSchema),
}).openapi("ModelList");

const unit = (what: string) => z.coerce.number().min(0).max(1).optional().openapi({ description: what });

export const DetectQuerySchema = z.object({
  conf: unit("Confidence threshold (default 0.25)"),
  iou: unit("NMS IoU threshold (default 0.45)"),
  max_det: z.coerce.number().int().min(1).max(10000).optional().openapi({ description: "Default 300" }),
  classes: z.string().regex(/^\d+(,\d+)*$/, "a comma-separated list of class ids").optional()
    .openapi({ description: "Keep only these class ids, e.g. 0,2" }),
});

export const Base64ImageSchema = z.object({
  image: z.string().min(1).openapi({ description: "The image file, base64-encoded" }),
}).openapi("Base64Image");

export const ModelNameParamSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "a model name ([A-Za-z0-9._-], up to 64)")
    .openapi({ param: { name: "name", in: "path" }, example: "yolov5n" }),
});

/**
 * The site loop's capture API: a model's capture policy (`/v1/models/{name}/capture`) and the captured frames
 * (`/v1/captures`): list newest first, read, label, reject, delete, and export the labelled ones as a YOLO zip.
 * Mutations need the key as every other write does, and so do reads of frames (list, one, image, summary,
 * export): they are pictures of the site. Cross-site writes are refused app-wide.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { captureDatasetZip } from "../../capture/dataset.ts";
import { defaultSplit, labelProblems } from "../../capture/labels.ts";
import { CapturePolicySchema } from "../../capture/policy.ts";
import type { CaptureService } from "../../capture/service.ts";
import { CAPTURE_ID_PATTERN } from "../../capture/store.ts";
import type { CaptureMeta } from "../../capture/types.ts";
import type { RouteContext, RouteModule } from "../app.ts";
import { ApiError, errorBody } from "../errors.ts";
import { requireMutationAuth } from "../middleware/auth.ts";
import { BoxSchema, ErrorSchema, ModelNameParamSchema, named } from "../schemas.ts";

const TAG = "captures";
/** Largest labels body: thousands of boxes fit in a few hundred KiB. */
const MAX_LABELS_BODY_BYTES = 1 << 20;
const DEFAULT_PAGE = 50, MAX_PAGE = 500;
const MIME = { jpeg: "image/jpeg", png: "image/png", webp: "image/webp" } as const;

const PolicySchema = named(CapturePolicySchema, "CapturePolicy");
const StatusSchema = z.enum(["new", "labelled", "rejected"]);
const SplitSchema = z.enum(["train", "val"]);
const LabelSchema = z.object({ class_id: z.number().int(), box: BoxSchema });
const CaptureSchema = z.object({
  id: z.string(),
  model: z.string(),
  version: z.number().int(),
  time: z.string(),
  bytes: z.number().int(),
  format: z.enum(["jpeg", "png", "webp"]),
  width: z.number().int(),
  height: z.number().int(),
  source: z.object({
    route: z.enum(["native", "deepstack", "v2"]),
    client: z.string().nullable(),
    camera: z.string().nullable().openapi({ description: "The `x-camera-id` header, when sent" }),
  }),
  predictions: z.array(z.object({
    class_id: z.number().int(),
    class_name: z.string(),
    confidence: z.number(),
    box: BoxSchema,
  })),
  status: StatusSchema,
  labels: z.array(LabelSchema).nullable(),
  split: SplitSchema.nullable(),
  reject_reason: z.string().optional(),
}).openapi("Capture");
const PageSchema = z.object({ captures: z.array(CaptureSchema), next_cursor: z.string().nullable() })
  .openapi("CapturePage");
const SummarySchema = z.object({
  new: z.number().int(),
  rejected: z.number().int(),
  labelled: z.object({ train: z.number().int(), val: z.number().int() }),
  bytes: z.number().int(),
}).openapi("CaptureSummary");
const IdParamSchema = z.object({
  id: z.string().regex(CAPTURE_ID_PATTERN, "a capture id").openapi({ param: { name: "id", in: "path" } }),
});
/** A model name in the query string (the path parameter's pattern, documented as a query parameter). */
const modelQuery = () => ModelNameParamSchema.shape.name.openapi({ param: { name: "model", in: "query" } });
const ModelQuerySchema = z.object({ model: modelQuery() });
const ListQuerySchema = z.object({
  model: modelQuery().optional(),
  status: StatusSchema.optional(),
  split: SplitSchema.optional(),
  camera: z.string().max(128).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).optional()
    .openapi({ description: `Default ${DEFAULT_PAGE}` }),
  cursor: z.string().regex(CAPTURE_ID_PATTERN, "a next_cursor value").optional(),
});
const LabelsBodySchema = z.object({
  labels: z.array(LabelSchema).max(10_000).openapi({
    description: "Boxes in original-image pixels; an empty list labels a frame with no objects",
  }),
  split: SplitSchema.optional().openapi({
    description: "Default: a stable hash of the id sends 1 in 10 to val",
  }),
}).openapi("CaptureLabels");

const RejectBodySchema = z.object({
  reason: z.string().max(500).optional().openapi({ description: "Why, for whoever reviews next" }),
}).openapi("CaptureReject");

const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const error = (description: string) => json(ErrorSchema, description);
const authErrors = {
  401: error("Missing or wrong API key"),
  403: error("No API key configured and the client is not on loopback"),
};

/** The served model's classes; 404 when `name` is not served. */
function modelClasses(ctx: RouteContext, name: string): { nc: number; names: string[] } {
  const served = ctx.pool.get(name);
  if (!served) throw new ApiError(404, "model_not_found", `No model named '${name}' is served`);
  return served.spec;
}

function capture(service: CaptureService, id: string): CaptureMeta {
  const meta = service.store.get(id);
  if (!meta) throw new ApiError(404, "capture_not_found", `No capture '${id}'`);
  return meta;
}

/** Counts of `model`'s captures by status (labelled ones by split), for the review page's progress. */
function summary(service: CaptureService, model: string): z.infer<typeof SummarySchema> {
  const out = { new: 0, rejected: 0, labelled: { train: 0, val: 0 }, bytes: service.store.bytes(model) };
  for (const meta of service.store.all({ model })) {
    if (meta.status === "labelled") out.labelled[meta.split ?? "train"]++;
    else out[meta.status]++;
  }
  return out;
}

export const captureRoutes: RouteModule = (app, ctx) => {
  const service = ctx.capture;
  if (!service) return;
  // Also on reads of frames: they are pictures of the site and their meta names clients, unlike the open model
  // and job listings.
  const auth = requireMutationAuth({ apiKey: ctx.apiKey });
  const small: MiddlewareHandler = bodyLimit({
    maxSize: MAX_LABELS_BODY_BYTES,
    onError: (c) =>
      c.json(errorBody("payload_too_large", `Body is over the limit of ${MAX_LABELS_BODY_BYTES} bytes`), 413),
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/models/{name}/capture",
      tags: [TAG],
      summary: "The model's capture policy (default: off)",
      request: { params: ModelNameParamSchema },
      responses: { 200: json(PolicySchema, "The policy"), 404: error("Unknown model") },
    }),
    (c) => {
      const { name } = c.req.valid("param");
      modelClasses(ctx, name);
      return c.json(service.policies.get(name), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/models/{name}/capture",
      tags: [TAG],
      summary: "Set the model's capture policy (keys left out take their defaults)",
      description:
        "`all` keeps every served frame, `sample` a random share (`rate`), `uncertain` frames with " +
        "a detection whose confidence lies in [low, high); `classes` narrows any mode to frames with a " +
        "detection of those classes. Kept frames are written after the answer; when `max_bytes` is reached " +
        "the oldest `new` captures (then `rejected` ones) are evicted, labelled ones never.",
      middleware: [auth, small] as const,
      security: [{ bearerAuth: [] }],
      request: {
        params: ModelNameParamSchema,
        body: { required: true, content: { "application/json": { schema: PolicySchema } } },
      },
      responses: {
        200: json(PolicySchema, "The saved policy"),
        404: error("Unknown model"),
        422: error("Invalid policy"),
        ...authErrors,
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      modelClasses(ctx, name);
      const policy = c.req.valid("json");
      await service.policies.set(name, policy);
      return c.json(policy, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/captures",
      tags: [TAG],
      middleware: [auth] as const,
      security: [{ bearerAuth: [] }],
      summary: "Captured frames, newest first, a page at a time",
      request: { query: ListQuerySchema },
      responses: {
        ...authErrors,
        200: json(PageSchema, "A page; pass next_cursor as cursor for the next one"),
      },
    }),
    (c) => {
      const { limit, cursor, ...filter } = c.req.valid("query");
      return c.json(service.store.list(filter, limit ?? DEFAULT_PAGE, cursor), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/captures/summary",
      tags: [TAG],
      middleware: [auth] as const,
      security: [{ bearerAuth: [] }],
      summary: "How many of the model's captures are new, rejected, labelled (per split), and their bytes",
      request: { query: ModelQuerySchema },
      responses: { ...authErrors, 200: json(SummarySchema, "Counts") },
    }),
    (c) => c.json(summary(service, c.req.valid("query").model), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/captures/export",
      tags: [TAG],
      middleware: [auth] as const,
      security: [{ bearerAuth: [] }],
      summary: "The model's labelled captures as a YOLO-layout zip (images/{train,val}, labels/{train,val})",
      request: { query: ModelQuerySchema },
      responses: {
        ...authErrors,
        200: {
          description: "A zip with data.yaml, as ultralytics train.py reads it",
          content: { "application/zip": { schema: z.string().openapi({ format: "binary" }) } },
        },
        404: error("Unknown model"),
      },
    }),
    (c) => {
      const { model } = c.req.valid("query");
      const { names } = modelClasses(ctx, model);
      return c.body(captureDatasetZip(service.store, model, names), 200, {
        "content-type": "application/zip",
        "content-disposition": `attachment; filename="${model}-captures.zip"`,
      });
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/captures/{id}",
      tags: [TAG],
      middleware: [auth] as const,
      security: [{ bearerAuth: [] }],
      summary: "One capture: source, predictions, status, labels",
      request: { params: IdParamSchema },
      responses: { ...authErrors, 200: json(CaptureSchema, "The capture"), 404: error("Unknown capture") },
    }),
    (c) => c.json(capture(service, c.req.valid("param").id), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/captures/{id}/image",
      tags: [TAG],
      middleware: [auth] as const,
      security: [{ bearerAuth: [] }],
      summary: "The captured image, the bytes as the detect request sent them",
      request: { params: IdParamSchema },
      responses: {
        ...authErrors,
        200: {
          description: "The image",
          content: Object.fromEntries(
            Object.values(MIME).map((t) => [t, { schema: z.string().openapi({ format: "binary" }) }]),
          ),
        },
        404: error("Unknown capture"),
      },
    }),
    async (c) => {
      const meta = capture(service, c.req.valid("param").id);
      const bytes = await service.store.image(meta.id);
      return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
        "content-type": MIME[meta.format],
        "cache-control": "private, max-age=86400, immutable",
      });
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/v1/captures/{id}/labels",
      tags: [TAG],
      summary: "Label a capture (its status becomes `labelled`)",
      middleware: [auth, small] as const,
      security: [{ bearerAuth: [] }],
      request: {
        params: IdParamSchema,
        body: { required: true, content: { "application/json": { schema: LabelsBodySchema } } },
      },
      responses: {
        200: json(CaptureSchema, "The labelled capture"),
        400: error("A class the model does not have, or a box outside the image or empty (`invalid_labels`)"),
        404: error("Unknown capture, or its model is no longer served"),
        422: error("Malformed body"),
        ...authErrors,
      },
    }),
    async (c) => {
      const meta = capture(service, c.req.valid("param").id);
      const body = c.req.valid("json");
      const problems = labelProblems(body.labels, meta, modelClasses(ctx, meta.model).nc);
      if (problems.length) throw new ApiError(400, "invalid_labels", problems.join("; "));
      const updated = await service.store.update(meta.id, (m) => ({
        ...m,
        status: "labelled",
        labels: body.labels,
        split: body.split ?? m.split ?? defaultSplit(m.id),
      }));
      if (!updated) throw new ApiError(404, "capture_not_found", `No capture '${meta.id}'`);
      return c.json(updated, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/captures/{id}/reject",
      tags: [TAG],
      summary: "Reject a capture (not worth training on); once no new capture is left, it may be evicted",
      middleware: [auth, small] as const,
      security: [{ bearerAuth: [] }],
      request: {
        params: IdParamSchema,
        body: { required: false, content: { "application/json": { schema: RejectBodySchema } } },
      },
      responses: {
        200: json(CaptureSchema, "The rejected capture"),
        404: error("Unknown capture"),
        422: error("Malformed body"),
        ...authErrors,
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const hasBody = (c.req.header("content-type") ?? "").startsWith("application/json");
      const reason = hasBody ? c.req.valid("json").reason : undefined;
      const updated = await service.store.update(id, (m) => ({
        ...m,
        status: "rejected",
        ...(reason ? { reject_reason: reason } : {}),
      }));
      if (!updated) throw new ApiError(404, "capture_not_found", `No capture '${id}'`);
      return c.json(updated, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/v1/captures/{id}",
      tags: [TAG],
      summary: "Delete a capture and its image",
      middleware: [auth] as const,
      security: [{ bearerAuth: [] }],
      request: { params: IdParamSchema },
      responses: { 204: { description: "Deleted" }, 404: error("Unknown capture"), ...authErrors },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      if (!(await service.store.remove(id))) {
        throw new ApiError(404, "capture_not_found", `No capture '${id}'`);
      }
      return c.body(null, 204);
    },
  );
};

/**
 * `/v1/models/{name}/regression-set`: the images a fine-tune of the model must not get worse on (the forgetting
 * guard, api/forgetting_guard.ts). PUT an archive in YOLO layout (a .zip, .tar.gz or .tar as the raw body), or
 * JSON `{"source": "captures"}` to snapshot the model's labelled val captures; `max_regression` (query or JSON,
 * default 0.01) is the mAP@0.5:0.95 a result may lose there and still be activated under `if_better`.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { dirname, join } from "node:path";
import { writeCaptureDataset } from "../../capture/dataset.ts";
import { DEFAULT_MAX_REGRESSION, RegressionSetMetaSchema } from "../../capture/regression_set.ts";
import type { CaptureService } from "../../capture/service.ts";
import { DEFAULT_ARCHIVE_LIMITS, extractArchive } from "../../train/data/archive.ts";
import { loadDataset } from "../../train/data/dataset.ts";
import { DatasetError } from "../../train/data/problems.ts";
import type { RouteContext, RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import { requireMutationAuth } from "../middleware/auth.ts";
import { mediaType } from "../middleware/media_type.ts";
import { ErrorSchema, ModelNameParamSchema, named } from "../schemas.ts";

const TAG = "captures";
const ARCHIVE_TYPES = [
  "application/zip",
  "application/gzip",
  "application/x-tar",
  "application/octet-stream",
];
const MetaSchema = named(RegressionSetMetaSchema, "RegressionSet");
const MaxRegression = z.number().min(0).max(1).openapi({
  description: `mAP@0.5:0.95 a result may lose on the set (default ${DEFAULT_MAX_REGRESSION})`,
});
const FromCapturesSchema = z.object({
  source: z.literal("captures"),
  max_regression: MaxRegression.optional(),
})
  .openapi("RegressionSetFromCaptures");

const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const error = (description: string) => json(ErrorSchema, description);

function servedModel(ctx: RouteContext, name: string) {
  const served = ctx.pool.get(name);
  if (!served) throw new ApiError(404, "model_not_found", `No model named '${name}' is served`);
  return served.spec;
}

/** Streams the request body to `path`, refusing more than `maxBytes`. */
async function saveBody(c: Context, path: string, maxBytes: number): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true });
  let total = 0;
  try {
    for await (const chunk of c.req.raw.body ?? new ReadableStream()) {
      total += chunk.length;
      if (total > maxBytes) {
        throw new ApiError(413, "payload_too_large", `Regression set is over the limit of ${maxBytes} bytes`);
      }
      for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
    }
  } finally {
    file.close();
  }
}

/** Validates the dataset written in `dir` against the model's classes; returns its image count. */
async function validated(dir: string, nc: number): Promise<number> {
  const set = await loadDataset(dir, { nc });
  return set.train.length + set.val.length;
}

async function replace(c: Context, ctx: RouteContext, capture: CaptureService, name: string) {
  const { nc, names } = servedModel(ctx, name);
  const type = mediaType(c);
  if (type === "application/json") {
    const body = FromCapturesSchema.safeParse(await c.req.json().catch(() => null));
    if (!body.success) {
      throw new ApiError(422, "invalid_body", `body: ${body.error.issues.map((i) => i.message).join("; ")}`);
    }
    return await capture.regression.replace(
      name,
      "captures",
      body.data.max_regression ?? DEFAULT_MAX_REGRESSION,
      async (dir) => {
        const { val } = await writeCaptureDataset(capture.store, name, names, dir, "val");
        if (val === 0) {
          throw new ApiError(400, "no_labelled_captures", `Model '${name}' has no labelled val captures`);
        }
        return await validated(dir, nc);
      },
    );
  }
  if (!ARCHIVE_TYPES.includes(type)) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `Content-Type '${type || "(none)"}' is not accepted; send an archive (${
        ARCHIVE_TYPES.join(", ")
      }) or ` +
        'application/json {"source": "captures"}',
    );
  }
  const query = z.object({ max_regression: z.coerce.number().pipe(MaxRegression).optional() })
    .safeParse(c.req.query());
  if (!query.success) throw new ApiError(400, "invalid_request", "query.max_regression: a number in 0..1");
  return await capture.regression.replace(
    name,
    "upload",
    query.data.max_regression ?? DEFAULT_MAX_REGRESSION,
    async (dir) => {
      const archive = join(dirname(dir), "upload");
      await saveBody(c, archive, ctx.maxDatasetBytes);
      await extractArchive(archive, dir, { ...DEFAULT_ARCHIVE_LIMITS, maxBytes: ctx.maxDatasetBytes });
      return await validated(dir, nc);
    },
  );
}

export const regressionSetRoutes: RouteModule = (app, ctx) => {
  const capture = ctx.capture;
  if (!capture) return;
  const path = "/v1/models/{name}/regression-set";
  const auth = requireMutationAuth({ apiKey: ctx.apiKey });
  const writeErrors = {
    401: error("Missing or wrong API key"),
    403: error("No API key configured and the client is not on loopback"),
    404: error("Unknown model"),
  };

  app.openapi(
    createRoute({
      method: "get",
      path,
      tags: [TAG],
      summary: "The model's regression set (for the forgetting guard)",
      request: { params: ModelNameParamSchema },
      responses: { 200: json(MetaSchema, "The set"), 404: error("Unknown model, or no set") },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      servedModel(ctx, name);
      const set = await capture.regression.get(name);
      if (!set) throw new ApiError(404, "regression_set_not_found", `Model '${name}' has no regression set`);
      const { dir: _dir, ...meta } = set;
      return c.json(meta, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path,
      tags: [TAG],
      summary: "Set the model's regression set: an uploaded YOLO archive, or its labelled val captures",
      description:
        "Under `activate: if_better`, a fine-tune's result is activated only if it also loses at " +
        "most `max_regression` of mAP@0.5:0.95 on this set, scored for the base and the result on the " +
        "serving backend. The old set stays until the new one is complete.",
      middleware: [auth] as const,
      security: [{ bearerAuth: [] }],
      request: {
        params: ModelNameParamSchema,
        query: z.object({
          max_regression: z.string().optional().openapi({ description: "For an archive body" }),
        }),
        body: {
          // Not `required`: zod-openapi then validates the JSON form only when it is what was sent.
          required: false,
          content: {
            "application/json": { schema: FromCapturesSchema },
            ...Object.fromEntries(
              ARCHIVE_TYPES.map((t) => [t, { schema: z.string().openapi({ format: "binary" }) }]),
            ),
          },
        },
      },
      responses: {
        200: json(MetaSchema, "The new set"),
        400: error("Invalid dataset (`invalid_dataset`, with `problems`), or no labelled val captures"),
        413: error("Archive over --max-dataset-bytes"),
        415: error("Neither an archive nor JSON"),
        422: error("Malformed JSON body"),
        ...writeErrors,
      },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      try {
        return c.json(await replace(c, ctx, capture, name), 200);
      } catch (err) {
        if (!(err instanceof DatasetError)) throw err;
        return c.json({
          error: { code: "invalid_dataset", message: err.message, problems: [...err.problems] },
        }, 400);
      }
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path,
      tags: [TAG],
      summary: "Remove the model's regression set (the guard then checks the site val captures only)",
      middleware: [auth] as const,
      security: [{ bearerAuth: [] }],
      request: { params: ModelNameParamSchema },
      responses: { 204: { description: "Removed" }, ...writeErrors },
    }),
    async (c) => {
      const { name } = c.req.valid("param");
      servedModel(ctx, name);
      if (!(await capture.regression.remove(name))) {
        throw new ApiError(404, "regression_set_not_found", `Model '${name}' has no regression set`);
      }
      return c.body(null, 204);
    },
  );
};

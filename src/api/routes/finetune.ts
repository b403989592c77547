/**
 * `POST /v1/models/{name}/finetune`: accept a fine-tune job with its dataset, either multipart (`config` JSON +
 * `dataset`, a .zip or .tar.gz in YOLO layout) or JSON (`config` + `images` with base64 data and label rows).
 * The dataset is unpacked into the job's staging directory and validated against the base model's classes
 * before the job exists, so a bad upload gets one 400 listing every offending file and nothing is queued. An
 * upload takes one of the job service's upload slots before its body is read; with none free, the queue full
 * or the disk nearly full it is refused at once (429 with Retry-After, 507).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import { type FinetuneConfig, parseFinetuneConfig } from "../../config/finetune.ts";
import { JobRequestError } from "../../jobs/errors.ts";
import type { JobService } from "../../jobs/service.ts";
import type { DatasetWriter } from "../../jobs/store.ts";
import { RegistryError } from "../../registry/errors.ts";
import type { Registry } from "../../registry/registry.ts";
import { DEFAULT_ARCHIVE_LIMITS, extractArchive } from "../../train/data/archive.ts";
import { loadDataset } from "../../train/data/dataset.ts";
import { type InlineImage, writeInlineDataset } from "../../train/data/inline.ts";
import { DatasetError } from "../../train/data/problems.ts";
import type { RouteModule } from "../app.ts";
import { ApiError, errorBody } from "../errors.ts";
import { requireMutationAuth } from "../middleware/auth.ts";
import { ErrorSchema, ModelNameParamSchema } from "../schemas.ts";
import { JobResponseSchema, jobsMapped } from "./jobs.ts";

const DatasetErrorSchema = z.object({
  error: z.object({
    code: z.literal("invalid_dataset"),
    message: z.string(),
    problems: z.array(z.object({ file: z.string(), line: z.number().int().optional(), message: z.string() })),
  }),
}).openapi("DatasetError");

const ConfigFieldSchema = z.union([z.string(), z.instanceof(File)]).optional().openapi({
  type: "string",
  description: "The fine-tune config as JSON text (a field or a file); keys left out take their defaults",
});
const MultipartSchema = z.object({
  config: ConfigFieldSchema,
  dataset: z.instanceof(File).openapi({
    type: "string",
    format: "binary",
    description: ".zip or .tar.gz in YOLO layout: images/ + labels/ (optionally val/images + val/labels)",
  }),
}).openapi("FinetuneUpload");
const InlineSchema = z.object({
  config: z.record(z.string(), z.unknown()).optional().openapi({ description: "The fine-tune config" }),
  images: z.array(z.object({
    name: z.string().openapi({ example: "a.jpg" }),
    data: z.string().openapi({ description: "The image file, base64" }),
    // Rows are checked by the dataset validation, which lists every offending image in one 400.
    labels: z.array(z.array(z.number())).openapi({ description: "[[class, cx, cy, w, h], ...] normalised" }),
  })),
}).openapi("FinetuneInline");

const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
const error = (description: string) => json(ErrorSchema, description);

/** The base version (the given one, else the active one) and its class count; 404 when there is none. */
function baseModel(registry: Registry, name: string, version: number | undefined) {
  try {
    const base = version ?? registry.model(name).active;
    if (base === null) throw new RegistryError("not_found", `Model '${name}' has no active version`);
    return registry.version(name, base);
  } catch (err) {
    if (err instanceof RegistryError && err.code === "not_found") {
      throw new ApiError(404, "model_not_found", err.message);
    }
    throw err;
  }
}

function config(raw: unknown): FinetuneConfig {
  try {
    return parseFinetuneConfig(raw, "config");
  } catch (err) {
    throw new ApiError(400, "invalid_config", (err as Error).message);
  }
}

async function configText(field: string | File | undefined): Promise<unknown> {
  if (field === undefined) return {};
  const text = typeof field === "string" ? field : await field.text();
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, "invalid_config", `Field 'config' is not JSON: ${(err as Error).message}`);
  }
}

/** Job service refusals as API errors (jobsMapped); a `busy` one also tells the client when to retry. */
async function admitted<T>(c: Context, work: () => Promise<T>): Promise<T> {
  return await jobsMapped(async () => {
    try {
      return await work();
    } catch (err) {
      if (err instanceof JobRequestError && err.retryAfterSeconds !== undefined) {
        c.header("retry-after", String(err.retryAfterSeconds));
      }
      throw err;
    }
  });
}

/** Holds an upload slot for the whole request, taken before the body is read. */
const uploadSlot = (jobs: JobService) =>
  createMiddleware(async (c, next) => {
    const slot = await admitted(c, () => jobs.reserveUpload());
    try {
      await next();
    } finally {
      slot.release();
    }
  });

/** The config and a writer that unpacks the upload and validates it, for whichever body form was sent. */
async function upload(
  c: Context,
  maxBytes: number,
): Promise<{ raw: unknown; write: (dir: string) => Promise<void> }> {
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type === "multipart/form-data") {
    const form = (c.req.valid as (t: "form") => z.infer<typeof MultipartSchema>)("form");
    const bytes = new Uint8Array(await form.dataset.arrayBuffer());
    const limits = { ...DEFAULT_ARCHIVE_LIMITS, maxBytes };
    return {
      raw: await configText(form.config),
      write: (dir) => extractArchive(bytes, dir, limits).then(() => {}),
    };
  }
  if (type === "application/json") {
    const body = (c.req.valid as (t: "json") => z.infer<typeof InlineSchema>)("json");
    const images = body.images as InlineImage[];
    return { raw: body.config ?? {}, write: (dir) => writeInlineDataset(images, dir).then(() => {}) };
  }
  throw new ApiError(
    415,
    "unsupported_media_type",
    `Content-Type '${type || "(none)"}' is not accepted; send multipart/form-data (fields 'config' and ` +
      '\'dataset\') or application/json ({"config", "images"})',
  );
}

export const finetuneRoutes: RouteModule = (app, ctx) => {
  const { jobs, registry } = ctx;
  if (!jobs || !registry) return;
  const limit = bodyLimit({
    maxSize: ctx.maxDatasetBytes,
    onError: (c) =>
      c.json(
        errorBody("payload_too_large", `Fine-tune upload is over the limit of ${ctx.maxDatasetBytes} bytes`),
        413,
      ),
  });

  const route = createRoute({
    method: "post",
    path: "/v1/models/{name}/finetune",
    summary: "Start a fine-tune of the model on an uploaded dataset (multipart archive or JSON images)",
    description:
      "The dataset is validated before the job is accepted: an unreadable archive, an image that " +
      "does not decode, a malformed label line, a class id >= nc, coordinates outside 0..1 or an empty " +
      "dataset answer 400 with every offending file in `error.problems`. The job trains the base version " +
      "(`base_version`, default the active one); its EMA weights become the model's next version.",
    middleware: [requireMutationAuth({ apiKey: ctx.apiKey }), uploadSlot(jobs), limit] as const,
    security: [{ bearerAuth: [] }],
    request: {
      params: ModelNameParamSchema,
      query: z.object({
        base_version: z.coerce.number().int().positive().optional().openapi({
          description: "Version to start from (default: the active version)",
        }),
      }),
      body: {
        // Not `required`: zod-openapi then validates only the body form that was sent.
        required: false,
        content: {
          "multipart/form-data": { schema: MultipartSchema },
          "application/json": { schema: InlineSchema },
        },
      },
    },
    responses: {
      202: json(JobResponseSchema, "Accepted and queued; follow it at /v1/jobs/{id}"),
      400: json(z.union([DatasetErrorSchema, ErrorSchema]), "Invalid dataset (listing the files) or config"),
      401: error("Missing or wrong API key"),
      403: error("No API key configured and the client is not on loopback"),
      404: error("Unknown model or version"),
      413: error("Upload over --max-dataset-bytes"),
      415: error("Neither multipart/form-data nor application/json"),
      422: error("Missing or mistyped body fields"),
      429: error(
        "Every upload slot is taken (--max-concurrent-uploads) or the queue is full (--max-queued-jobs); " +
          "retry after the Retry-After header's seconds",
      ),
      503: error("Models still loading (`not_ready`) or the server is shutting down (`unavailable`)"),
      507: error("The data dir has less free space than --min-free-bytes"),
    },
  });

  app.openapi(route, async (c) => {
    const { name } = c.req.valid("param");
    const base = baseModel(registry, name, c.req.valid("query").base_version);
    const { raw, write } = await upload(c, ctx.maxDatasetBytes);
    const parsed = config(raw);
    const dataset: DatasetWriter = async (dir) => {
      await write(dir);
      await loadDataset(dir, { nc: base.nc, valFraction: parsed.val_fraction });
    };
    try {
      const job = await admitted(
        c,
        () => jobs.submit({ model: name, baseVersion: base.version, config: parsed, dataset }),
      );
      return c.json(job, 202, { location: `/v1/jobs/${job.id}` });
    } catch (err) {
      if (!(err instanceof DatasetError)) throw err;
      const body = {
        error: { code: "invalid_dataset" as const, message: err.message, problems: [...err.problems] },
      };
      return c.json(body, 400);
    }
  });
};

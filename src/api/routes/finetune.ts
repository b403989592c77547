/**
 * `POST /v1/models/{name}/finetune`: accept a fine-tune job with its dataset, either multipart (`config` JSON +
 * `dataset`, a .zip or .tar.gz in YOLO layout) or JSON (`config` + `images` with base64 data and label rows).
 * The dataset is unpacked into the job's staging directory and validated against the base model's classes
 * before the job exists, so a bad upload gets one 400 listing every offending file and nothing is queued.
 * A multipart archive is streamed to a staging file in the data dir and unpacked from there by a worker, so
 * neither the upload nor what it unpacks to is ever held in memory.
 * An upload takes one of the job service's upload slots before its body is read; with none free, the queue full
 * or the disk nearly full it is refused at once (429 with Retry-After, 507).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { type FinetuneConfig, FinetuneConfigSchema, parseFinetuneConfig } from "../../config/finetune.ts";
import { DEFAULT_MAX_PIXELS } from "../../image/decode.ts";
import type { JobService } from "../../jobs/service.ts";
import type { DatasetWriter } from "../../jobs/store.ts";
import { RegistryError } from "../../registry/errors.ts";
import type { Registry } from "../../registry/registry.ts";
import type { VersionMeta } from "../../registry/store.ts";
import { OnnxModel } from "../../onnx/model.ts";
import {
  adapterTensorLimit,
  checkTrainingMemory,
  estimateTrainingMemory,
  TrainingMemoryError,
} from "../../train/training_memory.ts";
import { DEFAULT_ARCHIVE_LIMITS, extractArchive } from "../../train/data/archive.ts";
import { loadDataset } from "../../train/data/dataset.ts";
import { type InlineImage, writeInlineDataset } from "../../train/data/inline.ts";
import { DatasetError } from "../../train/data/problems.ts";
import { AmpUnavailableError, localAdapterPrecision, resolveAmp } from "../../train/precision.ts";
import type { RouteModule } from "../app.ts";
import { capturesWriter, type DatasetDirWriter, withUpload } from "../captures_dataset.ts";
import { ApiError, errorBody } from "../errors.ts";
import { streamMultipart } from "../multipart_stream.ts";
import { requireMutationAuth } from "../middleware/auth.ts";
import { limitBody } from "../middleware/body_limit.ts";
import { mediaType } from "../middleware/media_type.ts";
import { BEARER_SECURITY, error, json, MUTATION_AUTH_ERRORS } from "../openapi_responses.ts";
import { ErrorSchema, ModelNameParamSchema } from "../schemas.ts";
import { JobResponseSchema } from "./jobs.ts";

const DatasetErrorSchema = z.object({
  error: z.object({
    code: z.literal("invalid_dataset"),
    message: z.string(),
    problems: z.array(z.object({ file: z.string(), line: z.number().int().optional(), message: z.string() })),
  }),
}).openapi("DatasetError");

// The config is parsed by parseFinetuneConfig (400 invalid_config), not by route validation; the document shows
// its schema, bounds included, as the FinetuneConfig component.
const CONFIG_REF = { $ref: "#/components/schemas/FinetuneConfig" };
/**
 * The multipart form, as a plain OpenAPI schema rather than a zod one: a zod form schema would make the router
 * parse (and hold) the whole body before the handler runs, and the archive is streamed to disk instead.
 */
const MULTIPART_SCHEMA = {
  type: "object" as const,
  required: ["dataset"],
  properties: {
    config: {
      type: "string" as const,
      description:
        "The fine-tune config (the FinetuneConfig schema) as JSON text (a field or a file); keys " +
        "left out take their defaults",
    },
    dataset: {
      type: "string" as const,
      format: "binary",
      description:
        ".zip, .tar.gz or .tar in YOLO layout: images/ + labels/ (optionally val/images + val/labels)",
    },
    source: {
      type: "string" as const,
      enum: ["captures"],
      description: "`captures`: the model's labelled captures join the uploaded dataset in the job",
    },
  },
};
/** Largest `config` field: a config is a few hundred bytes of JSON. */
const MAX_CONFIG_BYTES = 1 << 20;
const InlineSchema = z.object({
  config: z.record(z.string(), z.unknown()).optional().openapi({
    description: "The fine-tune config; keys left out take their defaults",
    allOf: [CONFIG_REF],
  }),
  images: z.array(z.object({
    name: z.string().openapi({ example: "a.jpg" }),
    data: z.string().openapi({ description: "The image file, base64" }),
    // Rows are checked by the dataset validation, which lists every offending image in one 400.
    labels: z.array(z.array(z.number())).openapi({ description: "[[class, cx, cy, w, h], ...] normalised" }),
  })).optional().openapi({ description: "The dataset; required unless `source` is `captures`" }),
  source: z.enum(["captures"]).optional().openapi({
    description: "`captures`: train on the model's labelled train captures, evaluate on its labelled val " +
      "captures (src/capture); with `images` too, those join the captures",
  }),
}).openapi("FinetuneInline");

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

/**
 * The base version's bytes; 409 when it was deleted while the upload was being received (the request named or
 * found it before the body, a client deleted it meanwhile).
 */
async function baseBytes(registry: Registry, base: VersionMeta): Promise<Uint8Array> {
  try {
    return await registry.read(base.name, base.version);
  } catch (err) {
    if (err instanceof RegistryError && err.code === "not_found") {
      throw new ApiError(
        409,
        "conflict",
        `Version ${base.version} of '${base.name}' was deleted while the upload was received; retry`,
      );
    }
    throw err;
  }
}

/** 400 `invalid_config` when the job's estimated memory is over the budget (see training_memory.ts). */
async function refuseUnfit(
  registry: Registry,
  base: VersionMeta,
  config: FinetuneConfig,
  totalBytes: number,
) {
  const model = OnnxModel.parse(await baseBytes(registry, base));
  const need = estimateTrainingMemory(model, config.batch_size, config.imgsz);
  if (need === null) return;
  try {
    checkTrainingMemory(need, { totalBytes, maxTensorBytes: await adapterTensorLimit() });
  } catch (err) {
    if (err instanceof TrainingMemoryError) throw new ApiError(400, "invalid_config", err.message);
    throw err;
  }
}

/** 400 `invalid_config` for `amp: true` where this machine's adapter has no shader-f16 (the job would fail). */
async function refuseAmp(config: FinetuneConfig) {
  const adapter = await localAdapterPrecision();
  if (!adapter) return;
  try {
    resolveAmp(config.amp, adapter);
  } catch (err) {
    if (err instanceof AmpUnavailableError) throw new ApiError(400, "invalid_config", err.message);
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

function configText(text: string | undefined): unknown {
  if (text === undefined) return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, "invalid_config", `Field 'config' is not JSON: ${(err as Error).message}`);
  }
}

const tooLargeMessage = (maxBytes: number) => `Fine-tune upload is over the limit of ${maxBytes} bytes`;

interface Upload {
  raw: unknown;
  /** unpacks the upload (and the captures, with `source: captures`) into the job's dataset directory */
  write: DatasetDirWriter;
  /** removes what receiving the upload left in the data dir */
  cleanup: () => Promise<void>;
}

/** Holds an upload slot for the whole request, taken before the body is read. */
const uploadSlot = (jobs: JobService) =>
  createMiddleware(async (_c, next) => {
    const slot = await jobs.reserveUpload();
    try {
      await next();
    } finally {
      slot.release();
    }
  });

function capturesOrRefuse(fromCaptures: DatasetDirWriter | null): DatasetDirWriter {
  if (!fromCaptures) throw new ApiError(400, "invalid_body", "Capture is not enabled on this server");
  return fromCaptures;
}

/** The config and a writer that unpacks the upload, for whichever body form was sent. */
async function upload(
  c: Context,
  jobs: JobService,
  maxBytes: number,
  fromCaptures: DatasetDirWriter | null,
): Promise<Upload> {
  const type = mediaType(c);
  if (type === "multipart/form-data") {
    const staging = await jobs.stageUpload();
    const cleanup = () => Deno.remove(staging, { recursive: true }).catch(() => {});
    try {
      const form = await streamMultipart(c.req.raw, {
        dir: staging,
        fileFields: ["dataset"],
        maxBytes,
        tooLargeMessage: tooLargeMessage(maxBytes),
        maxFieldBytes: MAX_CONFIG_BYTES,
      });
      const archive = form.files.get("dataset");
      if (!archive) {
        throw new ApiError(422, "invalid_body", "body.dataset: a .zip, .tar.gz or .tar file is required");
      }
      const limits = { ...DEFAULT_ARCHIVE_LIMITS, maxBytes };
      // A client that goes away mid-unpack stops the worker rather than leaving it to run for nobody.
      const extract = (dir: string) => extractArchive(archive, dir, limits, c.req.raw.signal).then(() => {});
      const raw = configText(form.fields.get("config"));
      const source = form.fields.get("source");
      if (source === undefined) return { raw, write: extract, cleanup };
      if (source !== "captures") {
        throw new ApiError(
          422,
          "invalid_body",
          "body.source: 'captures' is the only source besides an upload",
        );
      }
      return { raw, write: withUpload(capturesOrRefuse(fromCaptures), extract), cleanup };
    } catch (err) {
      await cleanup();
      throw err;
    }
  }
  if (type === "application/json") {
    const body = (c.req.valid as (t: "json") => z.infer<typeof InlineSchema>)("json");
    const cleanup = () => Promise.resolve();
    const images = body.images as InlineImage[] | undefined;
    const inline = images && ((dir: string) => writeInlineDataset(images, dir).then(() => {}));
    if (body.source === "captures") {
      const captures = capturesOrRefuse(fromCaptures);
      return { raw: body.config ?? {}, write: inline ? withUpload(captures, inline) : captures, cleanup };
    }
    if (!inline) {
      throw new ApiError(422, "invalid_body", "body.images: required (or `source: captures`)");
    }
    return { raw: body.config ?? {}, write: inline, cleanup };
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
  const tooLarge = (c: Context) =>
    c.json(errorBody("payload_too_large", tooLargeMessage(ctx.maxDatasetBytes)), 413);
  const buffered = limitBody(ctx.maxDatasetBytes, { message: tooLargeMessage(ctx.maxDatasetBytes) });
  /** Multipart bodies are counted as they stream to disk; only a JSON body is buffered (and capped) whole. */
  const limit: MiddlewareHandler = (c, next) => {
    if (mediaType(c) !== "multipart/form-data") return buffered(c, next);
    const declared = Number(c.req.header("content-length") ?? 0);
    return declared > ctx.maxDatasetBytes ? Promise.resolve(tooLarge(c)) : next();
  };
  app.openAPIRegistry.registerComponent("schemas", "FinetuneUpload", MULTIPART_SCHEMA);

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
    security: BEARER_SECURITY,
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
          "multipart/form-data": { schema: { $ref: "#/components/schemas/FinetuneUpload" } },
          "application/json": { schema: InlineSchema },
        },
      },
    },
    responses: {
      202: json(JobResponseSchema, "Accepted and queued; follow it at /v1/jobs/{id}"),
      400: json(z.union([DatasetErrorSchema, ErrorSchema]), "Invalid dataset (listing the files) or config"),
      ...MUTATION_AUTH_ERRORS,
      404: error("Unknown model or version"),
      409: error("The base version was deleted while the upload was received (`conflict`); retry"),
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

  app.openAPIRegistry.register("FinetuneConfig", FinetuneConfigSchema);
  app.openapi(route, async (c) => {
    const { name } = c.req.valid("param");
    const base = baseModel(registry, name, c.req.valid("query").base_version);
    const { raw, write, cleanup } = await upload(c, jobs, ctx.maxDatasetBytes, capturesWriter(ctx, base));
    try {
      const parsed = config(raw);
      await refuseUnfit(registry, base, parsed, ctx.maxTrainMemoryBytes);
      await refuseAmp(parsed);
      const dataset: DatasetWriter = async (dir) => {
        await write(dir, parsed);
        // The trainer decodes with the default limit, so an image over it must not pass here and fail the job.
        const maxPixels = Math.min(ctx.maxPixels, DEFAULT_MAX_PIXELS);
        await loadDataset(dir, { nc: base.nc, valFraction: parsed.val_fraction, maxPixels });
      };
      const job = await jobs.submit({ model: name, baseVersion: base.version, config: parsed, dataset });
      return c.json(job, 202, { location: `/v1/jobs/${job.id}` });
    } catch (err) {
      if (!(err instanceof DatasetError)) throw err;
      const body = {
        error: { code: "invalid_dataset" as const, message: err.message, problems: [...err.problems] },
      };
      return c.json(body, 400);
    } finally {
      await cleanup();
    }
  });
};

import { parseArgs } from "node:util";
import { z } from "zod";
import { DEFAULT_MAX_PIXELS } from "../image/decode.ts";
import { DEFAULT_JOB_LIMITS } from "../jobs/limits.ts";
import { BACKEND_CHOICES } from "../serving/backend.ts";

/** The embedded default model, served when no --model is given. */
export const DEFAULT_MODEL_PATH = new URL("../../models/default.onnx", import.meta.url).pathname;

export const ServerConfigSchema = z.object({
  host: z.string().min(1).default("127.0.0.1"),
  port: z.coerce.number().int().min(0).max(65535).default(8000),
  models: z.array(z.string().min(1)).default([]),
  dataDir: z.string().min(1).default("./data"),
  backend: z.enum(BACKEND_CHOICES).default("auto"),
  imgsz: z.coerce.number().int().positive().optional(),
  maxBodyBytes: z.coerce.number().int().positive().default(20 * 1024 * 1024),
  maxPixels: z.coerce.number().int().positive().default(DEFAULT_MAX_PIXELS),
  /** Bearer key for mutating routes; KESTREL_API_KEY when absent (see resolveApiKey). */
  apiKey: z.string().min(1).optional(),
  /** Largest ONNX upload to the registry: 256 MiB fits every YOLOv5 size up to l in float32. */
  maxModelBytes: z.coerce.number().int().positive().default(256 * 1024 * 1024),
  /** Largest fine-tune upload (archive or JSON body), also the cap on the archive unpacked: 1 GiB. */
  maxDatasetBytes: z.coerce.number().int().positive().default(1024 * 1024 * 1024),
  /** Fine-tune uploads received and unpacked at once; more answer 429 (each holds memory and disk). */
  maxConcurrentUploads: z.coerce.number().int().positive().default(DEFAULT_JOB_LIMITS.maxConcurrentUploads),
  /** Fine-tune jobs waiting to run; more answer 429. */
  maxQueuedJobs: z.coerce.number().int().positive().default(DEFAULT_JOB_LIMITS.maxQueuedJobs),
  /** Free bytes the data dir's filesystem must keep for a new fine-tune job; below it, 507. */
  minFreeBytes: z.coerce.number().int().min(0).default(DEFAULT_JOB_LIMITS.minFreeBytes),
});

export type ServerConfig = z.infer<typeof ServerConfigSchema>;

export const SERVE_USAGE = "Usage: deno task start [--host 127.0.0.1] [--port 8000] [--model PATH]... " +
  "[--data-dir ./data] [--backend auto|webgpu|wasm|native] [--imgsz N] [--max-body-bytes 20971520] " +
  "[--max-pixels 40000000] [--api-key KEY] [--max-model-bytes 268435456] [--max-dataset-bytes 1073741824] " +
  "[--max-concurrent-uploads 2] [--max-queued-jobs 16] [--min-free-bytes 1073741824]";

/** Parses `deno task start` flags once, at the edge; throws an Error listing every bad flag. */
export function parseServerArgs(args: string[]): ServerConfig {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      model: { type: "string", multiple: true },
      "data-dir": { type: "string" },
      backend: { type: "string" },
      imgsz: { type: "string" },
      "max-body-bytes": { type: "string" },
      "max-pixels": { type: "string" },
      "api-key": { type: "string" },
      "max-model-bytes": { type: "string" },
      "max-dataset-bytes": { type: "string" },
      "max-concurrent-uploads": { type: "string" },
      "max-queued-jobs": { type: "string" },
      "min-free-bytes": { type: "string" },
    },
  });
  const parsed = ServerConfigSchema.safeParse({
    host: values.host,
    port: values.port,
    models: values.model,
    dataDir: values["data-dir"],
    backend: values.backend,
    imgsz: values.imgsz,
    maxBodyBytes: values["max-body-bytes"],
    maxPixels: values["max-pixels"],
    apiKey: values["api-key"],
    maxModelBytes: values["max-model-bytes"],
    maxDatasetBytes: values["max-dataset-bytes"],
    maxConcurrentUploads: values["max-concurrent-uploads"],
    maxQueuedJobs: values["max-queued-jobs"],
    minFreeBytes: values["min-free-bytes"],
  });
  if (!parsed.success) throw new Error(`${z.prettifyError(parsed.error)}\n${SERVE_USAGE}`);
  return parsed.data;
}

import { parseArgs } from "node:util";
import { z } from "zod";
import { DEFAULT_MAX_PIXELS } from "../image/decode.ts";
import { DEFAULT_JOB_LIMITS } from "../jobs/limits.ts";
import { BACKEND_CHOICES } from "../serving/backend.ts";

/** The embedded default model, served when no --model is given. */
export const DEFAULT_MODEL_PATH = new URL("../../models/default.onnx", import.meta.url).pathname;

/** Default request body limit: 20 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024;
/** Default fine-tune upload limit (archive or JSON body, and the archive unpacked): 1 GiB. */
export const DEFAULT_MAX_DATASET_BYTES = 1024 * 1024 * 1024;
/** Default ceiling on detect requests in flight: a few per CPU core of queueing, a bounded amount of memory. */
export const DEFAULT_MAX_INFLIGHT_DETECT = 32;
/** Default ceiling on open job event streams: one per dashboard tab, with room. */
export const DEFAULT_MAX_EVENT_STREAMS = 64;

export const ServerConfigSchema = z.object({
  host: z.string().min(1).default("127.0.0.1"),
  port: z.coerce.number().int().min(0).max(65535).default(8000),
  models: z.array(z.string().min(1)).default([]),
  dataDir: z.string().min(1).default("./data"),
  backend: z.enum(BACKEND_CHOICES).default("auto"),
  imgsz: z.coerce.number().int().positive().optional(),
  maxBodyBytes: z.coerce.number().int().positive().default(DEFAULT_MAX_BODY_BYTES),
  maxPixels: z.coerce.number().int().positive().default(DEFAULT_MAX_PIXELS),
  /** Bearer key for mutating routes; KESTREL_API_KEY when absent (see resolveApiKey). */
  apiKey: z.string().min(1).optional(),
  /** Largest ONNX upload to the registry: 256 MiB fits every YOLOv5 size up to l in float32. */
  maxModelBytes: z.coerce.number().int().positive().default(256 * 1024 * 1024),
  /** Largest fine-tune upload (archive or JSON body), also the cap on the archive unpacked. */
  maxDatasetBytes: z.coerce.number().int().positive().default(DEFAULT_MAX_DATASET_BYTES),
  /**
   * Host names (the Host header, port ignored) answered besides the listen address, against DNS rebinding;
   * `*` answers any. Names behind a reverse proxy or on the LAN (`kestrel.lan`) go here.
   */
  allowedHosts: z.array(z.string().min(1).transform((h) => h.toLowerCase())).default([]),
  /** Detect requests in flight (body upload included) before more get 429: bounds memory and queueing. */
  maxInflightDetect: z.coerce.number().int().positive().default(DEFAULT_MAX_INFLIGHT_DETECT),
  /** Open job event streams (each holds a connection and a subscription) before more get 429. */
  maxEventStreams: z.coerce.number().int().positive().default(DEFAULT_MAX_EVENT_STREAMS),
  /** Most memory one fine-tune job may need (its estimate is checked before queueing); default: system memory. */
  maxTrainMemoryBytes: z.coerce.number().int().positive().optional(),
  /** The model DeepStack's /v1/vision/detection runs; the first served model by name when absent. */
  deepstackModel: z.string().min(1).optional(),
  /** Detection needs the API key as well (Bearer, or DeepStack's form field `api_key`). */
  detectNeedsKey: z.boolean().default(false),
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
  "[--max-pixels 40000000] [--api-key KEY | --api-key-file PATH] [--allowed-hosts NAME,...] " +
  "[--max-model-bytes 268435456] [--max-dataset-bytes 1073741824] [--max-inflight-detect 32] " +
  "[--max-event-streams 64] [--max-train-memory BYTES] [--deepstack-model NAME] [--detect-needs-key] " +
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
      "api-key-file": { type: "string" },
      "allowed-hosts": { type: "string" },
      "max-inflight-detect": { type: "string" },
      "max-event-streams": { type: "string" },
      "max-train-memory": { type: "string" },
      "deepstack-model": { type: "string" },
      "detect-needs-key": { type: "boolean" },
      "max-concurrent-uploads": { type: "string" },
      "max-queued-jobs": { type: "string" },
      "min-free-bytes": { type: "string" },
    },
  });
  if (values["api-key"] !== undefined && values["api-key-file"] !== undefined) {
    throw new Error(`Give --api-key or --api-key-file, not both\n${SERVE_USAGE}`);
  }
  const keyFile = values["api-key-file"];
  const parsed = ServerConfigSchema.safeParse({
    host: values.host,
    port: values.port,
    models: values.model,
    dataDir: values["data-dir"],
    backend: values.backend,
    imgsz: values.imgsz,
    maxBodyBytes: values["max-body-bytes"],
    maxPixels: values["max-pixels"],
    apiKey: keyFile === undefined ? values["api-key"] : readApiKeyFile(keyFile),
    maxModelBytes: values["max-model-bytes"],
    maxDatasetBytes: values["max-dataset-bytes"],
    allowedHosts: values["allowed-hosts"]?.split(",").map((h) => h.trim()).filter((h) => h !== ""),
    maxInflightDetect: values["max-inflight-detect"],
    maxEventStreams: values["max-event-streams"],
    maxTrainMemoryBytes: values["max-train-memory"],
    deepstackModel: values["deepstack-model"],
    detectNeedsKey: values["detect-needs-key"],
    maxConcurrentUploads: values["max-concurrent-uploads"],
    maxQueuedJobs: values["max-queued-jobs"],
    minFreeBytes: values["min-free-bytes"],
  });
  if (!parsed.success) throw new Error(`${z.prettifyError(parsed.error)}\n${SERVE_USAGE}`);
  return parsed.data;
}

/**
 * The key in `path`, trimmed (a key file keeps the key out of `ps` and shell history, unlike --api-key).
 * Refuses a file other users may read, and an empty one: a server that silently ran without its key would let
 * every loopback client, including a same-host proxy, change models.
 */
export function readApiKeyFile(path: string): string {
  let text: string;
  let mode: number | null;
  try {
    mode = Deno.statSync(path).mode;
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new Error(`--api-key-file ${path}: ${(err as Error).message}`);
  }
  if (mode !== null && (mode & 0o004) !== 0) {
    throw new Error(
      `--api-key-file ${path} is readable by every user (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  const key = text.trim();
  if (key === "") throw new Error(`--api-key-file ${path} is empty`);
  return key;
}

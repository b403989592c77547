import { parseArgs } from "node:util";
import { parse as parseToml } from "smol-toml";
import { z } from "zod";
import { FLEET_NAME } from "../fleet/keys.ts";
import { DEFAULT_MAX_PIXELS } from "../image/decode.ts";
import { DEFAULT_JOB_LIMITS } from "../jobs/limits.ts";
import { BACKEND_CHOICES } from "../serving/backend.ts";
import { DEFAULT_MAX_QUEUE } from "../serving/session_queue.ts";

/** The embedded default model, served when no --model is given. */
export const DEFAULT_MODEL_PATH = new URL("../../models/default.onnx", import.meta.url).pathname;

/** `--log-format`: `kestrel: ...` lines for people, one JSON object per line for a log shipper. */
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
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
  /**
   * Requests one model may hold queued (body in, waiting to be decoded or for its session) before more get 503
   * at once; unlike maxInflightDetect (every detect request of every model, uploads included: 429), it bounds
   * the wait behind one model's session, hence its p99.
   */
  maxQueue: z.coerce.number().int().positive().default(DEFAULT_MAX_QUEUE),
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
  logFormat: z.enum(LOG_FORMATS).default("text"),
  /** On SIGTERM/SIGINT, how long requests in flight (and a fine-tune's current step) get to finish. */
  drainSeconds: z.coerce.number().nonnegative().default(10),
  /** While a job trains and detect's recent p95 is over this, the trainer waits between steps; 0 turns it off. */
  serveBudgetMs: z.coerce.number().min(0).default(100),
  /** Join a fleet through this NATS server (`nats://host:4222`); absent: the box runs alone. */
  nats: z.string().regex(/^nats:\/\/[^\s]+$/, "nats://host:port[,nats://host:port...]").optional(),
  /** A NATS `.creds` file for --nats. */
  natsCreds: z.string().min(1).optional(),
  /** The CA (PEM) of the NATS server's TLS certificate, when the system does not trust it. */
  natsCa: z.string().min(1).optional(),
  /** This node's name in the fleet (default: the host name). */
  node: z.string().regex(FLEET_NAME, `must match ${FLEET_NAME}`).optional(),
  /** Whether this node takes fine-tune jobs from the fleet (`auto`: when it has a hardware GPU adapter). */
  jobs: z.enum(["on", "off", "auto"]).default("auto"),
  /** The fleet's name, the prefix of its NATS buckets, so fleets can share one NATS server. */
  fleet: z.string().regex(FLEET_NAME, `must match ${FLEET_NAME}`).default("kestrel"),
});

export type ServerConfig = z.infer<typeof ServerConfigSchema>;

export const SERVE_USAGE = "Usage: deno task start [--host 127.0.0.1] [--port 8000] [--model PATH]... " +
  "[--data-dir ./data] [--backend auto|webgpu|wasm|native] [--imgsz N] [--max-body-bytes 20971520] " +
  "[--max-pixels 40000000] [--api-key KEY | --api-key-file PATH] [--allowed-hosts NAME,...] " +
  "[--max-model-bytes 268435456] [--max-dataset-bytes 1073741824] [--max-inflight-detect 32] " +
  "[--max-event-streams 64] [--max-train-memory BYTES] [--deepstack-model NAME] [--detect-needs-key] " +
  "[--max-concurrent-uploads 2] [--max-queued-jobs 16] [--min-free-bytes 1073741824] " +
  "[--log-format text|json] [--drain-seconds 10] [--config kestrel.toml] [--serve-budget-ms 100] " +
  "[--max-queue 16] " +
  "[--nats nats://host:4222 [--nats-creds FILE] [--nats-ca FILE] [--node NAME] [--fleet kestrel] " +
  "[--jobs on|off|auto]]";

/** The `kestrel serve` flags; a config file's keys are the same names, without the dashes in front. */
export const SERVE_OPTIONS = {
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
  "max-queue": { type: "string" },
  "max-event-streams": { type: "string" },
  "max-train-memory": { type: "string" },
  "deepstack-model": { type: "string" },
  "detect-needs-key": { type: "boolean" },
  "max-concurrent-uploads": { type: "string" },
  "max-queued-jobs": { type: "string" },
  "min-free-bytes": { type: "string" },
  "serve-budget-ms": { type: "string" },
  "log-format": { type: "string" },
  "drain-seconds": { type: "string" },
  nats: { type: "string" },
  "nats-creds": { type: "string" },
  "nats-ca": { type: "string" },
  node: { type: "string" },
  fleet: { type: "string" },
  jobs: { type: "string" },
} as const;

type ServeOption = keyof typeof SERVE_OPTIONS;
type ServeValues = {
  [K in ServeOption]?: (typeof SERVE_OPTIONS)[K] extends { multiple: true } ? string[]
    : (typeof SERVE_OPTIONS)[K] extends { type: "boolean" } ? boolean
    : string;
};

/** Flags that name one setting two ways: one given on the command line replaces both in the file. */
const SAME_SETTING: ServeOption[][] = [["api-key", "api-key-file"]];

/**
 * Reads a TOML config file whose keys are the serve flags (`port = 8000`, `model = ["a.onnx"]`,
 * `detect-needs-key = true`); numbers may be written bare or quoted, `model` and `allowed-hosts` as an array or
 * one string (the flag's comma-separated form too). Paths are taken as the flags take them, from the working
 * directory. A file holding `api-key` must not be readable by every user, as with `--api-key-file`. Throws
 * naming the file and every unknown key and value of the wrong type.
 */
export function readServerConfigFile(path: string): ServeValues {
  let table: Record<string, unknown>;
  try {
    table = parseToml(Deno.readTextFileSync(path));
  } catch (err) {
    throw new Error(`--config ${path}: ${(err as Error).message}`);
  }
  const values: Record<string, string | string[] | boolean> = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(table)) {
    const option = (SERVE_OPTIONS as Record<string, { type: string; multiple?: boolean }>)[key];
    if (!option) {
      problems.push(
        `unknown key '${key}' (keys are the serve flags: ${Object.keys(SERVE_OPTIONS).join(", ")})`,
      );
    } else if (option.type === "boolean") {
      if (typeof value === "boolean") values[key] = value;
      else problems.push(`'${key}' must be true or false`);
    } else if ("multiple" in option && option.multiple) {
      if (typeof value === "string") values[key] = [value];
      else if (Array.isArray(value) && value.every((v) => typeof v === "string")) values[key] = value;
      else problems.push(`'${key}' must be a string or an array of strings`);
    } else if (typeof value === "string" || typeof value === "number") {
      values[key] = String(value);
    } else if (Array.isArray(value) && value.every((v) => typeof v === "string") && key === "allowed-hosts") {
      values[key] = value.join(",");
    } else {
      problems.push(`'${key}' must be a string or a number`);
    }
  }
  if (typeof table["api-key"] === "string" && (Deno.statSync(path).mode ?? 0) & 0o004) {
    problems.push("holds 'api-key' but is readable by every user; chmod 600 it");
  }
  if (problems.length) throw new Error(`--config ${path}: ${problems.join("; ")}`);
  return values as ServeValues;
}

/** The file's settings under the command line's: a flag given replaces the file's key (a list flag too). */
function overlay(file: ServeValues, flags: ServeValues): ServeValues {
  const merged: ServeValues = { ...file };
  for (const group of SAME_SETTING) {
    if (group.some((k) => flags[k] !== undefined)) { for (const k of group) delete merged[k]; }
  }
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) Object.assign(merged, { [k]: v });
  return merged;
}

/**
 * Parses `deno task start` flags once, at the edge, over the settings of `--config FILE` when given; throws an
 * Error listing every bad flag or key.
 */
export function parseServerArgs(args: string[]): ServerConfig {
  const { values: flags } = parseArgs({ args, options: { ...SERVE_OPTIONS, config: { type: "string" } } });
  const { config, ...given } = flags;
  const values = config === undefined ? given : overlay(readServerConfigFile(config), given);
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
    maxQueue: values["max-queue"],
    maxEventStreams: values["max-event-streams"],
    maxTrainMemoryBytes: values["max-train-memory"],
    deepstackModel: values["deepstack-model"],
    detectNeedsKey: values["detect-needs-key"],
    maxConcurrentUploads: values["max-concurrent-uploads"],
    maxQueuedJobs: values["max-queued-jobs"],
    minFreeBytes: values["min-free-bytes"],
    logFormat: values["log-format"],
    drainSeconds: values["drain-seconds"],
    serveBudgetMs: values["serve-budget-ms"],
    nats: values.nats,
    natsCreds: values["nats-creds"],
    natsCa: values["nats-ca"],
    node: values.node,
    fleet: values.fleet,
    jobs: values.jobs,
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

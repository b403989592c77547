import { OpenAPIHono } from "@hono/zod-openapi";
import type { CaptureService } from "../capture/service.ts";
import { addServeBudgetMetrics, type ServeBudget } from "./serve_budget.ts";
import type { Fleet } from "../fleet/fleet.ts";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_DATASET_BYTES,
  DEFAULT_MAX_EVENT_STREAMS,
  DEFAULT_MAX_INFLIGHT_DETECT,
} from "../config/server.ts";
import { DEFAULT_MAX_PIXELS } from "../image/decode.ts";
import type { JobService } from "../jobs/service.ts";
import type { Registry } from "../registry/registry.ts";
import type { ModelPool } from "../serving/pool.ts";
import { defaultTrainingMemoryBytes } from "../train/training_memory.ts";
import { addCaptureMetrics } from "./capture_metrics.ts";
import { errorBody, handleError } from "./errors.ts";
import { type Logger, WARNINGS_TO_STDERR } from "./log.ts";
import { checkHost } from "./middleware/host.ts";
import { InflightLimit } from "./middleware/inflight.ts";
import { createServerMetrics, metricsMiddleware, type ServerMetrics } from "./middleware/metrics.ts";
import { readiness } from "./middleware/ready.ts";
import { requestLog } from "./middleware/request_log.ts";
import { refuseCrossSite } from "./middleware/same_origin.ts";
import { securityHeaders } from "./middleware/security_headers.ts";
import { captureRoutes } from "./routes/captures.ts";
import { registerBearerScheme } from "./openapi_responses.ts";
import { DEEPSTACK_PREFIX, deepstackErrors, deepstackRoutes } from "./routes/deepstack.ts";
import { detectRoutes } from "./routes/detect.ts";
import { docsRoutes } from "./routes/docs.ts";
import { finetuneRoutes } from "./routes/finetune.ts";
import { fleetRoutes } from "./routes/fleet.ts";
import { healthRoutes } from "./routes/health.ts";
import { kserveV2Routes, V2_PREFIX, v2Errors } from "./routes/kserve_v2.ts";
import { jobRoutes, SSE_KEEP_ALIVE_MS } from "./routes/jobs.ts";
import { modelRoutes } from "./routes/models.ts";
import { regressionSetRoutes } from "./routes/regression_set.ts";
import { serverInfoRoutes } from "./routes/server_info.ts";
import { uiRoutes } from "./routes/ui.ts";
import { versionRoutes } from "./routes/versions.ts";

export interface AppDeps {
  pool: ModelPool;
  /** False while models load: /readyz and /v1/* answer 503. Always ready when absent. */
  isReady?: () => boolean;
  /** True once shutdown began: /v1/* answers 503 `shutting_down` while requests in flight finish. */
  isDraining?: () => boolean;
  maxBodyBytes?: number;
  /** Largest image (width x height from its header) accepted, against decompression bombs. */
  maxPixels?: number;
  /** The model registry; the version routes (upload, download, activate, delete) are mounted only with one. */
  registry?: Registry | null;
  /** Bearer key for mutating routes; null lets only loopback clients mutate. */
  apiKey?: string | null;
  /** The fine-tune job service; the job routes are mounted only with one (and fine-tune also needs a registry). */
  jobs?: JobService | null;
  maxDatasetBytes?: number;
  /** Most memory one fine-tune job may need (default: the machine's memory). */
  maxTrainMemoryBytes?: number;
  /** Aborted when the server shuts down, so long-lived responses (job event streams) end. */
  shutdown?: AbortSignal;
  /** How often an open event stream gets a `: keep-alive` comment line (default 15 s; tests shorten it). */
  sseKeepAliveMs?: number;
  /** `--host`, for the Host check (default 127.0.0.1, under which `app.request()`'s `localhost` passes). */
  listenHost?: string;
  /** `--allowed-hosts`: further Host names answered; `*` for any. */
  allowedHosts?: readonly string[];
  /** Detect requests in flight before more get 429. */
  maxInflightDetect?: number;
  /** Open job event streams before more get 429. */
  maxEventStreams?: number;
  /** The model DeepStack's `/v1/vision/detection` runs; null means the first served model by name. */
  deepstackModel?: string | null;
  /** Detection (every API family) needs the API key too; without it only mutating routes do. */
  detectNeedsKey?: boolean;
  /** Where request lines and errors go; default: warnings and errors only, as text on stderr. */
  log?: Logger;
  /** Why the inference backend was chosen, with its startup self-test, for GET /v1/models. */
  backendReason?: string;
  /** Frame capture (src/capture); the capture and captures routes are mounted only with one. */
  capture?: CaptureService | null;
  /** `--serve-budget-ms`: detect latencies feed it; it pauses training while detect is slow. */
  serveBudget?: ServeBudget | null;
  /** The fleet membership (`--nats`); `GET /v1/fleet` and the fleet gauges are mounted only with one. */
  fleet?: Fleet | null;
}

/** What every route module receives: the app's dependencies with defaults filled in, and its metrics. */
export interface RouteContext extends Required<AppDeps> {
  metrics: ServerMetrics;
  /** One ceiling for detection in flight across every API family (native, DeepStack, v2 infer). */
  detectInflight: InflightLimit;
}

export type ApiApp = OpenAPIHono;
/** A resource's routes (src/api/routes/<resource>.ts); add new modules to ROUTES. */
export type RouteModule = (app: ApiApp, ctx: RouteContext) => void;

const ROUTES: RouteModule[] = [
  healthRoutes,
  modelRoutes,
  serverInfoRoutes,
  versionRoutes,
  detectRoutes,
  deepstackRoutes,
  kserveV2Routes,
  finetuneRoutes,
  jobRoutes,
  captureRoutes,
  regressionSetRoutes,
  fleetRoutes,
  uiRoutes,
  docsRoutes,
];

/**
 * The Hono app. Every route is declared with createRoute (zod request and response schemas, reused for the
 * OpenAPI document); validation failures go through one defaultHook and thrown errors through one onError, so
 * every error has the `{"error": {"code", "message"}}` shape. Before any route: security headers on every
 * response, the Host check (DNS rebinding) and the refusal of cross-site writes.
 */
export function createApp(deps: AppDeps): ApiApp {
  const ctx: RouteContext = {
    pool: deps.pool,
    isReady: deps.isReady ?? (() => true),
    isDraining: deps.isDraining ?? (() => false),
    maxBodyBytes: deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    maxPixels: deps.maxPixels ?? DEFAULT_MAX_PIXELS,
    registry: deps.registry ?? null,
    apiKey: deps.apiKey ?? null,
    jobs: deps.jobs ?? null,
    maxDatasetBytes: deps.maxDatasetBytes ?? DEFAULT_MAX_DATASET_BYTES,
    maxTrainMemoryBytes: deps.maxTrainMemoryBytes ?? defaultTrainingMemoryBytes(),
    shutdown: deps.shutdown ?? new AbortController().signal,
    sseKeepAliveMs: deps.sseKeepAliveMs ?? SSE_KEEP_ALIVE_MS,
    listenHost: deps.listenHost ?? "127.0.0.1",
    allowedHosts: deps.allowedHosts ?? [],
    maxInflightDetect: deps.maxInflightDetect ?? DEFAULT_MAX_INFLIGHT_DETECT,
    maxEventStreams: deps.maxEventStreams ?? DEFAULT_MAX_EVENT_STREAMS,
    deepstackModel: deps.deepstackModel ?? null,
    detectNeedsKey: deps.detectNeedsKey ?? false,
    log: deps.log ?? WARNINGS_TO_STDERR,
    backendReason: deps.backendReason ?? "",
    capture: deps.capture ?? null,
    serveBudget: deps.serveBudget ?? null,
    fleet: deps.fleet ?? null,
    metrics: createServerMetrics(deps.pool),
    detectInflight: new InflightLimit(
      deps.maxInflightDetect ?? DEFAULT_MAX_INFLIGHT_DETECT,
      "detect requests",
    ),
  };
  if (ctx.capture) addCaptureMetrics(ctx.metrics.registry, ctx.capture);
  if (ctx.serveBudget) addServeBudgetMetrics(ctx.metrics.registry, ctx.serveBudget);
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (result.success) return;
      const where = result.target === "json" || result.target === "form" ? "body" : result.target;
      const message = result.error.issues
        .map((i) => `${where}${i.path.length ? "." + i.path.join(".") : ""}: ${i.message}`)
        .join("; ");
      const status = where === "body" ? 422 : 400;
      return c.json(errorBody(where === "body" ? "invalid_body" : "invalid_request", message), status);
    },
  });
  // First, so every response (errors included) carries its x-request-id and every request is logged.
  app.use("*", ...requestLog(ctx.log));
  app.use("*", metricsMiddleware(ctx.metrics));
  // Ahead of every other middleware, so their errors (host, cross-site, readiness, limits) also leave in the
  // family's shape.
  app.use(`${DEEPSTACK_PREFIX}/*`, deepstackErrors);
  app.use(`${V2_PREFIX}/*`, v2Errors);
  app.use("*", securityHeaders());
  app.use("*", checkHost({ listenHost: ctx.listenHost, allowedHosts: ctx.allowedHosts }));
  app.use("*", refuseCrossSite());
  app.use("/v1/*", readiness(ctx.isReady, ctx.isDraining));
  app.onError((err, c) => handleError(err, c, ctx.log));
  app.notFound((c) => c.json(errorBody("not_found", `No route for ${c.req.method} ${c.req.path}`), 404));
  registerBearerScheme(app);
  for (const register of ROUTES) register(app, ctx);
  return app;
}

import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { ModelPool } from "../../serving/pool.ts";
import { ModelOverloadedError } from "../../serving/session_queue.ts";
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, Registry } from "../metrics.ts";

/** The server's Prometheus metrics; the pool's gauges are read at scrape time. */
export function createServerMetrics(pool: ModelPool) {
  const registry = new Registry();
  return {
    registry,
    requests: registry.add(
      new Counter("kestrel_http_requests_total", "HTTP requests by method, route and status"),
    ),
    latency: registry.add(
      new Histogram(
        "kestrel_http_request_duration_seconds",
        "HTTP request latency by route",
        LATENCY_BUCKETS,
      ),
    ),
    inference: registry.add(
      new Histogram("kestrel_inference_seconds", "Model session run time by model", LATENCY_BUCKETS),
    ),
    shed: registry.add(
      new Counter("kestrel_detect_shed_total", "Requests refused 503 because their model's queue was full"),
    ),
    queue: registry.add(
      new Gauge(
        "kestrel_inference_queue_depth",
        "Requests queued for a model session (--max-queue each)",
        () => [
          [{}, pool.queueDepth()],
        ],
      ),
    ),
    active: registry.add(
      new Gauge(
        "kestrel_model_active",
        "Active model versions (1 per served name)",
        () =>
          pool.list().map((m) => [
            { name: m.ref.name, version: String(m.ref.version), backend: m.backend },
            1,
          ]),
      ),
    ),
  };
}

export type ServerMetrics = ReturnType<typeof createServerMetrics>;

/** Methods counted by name; any other token a client sends (HTTP allows any) counts as `other`. */
const METHODS = new Set(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]);

/**
 * The declared route pattern a request matched (`/v1/models/:name/detect`), or `unmatched`: middleware-only
 * matches (`app.use`, method ALL) do not count, so a request refused before its route (a cross-site write, a
 * bad Host) is still labelled with its route when it has one.
 */
export function routeLabel(c: Context): string {
  return matchedRoutes(c).findLast((r) => r.method !== "ALL")?.path ?? "unmatched";
}

/**
 * Counts every request by its route pattern (not the raw path) and a method from a fixed set, so a client
 * cannot add series: the labels are bounded by the routes this app declares.
 */
export function metricsMiddleware(metrics: ServerMetrics): MiddlewareHandler {
  return async function recordMetrics(c, next) {
    const start = performance.now();
    await next();
    const route = routeLabel(c);
    const method = METHODS.has(c.req.method) ? c.req.method : "other";
    metrics.requests.inc({ method, route, status: String(c.res.status) });
    if (c.error instanceof ModelOverloadedError) metrics.shed.inc({ model: c.error.model });
    metrics.latency.observe((performance.now() - start) / 1000, { route });
  };
}

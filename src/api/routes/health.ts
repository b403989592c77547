import { createRoute, z } from "@hono/zod-openapi";
import type { RouteModule } from "../app.ts";
import { error, json } from "../openapi_responses.ts";

const StatusSchema = z.object({ status: z.string() }).openapi("Status");

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  summary: "Liveness: the process answers",
  responses: { 200: json(StatusSchema, "Alive") },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  summary: "Readiness: every configured model is loaded",
  responses: {
    200: json(StatusSchema, "Ready"),
    503: error("Still loading"),
  },
});

const metrics = createRoute({
  method: "get",
  path: "/metrics",
  summary: "Prometheus metrics (text exposition format)",
  responses: { 200: { description: "Metrics", content: { "text/plain": { schema: z.string() } } } },
});

export const healthRoutes: RouteModule = (app, ctx) => {
  app.openapi(healthz, (c) => c.json({ status: "ok" }, 200));
  app.openapi(
    readyz,
    (c) =>
      ctx.isReady()
        ? c.json({ status: "ready" }, 200)
        : c.json({ error: { code: "not_ready", message: "Models are still loading" } }, 503),
  );
  app.openapi(
    metrics,
    (c) =>
      c.text(ctx.metrics.registry.render(), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      }),
  );
};

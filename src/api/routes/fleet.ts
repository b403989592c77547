/**
 * `GET /v1/fleet` (mounted with `--nats` only): the fleet's nodes as their presence records say (name, last
 * seen, backend, adapter, jobs on/off, served versions, lag behind the registry KV); `GET /v1/fleet/jobs`: every
 * fleet job's shared state, from any node; and the fleet gauges on /metrics: `kestrel_fleet_connected` and
 * `kestrel_fleet_kv_lag`.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { FleetJobSchema } from "../../fleet/job_state.ts";
import { NodeInfoSchema } from "../../fleet/presence.ts";
import { ApiError } from "../errors.ts";
import { ErrorSchema, named } from "../schemas.ts";
import { Gauge } from "../metrics.ts";
import type { RouteModule } from "../app.ts";

const FleetReportSchema = z.object({
  fleet: z.string(),
  node: z.string().openapi({ description: "The node answering" }),
  connected: z.boolean().openapi({ description: "Whether this node reaches NATS now" }),
  kv_lag: z.number().int().openapi({ description: "Registry KV revisions this node has not applied yet" }),
  problems: z.record(z.string(), z.string()).openapi({
    description: "Models this node cannot follow, with the reason (it keeps serving what it has)",
  }),
  nodes: z.array(named(NodeInfoSchema, "FleetNode")).openapi({
    description: "Every node's latest record (this node's own only while NATS is unreachable)",
  }),
}).openapi("Fleet");

const route = createRoute({
  method: "get",
  path: "/v1/fleet",
  summary: "The fleet's nodes: last seen, backend, adapter, jobs on/off, served versions, KV lag",
  responses: {
    200: { description: "The fleet", content: { "application/json": { schema: FleetReportSchema } } },
  },
});

const jobsRoute = createRoute({
  method: "get",
  path: "/v1/fleet/jobs",
  summary:
    "Every fleet job's shared state: the node it runs or ran on, attempts, progress, checkpoint, result",
  responses: {
    200: {
      description: "Fleet jobs, oldest first",
      content: {
        "application/json": { schema: z.object({ jobs: z.array(named(FleetJobSchema, "FleetJob")) }) },
      },
    },
    503: { description: "NATS is unreachable", content: { "application/json": { schema: ErrorSchema } } },
  },
});

export const fleetRoutes: RouteModule = (app, ctx) => {
  const fleet = ctx.fleet;
  if (!fleet) return;
  ctx.metrics.registry.add(
    new Gauge("kestrel_fleet_connected", "1 while this node reaches the fleet's NATS server", () => [
      [{ fleet: fleet.options.fleet, node: fleet.options.node }, fleet.connected ? 1 : 0],
    ]),
  );
  ctx.metrics.registry.add(
    new Gauge("kestrel_fleet_kv_lag", "Registry KV revisions this node has not applied yet", () => [
      [{ fleet: fleet.options.fleet, node: fleet.options.node }, fleet.lag],
    ]),
  );
  app.openapi(route, async (c) => c.json(await fleet.report(), 200));
  app.openapi(jobsRoute, async (c) => {
    const jobs = await fleet.jobs().catch((err) => {
      throw new ApiError(
        503,
        "unavailable",
        `The fleet's job state cannot be read: ${(err as Error).message}`,
      );
    });
    if (jobs === null) throw new ApiError(503, "unavailable", "The fleet (NATS) is not connected");
    return c.json({ jobs }, 200);
  });
};

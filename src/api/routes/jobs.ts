/**
 * Fine-tune job routes: list, one job, its server-sent event stream, and cancel. The job record is the job
 * service's own (src/jobs/types.ts), so the API, the SSE stream and the dashboard show the same fields. The
 * upload that creates a job is in finetune.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { type Job, JobSchema, JobStatusSchema } from "../../jobs/types.ts";
import type { RouteModule } from "../app.ts";
import { requireMutationAuth } from "../middleware/auth.ts";
import { InflightLimit } from "../middleware/inflight.ts";
import { BEARER_SECURITY, error, json, MUTATION_AUTH_ERRORS } from "../openapi_responses.ts";
import { named } from "../schemas.ts";

export const JobResponseSchema = named(JobSchema, "Job");
/**
 * A fleet node's jobs: its own records and the fleet's (`shared`, null while NATS is down), oldest first, each
 * job once. A job posted here is in both: its own record, with where it runs and how often it started from the
 * fleet's state, which alone knows.
 */
function withFleet(own: Job[], shared: Job[] | null): Job[] {
  if (shared === null) return own;
  const fleetById = new Map(shared.map((j) => [j.id, j]));
  const merged = own.map((j) => {
    const fleet = fleetById.get(j.id);
    fleetById.delete(j.id);
    return fleet ? { ...j, node: fleet.node, attempts: fleet.attempts } : j;
  });
  return [...merged, ...fleetById.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Interval of the keep-alive comment on event streams: under the 30-60 s idle timeouts of common proxies. */
export const SSE_KEEP_ALIVE_MS = 15_000;

const JobParamsSchema = z.object({
  id: z.string().min(1).openapi({ param: { name: "id", in: "path" }, example: "0b6c1c5e-..." }),
});

const listRoute = createRoute({
  method: "get",
  path: "/v1/jobs",
  summary: "Fine-tune jobs, oldest first",
  request: {
    query: z.object({
      model: z.string().optional().openapi({ description: "Only this model's jobs" }),
      status: JobStatusSchema.optional().openapi({ description: "Only jobs in this status" }),
    }),
  },
  responses: { 200: json(z.object({ jobs: z.array(JobResponseSchema) }).openapi("JobList"), "Jobs") },
});

const getRoute = createRoute({
  method: "get",
  path: "/v1/jobs/{id}",
  summary: "One job: status, epoch and iteration of total, loss items, lr, images/s, ETA, metrics, result",
  request: { params: JobParamsSchema },
  responses: { 200: json(JobResponseSchema, "The job"), 404: error("Unknown job") },
});

const eventsRoute = createRoute({
  method: "get",
  path: "/v1/jobs/{id}/events",
  summary: "Server-sent events of one job: its current state, then every status change and progress report",
  description: 'Each event is named `status` or `progress`; its data is `{"type", "job"}` with the whole ' +
    "job record. The stream ends after the job's final status (succeeded, failed or cancelled). A slow " +
    "reader gets the newest progress, never a backlog; status changes are always delivered. A `: keep-alive` " +
    `comment line is sent every ${
      SSE_KEEP_ALIVE_MS / 1000
    } s so proxies keep the stream open. On a fleet node ` +
    "a job posted on another node streams from the fleet's shared state.",
  request: { params: JobParamsSchema },
  responses: {
    200: {
      description: "An event stream",
      content: { "text/event-stream": { schema: z.string() } },
    },
    404: error("Unknown job"),
    429: error("More event streams open than --max-event-streams (`overloaded`); see Retry-After"),
  },
});

export const jobRoutes: RouteModule = (app, ctx) => {
  const jobs = ctx.jobs;
  if (!jobs) return;
  const fleet = ctx.fleet;
  const guard = requireMutationAuth({ apiKey: ctx.apiKey });
  // Each stream holds a connection, a subscription and a timer for as long as its job runs (hours).
  const streams = new InflightLimit(ctx.maxEventStreams, "open event streams");

  const cancelRoute = createRoute({
    method: "delete",
    path: "/v1/jobs/{id}",
    summary: "Cancel a job: a queued one at once, a running one between two iterations",
    middleware: [guard] as const,
    security: BEARER_SECURITY,
    request: { params: JobParamsSchema },
    responses: {
      200: json(JobResponseSchema, "Cancelled"),
      202: json(JobResponseSchema, "Running: it stops after the current iteration (follow its events)"),
      ...MUTATION_AUTH_ERRORS,
      404: error("Unknown job"),
      409: error("The job already finished"),
    },
  });

  app.openapi(listRoute, async (c) => {
    const { model, status } = c.req.valid("query");
    const all = fleet ? withFleet(jobs.list(), await fleet.jobRecords().catch(() => null)) : jobs.list();
    const listed = all.filter((j) =>
      (model === undefined || j.model === model) && (status === undefined || j.status === status)
    );
    return c.json({ jobs: listed }, 200);
  });

  app.openapi(getRoute, async (c) => {
    const { id } = c.req.valid("param");
    const shared = await fleet?.jobRecord(id);
    if (!shared) return c.json(jobs.get(id), 200);
    const local = jobs.list().find((j) => j.id === id);
    return c.json(local ? withFleet([local], [shared])[0] : shared, 200);
  });

  app.openapi(cancelRoute, async (c) => {
    const job = await jobs.cancel(c.req.valid("param").id);
    return job.status === "cancelled" ? c.json(job, 200) : c.json(job, 202);
  });

  app.openapi(eventsRoute, async (c) => {
    const { id } = c.req.valid("param");
    // A job posted here streams from the job service; one posted on another fleet node from the fleet's state.
    const here = jobs.list().some((j) => j.id === id);
    if (!here && !await fleet?.jobRecord(id)) jobs.get(id); // an unknown job answers 404 before the stream opens
    const release = streams.tryAcquire();
    if (!release) return streams.refusal();
    // Ends the stream when the client goes away or the server shuts down (which waits for open responses).
    const stop = new AbortController();
    const signals = [stop.signal, ctx.shutdown, c.req.raw.signal];
    const signal = AbortSignal.any(signals);
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => stop.abort());
      // A queued job, or one in a long validation, can be silent for minutes and proxies close a silent
      // response; EventSource ignores comment lines.
      const keepAlive = setInterval(() => void stream.write(": keep-alive\n\n"), ctx.sseKeepAliveMs);
      try {
        let seq = 0;
        for await (const event of here ? jobs.events(id, signal) : fleet!.jobEvents(id, signal)) {
          await stream.writeSSE({ event: event.type, id: String(seq++), data: JSON.stringify(event) });
        }
      } finally {
        clearInterval(keepAlive);
        release();
      }
    });
  });
};

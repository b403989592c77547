import { AsyncLocalStorage } from "node:async_hooks";
import type { MiddlewareHandler } from "hono";
import { requestId } from "hono/request-id";
import type { Logger } from "../log.ts";
import { routeLabel } from "./metrics.ts";

/** The longest client-sent `x-request-id` kept; a longer one (or one with other than [A-Za-z0-9_=-]) is replaced. */
export const MAX_REQUEST_ID_LENGTH = 128;

/** The model version a request ran on, noted by the detect path for the request's log line. */
interface RequestModel {
  model?: string;
  version?: number;
}

const current = new AsyncLocalStorage<RequestModel>();

/** Notes the model version the current request runs on (a no-op outside a logged request). */
export function noteRequestModel(model: string, version: number): void {
  const note = current.getStore();
  if (note) Object.assign(note, { model, version });
}

/** The request id of a request `requestLog` saw (set as Hono's `requestId` variable). */
export function requestIdOf(c: { get(key: "requestId"): unknown }): string | undefined {
  const id = c.get("requestId");
  return typeof id === "string" ? id : undefined;
}

/**
 * Gives every request an id, the client's `x-request-id` when it is a sane token, else a fresh UUID, echoed in
 * the response's `x-request-id` so a client can quote it; then logs one line per request with its id, method,
 * route pattern (not the raw path: a client cannot fill the log with made-up paths), model and version, status
 * and duration; at error level when the server failed.
 */
export function requestLog(log: Logger): MiddlewareHandler[] {
  return [
    requestId({ limitLength: MAX_REQUEST_ID_LENGTH, headerName: "x-request-id" }),
    async function logRequest(c, next) {
      const start = performance.now();
      const note: RequestModel = {};
      await current.run(note, next);
      const status = c.res.status;
      // A 503 is a deliberate refusal (loading, draining, overload), not a failure of the server.
      (status >= 500 && status !== 503 ? log.error : log.info)("request", {
        request_id: requestIdOf(c),
        method: c.req.method,
        route: routeLabel(c),
        model: note.model,
        version: note.version,
        status,
        duration_ms: Math.round((performance.now() - start) * 10) / 10,
      });
    },
  ];
}

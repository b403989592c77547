/**
 * The DeepStack and KServe v2 routes answer errors in their own families' shapes (their clients parse those),
 * while everything upstream (readiness, body limits, validation, onError, notFound) writes the app's
 * `{"error": {"code", "message"}}`. One middleware per path prefix rewrites those answers on the way out, so
 * every error under the prefix, whoever raised it, reaches the client in the family's shape and as JSON.
 */
import type { MiddlewareHandler } from "hono";

/** A family's error body from the HTTP status, the message and the app's error code. */
export type ErrorShape = (status: number, message: string, code: string) => unknown;

export function reshapeErrors(shape: ErrorShape): MiddlewareHandler {
  return async function foreignErrors(c, next) {
    await next();
    const { status } = c.res;
    if (status < 400) return;
    const parsed = await c.res.clone().json().catch(() => null) as
      | { error?: { code?: unknown; message?: unknown } }
      | null;
    const message = typeof parsed?.error?.message === "string" ? parsed.error.message : `HTTP ${status}`;
    const code = typeof parsed?.error?.code === "string" ? parsed.error.code : "http_error";
    const headers = new Headers(c.res.headers);
    headers.delete("content-length");
    headers.set("content-type", "application/json");
    // Cleared first: assigning over a response merges the old one's headers into the new one.
    c.res = undefined;
    c.res = new Response(JSON.stringify(shape(status, message, code)), { status, headers });
  };
}

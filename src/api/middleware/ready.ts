import type { MiddlewareHandler } from "hono";
import { ApiError } from "../errors.ts";

/**
 * Answers 503 until `isReady()` (models loaded), so clients and load balancers retry instead of failing; and
 * 503 `shutting_down` once `isDraining()` (SIGTERM: the requests in flight finish, no new ones start).
 */
export function readiness(
  isReady: () => boolean,
  isDraining: () => boolean = () => false,
): MiddlewareHandler {
  return async function requireReady(_c, next) {
    if (isDraining()) throw new ApiError(503, "shutting_down", "The server is shutting down; retry shortly");
    if (!isReady()) throw new ApiError(503, "not_ready", "Models are still loading; retry shortly");
    await next();
  };
}

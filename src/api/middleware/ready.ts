import type { MiddlewareHandler } from "hono";
import { ApiError } from "../errors.ts";

/** Answers 503 until `isReady()` (models loaded), so clients and load balancers retry instead of failing. */
export function readiness(isReady: () => boolean): MiddlewareHandler {
  return async function requireReady(_c, next) {
    if (!isReady()) throw new ApiError(503, "not_ready", "Models are still loading; retry shortly");
    await next();
  };
}

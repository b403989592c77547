import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ImageError, type ImageErrorKind } from "../image/errors.ts";
import { type Logger, WARNINGS_TO_STDERR } from "./log.ts";
import { requestIdOf } from "./middleware/request_log.ts";
import { ModelOverloadedError } from "../serving/session_queue.ts";
import { InferenceWorkerError } from "../serving/backends/native_workers.ts";
import { JobRequestError, type JobRequestErrorCode } from "../jobs/errors.ts";
import { RegistryError, type RegistryErrorCode } from "../registry/errors.ts";

/** An error that reaches the client as `{"error": {"code", "message"}}` with `status`. */
export class ApiError extends Error {
  constructor(readonly status: ContentfulStatusCode, readonly code: string, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

const IMAGE_STATUS: Record<ImageErrorKind, ContentfulStatusCode> = {
  unsupported_media_type: 415,
  undecodable_image: 422,
  image_too_large: 413,
};

const REGISTRY_STATUS: Record<RegistryErrorCode, ContentfulStatusCode> = {
  not_found: 404,
  conflict: 409,
  invalid_model: 422,
  too_large: 413,
  invalid_name: 400,
  unavailable: 503,
};

const JOB_STATUS: Record<JobRequestErrorCode, [ContentfulStatusCode, string]> = {
  not_found: [404, "job_not_found"],
  conflict: [409, "conflict"],
  invalid: [400, "invalid_request"],
  unavailable: [503, "unavailable"],
  busy: [429, "too_many_requests"],
  insufficient_storage: [507, "insufficient_storage"],
};

const HTTP_CODES: Partial<Record<number, string>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  415: "unsupported_media_type",
  503: "not_ready",
};

/** Seconds a shed detect request is told to wait: a full queue of 16 drains in about that on the native engine. */
const SHED_RETRY_AFTER_S = 1;

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/**
 * The app's one onError: known errors (the API's own, image, overload, a crashed inference worker, registry and
 * job service refusals) keep their status and code; a busy job service, a full model queue or a crashed worker
 * also tells the client when to retry; anything else is a logged 500.
 */
export function handleError(err: Error, c: Context, log: Logger = WARNINGS_TO_STDERR): Response {
  if (err instanceof ApiError) return c.json(errorBody(err.code, err.message), err.status);
  if (err instanceof ImageError) return c.json(errorBody(err.kind, err.message), IMAGE_STATUS[err.kind]);
  if (err instanceof ModelOverloadedError) {
    return c.json(errorBody("overloaded", err.message), 503, { "retry-after": String(SHED_RETRY_AFTER_S) });
  }
  if (err instanceof InferenceWorkerError) {
    // The worker is replaced at once: a retry finds a working one.
    return c.json(errorBody("inference_unavailable", err.message), 503, {
      "retry-after": String(SHED_RETRY_AFTER_S),
    });
  }
  if (err instanceof RegistryError) {
    return c.json(errorBody(err.code, err.message), REGISTRY_STATUS[err.code]);
  }
  if (err instanceof JobRequestError) {
    const [status, code] = JOB_STATUS[err.code];
    if (err.retryAfterSeconds !== undefined) c.header("retry-after", String(err.retryAfterSeconds));
    return c.json(errorBody(code, err.message), status);
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    return c.json(errorBody(HTTP_CODES[status] ?? "http_error", err.message || `HTTP ${status}`), status);
  }
  log.error(`${c.req.method} ${c.req.path} failed`, {
    request_id: requestIdOf(c),
    error: err.stack ?? String(err),
  });
  return c.json(errorBody("internal_error", "Internal server error"), 500);
}

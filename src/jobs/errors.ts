/**
 * The one error type the job service throws for a bad request, so the API edge can map it to a status
 * (`not_found` 404, `conflict` 409, `invalid` 400, `unavailable` 503: shutting down, retry elsewhere or
 * later; `busy` 429: too many uploads or queued jobs, retry after `retryAfterSeconds`; `insufficient_storage`
 * 507: the data dir's disk is nearly full). Everything else is a plain Error (a 500).
 * @module
 */
export type JobRequestErrorCode =
  | "not_found"
  | "conflict"
  | "invalid"
  | "unavailable"
  | "busy"
  | "insufficient_storage";

export class JobRequestError extends Error {
  override name = "JobRequestError";

  /** `retryAfterSeconds`: when a `busy` request is worth trying again. */
  constructor(readonly code: JobRequestErrorCode, message: string, readonly retryAfterSeconds?: number) {
    super(message);
  }
}

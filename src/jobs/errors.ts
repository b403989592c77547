/**
 * The one error type the job service throws for a bad request, so the API edge can map it to a status
 * (`not_found` 404, `conflict` 409, `invalid` 400, `unavailable` 503: shutting down, retry elsewhere or
 * later). Everything else is a plain Error (a 500).
 * @module
 */
export type JobRequestErrorCode = "not_found" | "conflict" | "invalid" | "unavailable";

export class JobRequestError extends Error {
  override name = "JobRequestError";

  constructor(readonly code: JobRequestErrorCode, message: string) {
    super(message);
  }
}

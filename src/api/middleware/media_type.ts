import type { Context, MiddlewareHandler } from "hono";
import { errorBody } from "../errors.ts";

/** The request's media type, lower case without parameters ("" when there is no Content-Type). */
export function mediaType(c: Context): string {
  return (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
}

/**
 * Answers 415 to a body whose Content-Type is not one of `types` (the ones the route documents), before the
 * body is read. Besides clear errors, this closes the "simple request" door: a cross-site page can send
 * `text/plain`, `multipart/form-data` or a form encoding without a CORS preflight, but not `application/json`
 * or `application/octet-stream`. `orNone`: a body without Content-Type is taken as octet-stream too (as RFC
 * 9110 8.3 lets a recipient assume); a browser page cannot send one cross-site unnoticed, since it sends Origin.
 */
export function acceptMediaTypes(
  types: readonly string[],
  options: { orNone?: boolean } = {},
): MiddlewareHandler {
  return async function requireMediaType(c, next) {
    const type = mediaType(c);
    if (!types.includes(type) && !(options.orNone && type === "")) {
      return c.json(
        errorBody(
          "unsupported_media_type",
          `Content-Type '${type || "(none)"}' is not accepted here; send ${types.join(" or ")}`,
        ),
        415,
      );
    }
    await next();
  };
}

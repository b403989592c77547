import type { MiddlewareHandler } from "hono";

/**
 * Headers on every response: no page may frame the dashboard or the docs (clickjacking a button that uploads
 * or activates a model), and browsers must not guess a type other than the one sent (a downloaded model or an
 * error body rendered as HTML). Only `frame-ancestors` is in the policy: the pages' own scripts stay as they are.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": "frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
};

export function securityHeaders(): MiddlewareHandler {
  return async function setSecurityHeaders(c, next) {
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.header(name, value);
  };
}

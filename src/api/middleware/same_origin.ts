/**
 * Refuses cross-site writes. A page open in the operator's browser can send "simple" requests (a form POST, a
 * `text/plain` fetch) to any address without a CORS preflight, and the browser attaches no key but the server
 * sees a loopback client. Browsers say where a request comes from: `Sec-Fetch-Site` (anything but
 * `same-origin`, or `none` for one the user typed) and `Origin` (a host other than the one requested, or
 * `null`). Clients that are not browsers send neither and are not affected. Only unsafe methods are checked:
 * GET, HEAD and OPTIONS change nothing.
 */
import type { MiddlewareHandler } from "hono";
import { errorBody } from "../errors.ts";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const SAME_SITE_FETCH = new Set(["same-origin", "none"]);
const DEFAULT_PORT: Record<string, string> = { "http:": "80", "https:": "443" };

/** Whether `origin` (an `Origin` header) names the same host and port as `host` (a `Host` header). */
export function isSameOrigin(origin: string, host: string): boolean {
  let from: URL;
  let to: URL;
  try {
    from = new URL(origin);
    to = new URL(`${from.protocol}//${host}`);
  } catch {
    return false; // "null" (sandboxed frames, file: pages) and junk
  }
  // A TLS proxy in front changes the scheme but not the host; ports compare with the scheme's default filled in.
  const port = (u: URL) => u.port || DEFAULT_PORT[u.protocol];
  return from.origin !== "null" && from.hostname === to.hostname && port(from) === port(to);
}

/** Answers 403 `cross_site` to an unsafe request a browser sent from another site. */
export function refuseCrossSite(): MiddlewareHandler {
  return async function requireSameOrigin(c, next) {
    if (SAFE_METHODS.has(c.req.method)) return await next();
    const site = c.req.header("sec-fetch-site");
    const origin = c.req.header("origin");
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    if (site !== undefined && !SAME_SITE_FETCH.has(site.toLowerCase())) {
      return c.json(errorBody("cross_site", `Cross-site request refused (Sec-Fetch-Site: ${site})`), 403);
    }
    if (origin !== undefined && !isSameOrigin(origin, host)) {
      return c.json(errorBody("cross_site", `Cross-site request refused (Origin: ${origin})`), 403);
    }
    await next();
  };
}

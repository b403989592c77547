/**
 * Guards mutating routes (upload, activate, delete, fine-tune, job cancel). With an API key (`--api-key` or
 * `KESTREL_API_KEY` or `--api-key-file`) a request needs `Authorization: Bearer <key>`, compared in constant
 * time; without one only loopback clients may mutate, so a server started without a key is not writable from
 * the network. Loopback is not an access boundary behind a same-host proxy, tunnel or sidecar (every client
 * arrives from 127.0.0.1): there an API key is required. Requests that carry proxy headers are therefore
 * refused without a key, but a proxy that adds none cannot be told apart.
 *
 * @example
 * ```ts
 * const guard = requireMutationAuth({ apiKey: settings.apiKey });
 * app.post("/v1/models/:name", guard, handler);
 * ```
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";

export interface AuthOptions {
  /** The shared key; null or empty means "loopback clients only". */
  apiKey: string | null | undefined;
}

/** The key from `--api-key`, else the KESTREL_API_KEY environment variable, else null. */
export function resolveApiKey(flag: string | undefined): string | null {
  const key = flag ?? Deno.env.get("KESTREL_API_KEY");
  return key ? key : null;
}

/** Headers a reverse proxy adds; a loopback request with one came from somewhere else. */
const PROXY_HEADERS = ["forwarded", "x-forwarded-for", "x-real-ip"];

/**
 * Middleware enforcing {@link AuthOptions}; answers 401 (bad or missing key) or 403 (no key, and a remote
 * client or a proxied one).
 */
export function requireMutationAuth(options: AuthOptions): MiddlewareHandler {
  const expected = options.apiKey ? new TextEncoder().encode(options.apiKey) : null;
  return async function mutationAuth(c, next) {
    if (expected) {
      const match = /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "");
      if (!match || !(await constantTimeEqual(new TextEncoder().encode(match[1]), expected))) {
        c.header("WWW-Authenticate", 'Bearer realm="kestrel"');
        return c.json({
          error: { code: "unauthorized", message: "Missing or wrong Authorization: Bearer key" },
        }, 401);
      }
    } else if (!isLoopback(remoteAddress(c))) {
      return c.json({
        error: {
          code: "forbidden",
          message:
            "This server has no API key, so only loopback clients may change it; start it with --api-key-file",
        },
      }, 403);
    } else if (PROXY_HEADERS.some((h) => c.req.header(h) !== undefined)) {
      return c.json({
        error: {
          code: "forbidden",
          message: "This request came through a proxy and the server has no API key: behind a proxy every " +
            "client looks like loopback, so start the server with --api-key-file",
        },
      }, 403);
    }
    await next();
  };
}

/** Deno.serve passes its ServeHandlerInfo as Hono's env; app.request() without env counts as remote. */
function remoteAddress(c: Context): string | undefined {
  const addr = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
  return addr?.hostname;
}

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.x. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return v4.startsWith("127.") || address === "::1";
}

/**
 * Equal-time comparison: both sides are hashed first so the work and the final comparison do not depend on
 * where the inputs differ or on the key's length.
 */
async function constantTimeEqual(a: Uint8Array, b: Uint8Array): Promise<boolean> {
  const [ha, hb] = await Promise.all(
    [a, b].map(async (x) =>
      new Uint8Array(await crypto.subtle.digest("SHA-256", x as Uint8Array<ArrayBuffer>))
    ),
  );
  let diff = 0;
  for (let i = 0; i < ha.length; i++) diff |= ha[i] ^ hb[i];
  return diff === 0;
}

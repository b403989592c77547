/**
 * `--detect-needs-key`: detection (every API family) then needs the server's API key. Without the flag
 * detection stays open, as reading does, and only mutating routes need the key (middleware/auth.ts). A key may
 * come as `Authorization: Bearer <key>` or, for DeepStack clients, which only know it, as the form field
 * `api_key`.
 */
import { timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import type { RouteContext } from "./app.ts";
import { ApiError } from "./errors.ts";

/** The Bearer token of `c`, if any. */
export function bearerKey(c: Context): string | undefined {
  return /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "")?.[1];
}

/**
 * Throws 401 when detection needs the key and none of `presented` is it; with the flag but no key (startServer
 * refuses that) nothing gets through.
 */
export async function checkDetectKey(ctx: RouteContext, presented: (string | undefined)[]): Promise<void> {
  if (!ctx.detectNeedsKey) return;
  const expected = ctx.apiKey;
  if (expected !== null) {
    for (const key of presented) if (key !== undefined && (await sameKey(key, expected))) return;
  }
  throw new ApiError(401, "unauthorized", "Detection needs the API key (Authorization: Bearer <key>)");
}

/** Middleware form of {@link checkDetectKey} for routes whose clients send the Bearer header. */
export function requireDetectKey(ctx: RouteContext): MiddlewareHandler {
  return async function detectKey(c, next) {
    await checkDetectKey(ctx, [bearerKey(c)]);
    await next();
  };
}

/** Compares SHA-256 digests in constant time, so neither where the keys differ nor their lengths show. */
async function sameKey(a: string, b: string): Promise<boolean> {
  const digest = async (s: string) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s)));
  return timingSafeEqual(await digest(a), await digest(b));
}

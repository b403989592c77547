import type { MiddlewareHandler } from "hono";
import { errorBody } from "../errors.ts";

/** Seconds a refused client is told to wait: about one detect on a software backend. */
export const RETRY_AFTER_S = 1;

/** A count of requests in flight with a ceiling; {@link limitInflight} and event streams share its rules. */
export class InflightLimit {
  private count = 0;
  constructor(readonly max: number, readonly what: string) {}

  /** Takes a slot, or returns null when all `max` are taken. The release is idempotent. */
  tryAcquire(): (() => void) | null {
    if (this.count >= this.max) return null;
    this.count++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.count--;
    };
  }

  get inflight(): number {
    return this.count;
  }

  /** The 429 a refused request gets, in the API's error shape, with Retry-After. */
  refusal(): Response {
    return Response.json(
      errorBody("overloaded", `Too many ${this.what} at once (limit ${this.max}); retry shortly`),
      { status: 429, headers: { "retry-after": String(RETRY_AFTER_S) } },
    );
  }
}

/**
 * Holds a slot of `limit` from the request's arrival (its body upload included: a slow upload holds memory as
 * much as a running inference) until the handler has answered.
 */
export function limitInflight(limit: InflightLimit): MiddlewareHandler {
  return async function boundInflight(_c, next) {
    const release = limit.tryAcquire();
    if (!release) return limit.refusal();
    try {
      await next();
    } finally {
      release();
    }
  };
}

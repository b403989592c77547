/**
 * Counts requests between their arrival and their response, so a shutdown can wait for them before closing the
 * listener: Deno's `server.shutdown()` lets handlers finish but cuts off a request body still being uploaded, so
 * a detect whose image was half-sent when SIGTERM came would fail with a 500.
 */
export class RequestTracker {
  private count = 0;
  private idle: PromiseWithResolvers<void> | null = null;

  /** `handler`, counted while it runs (a streamed response counts until its headers are returned). */
  wrap<A extends unknown[]>(
    handler: (req: Request, ...rest: A) => Response | Promise<Response>,
  ): (req: Request, ...rest: A) => Promise<Response> {
    return async (req, ...rest) => {
      this.count++;
      try {
        return await handler(req, ...rest);
      } finally {
        if (--this.count === 0 && this.idle) {
          this.idle.resolve();
          this.idle = null;
        }
      }
    };
  }

  /** Requests being handled now. */
  get inFlight(): number {
    return this.count;
  }

  /** Resolves once no request is being handled. */
  settled(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    this.idle ??= Promise.withResolvers<void>();
    return this.idle.promise;
  }
}

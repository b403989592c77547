/**
 * Waiting in tests for something another process or task does: one bounded polling loop instead of a copy per
 * test file.
 * @module
 */

/** Pause between probes by default: short next to what tests wait for (a node joining, a job ending). */
const DEFAULT_POLL_MS = 100;

export interface PollOptions {
  /** pause between probes */
  pollMs?: number;
  /** a probe that throws counts as "not yet" (a server still starting), and the last error is in the timeout's
   * message; by default a throw ends the wait */
  retryErrors?: boolean;
}

/**
 * Probes until `probe` gives a value other than null and returns it; throws, naming `what`, when none came within
 * `waitMs` (the probe runs at least once, and once more after the deadline).
 */
export async function until<T>(
  what: string,
  waitMs: number,
  probe: () => Promise<T | null> | T | null,
  options: PollOptions = {},
): Promise<T> {
  const deadline = Date.now() + waitMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value !== null) return value;
    } catch (err) {
      if (!options.retryErrors) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const last = options.retryErrors ? ` (last error: ${lastError})` : "";
      throw new Error(`timed out after ${waitMs} ms waiting for ${what}${last}`);
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? DEFAULT_POLL_MS));
  }
}

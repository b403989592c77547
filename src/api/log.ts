/**
 * The server's one logger: every line goes to stderr (systemd's journal under the unit), as human-readable
 * `kestrel: <msg> key=value ...` text or as one JSON object per line (`--log-format json`) for a log shipper.
 */
import type { LogFormat } from "../config/server.ts";

const LEVELS = { info: 0, warn: 1, error: 2 } as const;
export type LogLevel = keyof typeof LEVELS;

/** Machine-readable details of a line; undefined values are left out. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  /** Where a finished line goes (default stderr); tests collect lines. */
  write?: (line: string) => void;
  /** Lines below this level are dropped (default info: everything). */
  minLevel?: LogLevel;
}

/** A text value is quoted when it holds a space, a quote or `=`, so `key=value` pairs stay splittable. */
function textValue(value: string | number | boolean | null): string {
  const s = String(value);
  return /[\s"=]/.test(s) || s === "" ? JSON.stringify(s) : s;
}

export function createLogger(format: LogFormat, options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string) => console.error(line));
  const min = LEVELS[options.minLevel ?? "info"];
  const line = (level: LogLevel, msg: string, fields: LogFields = {}) => {
    if (LEVELS[level] < min) return;
    const defined = Object.entries(fields).filter(([, v]) => v !== undefined) as [
      string,
      string | number | boolean | null,
    ][];
    if (format === "json") {
      write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...Object.fromEntries(defined) }));
      return;
    }
    const pairs = defined.map(([k, v]) => ` ${k}=${textValue(v)}`).join("");
    write(`kestrel: ${level === "info" ? "" : `${level}: `}${msg}${pairs}`);
  };
  return {
    info: (msg, fields) => line("info", msg, fields),
    warn: (msg, fields) => line("warn", msg, fields),
    error: (msg, fields) => line("error", msg, fields),
  };
}

/** The logger of an app given none (tests, the bench): warnings and errors as text on stderr, no request lines. */
export const WARNINGS_TO_STDERR: Logger = createLogger("text", { minLevel: "warn" });

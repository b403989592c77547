/**
 * Refuses requests whose `Host` is not a name this server answers to, against DNS rebinding: a page from
 * `evil.example` whose name is re-pointed at 127.0.0.1 reaches this server as same-origin to itself, with
 * `Host: evil.example`. Allowed: the listen address; loopback names when listening on loopback; any IP literal
 * when listening on every interface (an IP cannot be rebound); and `--allowed-hosts` (`*` allows any).
 * The port is not compared: the rebinding page uses the server's own port anyway.
 */
import type { MiddlewareHandler } from "hono";
import { errorBody } from "../errors.ts";

export interface HostCheckOptions {
  /** `--host`: the address the server listens on. */
  listenHost: string;
  /** `--allowed-hosts`, lower case; `*` turns the check off. */
  allowedHosts: readonly string[];
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];
const WILDCARDS = ["0.0.0.0", "::"];
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** The host name of a `Host` header value (brackets of IPv6 literals removed), or null when it is not one. */
export function hostName(header: string): string | null {
  try {
    const url = new URL(`http://${header}`);
    // A header like "a/b" or "a@b" parses to another host; only a bare host[:port] is a host.
    if (url.host !== header.toLowerCase() && `${url.host}:80` !== header.toLowerCase()) return null;
    return url.hostname.replace(/^\[(.*)\]$/, "$1");
  } catch {
    return null;
  }
}

/** Whether a request to `name` (from {@link hostName}) is for this server. */
export function isAllowedHost(name: string, options: HostCheckOptions): boolean {
  const listen = options.listenHost.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (options.allowedHosts.includes("*") || options.allowedHosts.includes(name) || name === listen) {
    return true;
  }
  const loopbackListen = LOOPBACK_NAMES.includes(listen) || listen.startsWith("127.");
  const wildcardListen = WILDCARDS.includes(listen);
  if ((loopbackListen || wildcardListen) && LOOPBACK_NAMES.includes(name)) return true;
  return wildcardListen && (IPV4.test(name) || name.includes(":"));
}

/** Answers 421 `misdirected_host` to a request whose Host (or, without one, URL host) is not allowed. */
export function checkHost(options: HostCheckOptions): MiddlewareHandler {
  return async function requireKnownHost(c, next) {
    const header = c.req.header("host") ?? new URL(c.req.url).host;
    const name = hostName(header);
    if (name === null || !isAllowedHost(name, options)) {
      return c.json(
        errorBody(
          "misdirected_host",
          `This server does not answer to the host name '${header}'; ` +
            "add it to --allowed-hosts if it is how clients reach this server",
        ),
        421,
      );
    }
    await next();
  };
}

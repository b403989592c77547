/**
 * Debian's nats-server with JetStream on a loopback port, for the fleet tests and the fleet_propagation bench:
 * started as a child process, stopped with SIGTERM (then SIGKILL after a grace period), restartable on the same
 * port and store. Serving never starts one: a fleet's NATS server is run by the site.
 * @module
 */
import { join } from "node:path";

export const NATS_SERVER = ["/usr/sbin/nats-server", "/usr/bin/nats-server"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}) ?? null;

/** Why the fleet tests are skipped, or null when they can run. */
export const NO_NATS = NATS_SERVER ? null : "nats-server is not installed (Debian package nats-server)";

/** Bound on nats-server accepting connections after start. */
const START_TIMEOUT_MS = 10_000;
/** Grace period between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 3_000;

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

export class NatsServer {
  private child: Deno.ChildProcess | null = null;
  readonly url: string;

  private constructor(readonly port: number, readonly storeDir: string) {
    this.url = `nats://127.0.0.1:${port}`;
  }

  /** A server on a free port with its JetStream store under `dir`. */
  static async start(dir: string): Promise<NatsServer> {
    const server = new NatsServer(freePort(), join(dir, "jetstream"));
    await server.restart();
    return server;
  }

  /** Start (again) on the same port and store. */
  async restart(): Promise<void> {
    if (this.child) throw new Error("nats-server is running");
    this.child = new Deno.Command(NATS_SERVER!, {
      args: ["-js", "-a", "127.0.0.1", "-p", String(this.port), "-sd", this.storeDir],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (true) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          throw new Error(`nats-server did not listen within ${START_TIMEOUT_MS} ms: ${err}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    await child.status;
    clearTimeout(killer);
  }
}

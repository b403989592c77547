/** A real Kestrel server on a free loopback port serving the embedded default model, for client-level tests. */
import { type RunningServer, startServer } from "../../../src/api/server.ts";
import { ServerConfigSchema } from "../../../src/config/server.ts";

export interface LoopbackServer {
  server: RunningServer;
  close(): Promise<void>;
}

/** Starts the server (native backend, a fresh data dir) and waits until its models are loaded. */
export async function startLoopbackServer(
  flags: Partial<Record<string, unknown>> = {},
): Promise<LoopbackServer> {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-loopback-" });
  let server: RunningServer | undefined;
  try {
    server = await startServer(
      ServerConfigSchema.parse({ host: "127.0.0.1", port: 0, backend: "native", dataDir, ...flags }),
    );
    await server.ready;
  } catch (err) {
    await server?.shutdown();
    await Deno.remove(dataDir, { recursive: true });
    throw err;
  }
  const running = server;
  return {
    server: running,
    async close() {
      await running.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

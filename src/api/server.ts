import { createApp } from "./app.ts";
import { resolveApiKey } from "./middleware/auth.ts";
import { loadActiveModels, openServingRegistry } from "./registry_wiring.ts";
import { DEFAULT_MODEL_PATH, type ServerConfig } from "../config/server.ts";
import { ModelPool } from "../serving/pool.ts";
import { selectBackend } from "../serving/select.ts";

/** A running server: its address, and how to stop it (tests and the bench start one on a free port). */
export interface RunningServer {
  url: string;
  pool: ModelPool;
  ready: Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Starts listening at once (so /healthz answers and /readyz says 503 while loading), then loads every model.
 * A model that fails to load stops the server: serving a subset silently would hide the mistake.
 */
export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const { backend, reason } = await selectBackend(config.backend);
  console.error(`kestrel: backend ${backend.name} (${reason})`);
  const pool = new ModelPool(backend, config.imgsz);
  const registry = await openServingRegistry(config, pool);
  let ready = false;
  const app = createApp({
    pool,
    isReady: () => ready,
    maxBodyBytes: config.maxBodyBytes,
    maxPixels: config.maxPixels,
    registry,
    apiKey: resolveApiKey(config.apiKey),
  });
  const server = Deno.serve({ hostname: config.host, port: config.port, onListen: () => {} }, app.fetch);
  const { hostname, port } = server.addr;
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  const loading = (async () => {
    for (const ref of await loadActiveModels(registry, pool, config.models, DEFAULT_MODEL_PATH)) {
      console.error(`kestrel: serving ${ref.name} v${ref.version} from ${config.dataDir} on ${backend.name}`);
    }
    ready = true;
  })();
  return {
    url,
    pool,
    ready: loading,
    async shutdown() {
      await server.shutdown();
      await loading.catch(() => {});
      await pool.close();
    },
  };
}

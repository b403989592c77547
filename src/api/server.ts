import { createApp } from "./app.ts";
import { type DataDirLock, lockDataDir } from "./data_dir_lock.ts";
import { openJobs, registryTrainer } from "./jobs_wiring.ts";
import { resolveApiKey } from "./middleware/auth.ts";
import { loadActiveModels, openServingRegistry } from "./registry_wiring.ts";
import { DEFAULT_MODEL_PATH, type ServerConfig } from "../config/server.ts";
import { Fleet } from "../fleet/fleet.ts";
import { probeGpu } from "../fleet/gpu_probe.ts";
import type { JobService } from "../jobs/service.ts";
import type { Trainer } from "../jobs/types.ts";
import { FsStore } from "../registry/fs_store.ts";
import type { Registry } from "../registry/registry.ts";
import { ModelPool } from "../serving/pool.ts";
import { selectBackend } from "../serving/select.ts";

/** A running server: its address, and how to stop it (tests and the bench start one on a free port). */
export interface RunningServer {
  url: string;
  pool: ModelPool;
  jobs: JobService;
  /** The fleet membership with --nats, else null. */
  fleet: Fleet | null;
  ready: Promise<void>;
  shutdown(): Promise<void>;
}

export interface ServerOptions {
  /** The fine-tune trainer (default: the WGSL trainer on the server's registry); tests pass a double. */
  trainer?: (registry: Registry) => Trainer;
}

const log = (message: string) => console.error(`kestrel: ${message}`);

/**
 * Starts listening at once (so /healthz answers and /readyz says 503 while loading), then loads every model.
 * A model that fails to load stops the server: serving a subset silently would hide the mistake. Fine-tune jobs
 * in the data dir are loaded at once and train once the models are loaded; shutdown stops them so the next start
 * resumes them.
 */
export async function startServer(config: ServerConfig, options: ServerOptions = {}): Promise<RunningServer> {
  const lock = await lockDataDir(config.dataDir);
  try {
    return await listen(config, options, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function listen(
  config: ServerConfig,
  options: ServerOptions,
  lock: DataDirLock,
): Promise<RunningServer> {
  const { backend, reason } = await selectBackend(config.backend);
  console.error(`kestrel: backend ${backend.name} (${reason})`);
  const pool = new ModelPool(backend, config.imgsz);
  const stopping = new AbortController();
  const fleet = config.nats ? await joinFleet(config, backend.name, stopping.signal) : null;
  const registry = await openServingRegistry(config, pool, fleet?.wrapStore(new FsStore(config.dataDir)));
  let ready = false;
  // Resolved only when every model loaded: after a failed start, resumed jobs stay `running` for the next one.
  const loaded = Promise.withResolvers<void>();
  const localTrainer = (options.trainer ?? ((r) => registryTrainer(r, log)))(registry);
  const trainer = fleet ? fleet.jobTrainer(localTrainer) : localTrainer;
  const jobs = await openJobs(config.dataDir, trainer, loaded.promise, log);
  const apiKey = resolveApiKey(config.apiKey);
  if (config.detectNeedsKey && apiKey === null) {
    throw new Error("--detect-needs-key needs a key: --api-key or KESTREL_API_KEY");
  }
  const app = createApp({
    pool,
    isReady: () => ready,
    maxBodyBytes: config.maxBodyBytes,
    maxPixels: config.maxPixels,
    registry,
    apiKey,
    jobs,
    maxDatasetBytes: config.maxDatasetBytes,
    maxTrainMemoryBytes: config.maxTrainMemoryBytes,
    shutdown: stopping.signal,
    listenHost: config.host,
    allowedHosts: config.allowedHosts,
    maxInflightDetect: config.maxInflightDetect,
    maxEventStreams: config.maxEventStreams,
    deepstackModel: config.deepstackModel ?? null,
    detectNeedsKey: config.detectNeedsKey,
    fleet,
  });
  const server = Deno.serve({ hostname: config.host, port: config.port, onListen: () => {} }, app.fetch);
  const { hostname, port } = server.addr;
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  const loading = (async () => {
    for (const ref of await loadActiveModels(registry, pool, config.models, DEFAULT_MODEL_PATH)) {
      console.error(`kestrel: serving ${ref.name} v${ref.version} from ${config.dataDir} on ${backend.name}`);
    }
    fleet?.start(registry);
    ready = true;
    loaded.resolve();
  })();
  return {
    url,
    pool,
    jobs,
    fleet,
    ready: loading,
    async shutdown() {
      // Event streams end and trainers stop between iterations; their jobs stay `running` and resume next start.
      stopping.abort();
      await jobs.close();
      await fleet?.close();
      await server.shutdown();
      await loading.catch(() => {});
      await pool.close();
      lock.release();
    },
  };
}

/** --nats: this node's fleet membership (connecting happens later, in the background). */
async function joinFleet(config: ServerConfig, backend: string, shutdown: AbortSignal): Promise<Fleet> {
  const gpu = await probeGpu();
  const options = {
    servers: config.nats!,
    credsFile: config.natsCreds,
    caFile: config.natsCa,
    fleet: config.fleet,
    node: config.node ?? Deno.hostname(),
    jobs: config.jobs,
    hardwareGpu: gpu?.hardware === true,
    dataDir: config.dataDir,
    shutdown,
    backend,
    adapter: gpu?.name ?? null,
  };
  return new Fleet(options, log);
}

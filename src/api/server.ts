import { createApp } from "./app.ts";
import { type DataDirLock, lockDataDir } from "./data_dir_lock.ts";
import { guardedPublish } from "./forgetting_guard.ts";
import { openJobs, registryTrainer } from "./jobs_wiring.ts";
import { createLogger, type Logger } from "./log.ts";
import { resolveApiKey } from "./middleware/auth.ts";
import { loadActiveModels, openServingRegistry } from "./registry_wiring.ts";
import { RequestTracker } from "./request_tracker.ts";
import { ServeBudget } from "./serve_budget.ts";
import { CaptureService } from "../capture/service.ts";
import { previousVersionOpinion } from "./previous_version.ts";
import { DEFAULT_MODEL_PATH, type ServerConfig } from "../config/server.ts";
import { Fleet } from "../fleet/fleet.ts";
import { probeGpu } from "../fleet/gpu_probe.ts";
import type { JobService } from "../jobs/service.ts";
import type { Trainer } from "../jobs/types.ts";
import { FsStore } from "../registry/fs_store.ts";
import { defaultImageDecoder } from "../image/decode.ts";
import type { Registry } from "../registry/registry.ts";
import { ModelPool } from "../serving/pool.ts";
import { type BackendSelection, selectBackend } from "../serving/select.ts";
import { defaultModelCheck, selfTestBackend } from "../selftest/startup.ts";

/** A running server: its address, and how to stop it (tests and the bench start one on a free port). */
export interface RunningServer {
  url: string;
  pool: ModelPool;
  jobs: JobService;
  /** The fleet membership with --nats, else null. */
  fleet: Fleet | null;
  ready: Promise<void>;
  /** Why the server serves on `pool.backend`: the selection and its startup self-test (also in /v1/models). */
  backendReason: string;
  /**
   * Stops accepting connections, lets requests in flight finish and running fine-tunes checkpoint the iteration
   * they are at and stop (their jobs resume there at the next start), for at most `config.drainSeconds`, then
   * releases everything. Resolves true when everything finished in time.
   */
  shutdown(): Promise<boolean>;
}

export interface ServerOptions {
  /** The fine-tune trainer (default: the WGSL trainer on the server's registry); tests pass a double. */
  trainer?: (registry: Registry) => Trainer;
  /** Where the server logs (default: stderr in `config.logFormat`). */
  log?: Logger;
  /** The inference backend instead of `selectBackend(config.backend)`; tests inject a failing one. */
  backend?: BackendSelection;
}

/**
 * Self-tests the inference backend (a GPU that fails is replaced by the CPU: see selftest/startup.ts), starts
 * listening at once (so /healthz answers and /readyz says 503 while loading), then loads every model.
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
  const log = options.log ?? createLogger(config.logFormat);
  const selection = options.backend ?? await selectBackend(config.backend);
  const { backend, reason, passed } = await selfTestBackend(selection, await defaultModelCheck());
  (passed ? log.info : log.error)(`backend ${backend.name} (${reason})`, { backend: backend.name });
  log.info(`jpeg decoder ${defaultImageDecoder().jpegDecoder}`);
  const pool = new ModelPool(backend, config.imgsz, undefined, config.maxQueue);
  const stopping = new AbortController();
  const fleet = config.nats
    ? await joinFleet(config, backend.name, stopping.signal, (message) => log.info(message))
    : null;
  const registry = await openServingRegistry(config, pool, fleet?.wrapStore(new FsStore(config.dataDir)));
  let ready = false;
  // Set by shutdown: /readyz says 503 and new /v1 requests get 503 shutting_down while those in flight finish.
  let draining = false;
  // Resolved only when every model loaded: after a failed start, resumed jobs stay `running` for the next one.
  const loaded = Promise.withResolvers<void>();
  const logLine = (message: string) => log.info(message);
  const capture = await CaptureService.open(config.dataDir, logLine);
  capture.useSecondOpinion(previousVersionOpinion(registry, backend, config.imgsz));
  fleet?.replicateCaptures(capture.store);
  const publish = guardedPublish(registry, capture, backend, logLine);
  const serveBudget = config.serveBudgetMs > 0 ? new ServeBudget(config.serveBudgetMs) : null;
  serveBudget?.start();
  const localTrainer = (options.trainer ?? ((r) => registryTrainer(r, logLine, publish, serveBudget?.flag)))(
    registry,
  );
  const trainer = fleet ? fleet.jobTrainer(localTrainer) : localTrainer;
  const jobs = await openJobs({
    dataDir: config.dataDir,
    trainer,
    registry,
    ready: loaded.promise,
    limits: {
      maxConcurrentUploads: config.maxConcurrentUploads,
      maxQueuedJobs: config.maxQueuedJobs,
      minFreeBytes: config.minFreeBytes,
    },
    log: logLine,
  });
  const apiKey = resolveApiKey(config.apiKey);
  if (config.detectNeedsKey && apiKey === null) {
    throw new Error("--detect-needs-key needs a key: --api-key or KESTREL_API_KEY");
  }
  const app = createApp({
    pool,
    isReady: () => ready && !draining,
    isDraining: () => draining,
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
    log,
    backendReason: reason,
    capture,
    serveBudget,
    fleet,
  });
  const requests = new RequestTracker();
  const server = Deno.serve(
    { hostname: config.host, port: config.port, onListen: () => {} },
    requests.wrap(app.fetch),
  );
  const { hostname, port } = server.addr;
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  const loading = (async () => {
    for (const ref of await loadActiveModels(registry, pool, config.models, DEFAULT_MODEL_PATH)) {
      log.info(`serving ${ref.name} v${ref.version} from ${config.dataDir} on ${backend.name}`, {
        model: ref.name,
        version: ref.version,
      });
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
    backendReason: reason,
    async shutdown() {
      // New requests get 503 at once and event streams end; requests in flight finish, then the listener closes
      // (new connections are refused) and trainers checkpoint the iteration in flight and stop: their jobs stay
      // `running` and resume at the next start from that checkpoint.
      draining = true;
      stopping.abort();
      serveBudget?.stop();
      // Jobs close after the requests: a fine-tune upload in flight is accepted (and resumes next start) rather
      // than refused by a closed job service.
      // A fleet node's running job checkpoints and goes back to the fleet from the start of the drain: it waits
      // for no request.
      const drained = Promise.all([
        requests.settled().then(() => Promise.all([server.shutdown(), jobs.close({ checkpoint: true })])),
        fleet?.drain(),
      ]).then(() => true);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), config.drainSeconds * 1000);
      });
      const finished = await Promise.race([drained, deadline]);
      clearTimeout(timer);
      if (!finished) {
        log.warn(`drain: work still in flight after ${config.drainSeconds} s; stopping without it`, {
          requests: requests.inFlight,
        });
        // Closes the listener (cutting the stragglers' uploads) and stops the trainers at once (a checkpoint not
        // saved by now is not used: the previous one stays whole); neither is awaited, so a handler stuck for
        // good cannot hold the exit. A fleet job still saving is handed back at once by fleet.close() below.
        server.shutdown().catch(() => {});
        jobs.close().catch(() => {});
      }
      // Frames already answered and queued are written before the data dir is let go.
      await capture.idle();
      await fleet?.close();
      await loading.catch(() => {});
      await pool.close();
      lock.release();
      return finished;
    },
  };
}

/** --nats: this node's fleet membership (connecting happens later, in the background). */
async function joinFleet(
  config: ServerConfig,
  backend: string,
  shutdown: AbortSignal,
  log: (message: string) => void,
): Promise<Fleet> {
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

import { DataDirInUseError } from "../api/data_dir_lock.ts";
import { createLogger } from "../api/log.ts";
import { startServer } from "../api/server.ts";
import { parseServerArgs, type ServerConfig } from "../config/server.ts";

/**
 * `deno task start`: serve until SIGTERM or SIGINT, then drain (see RunningServer.shutdown) and exit 0, also when
 * the drain ran out of time: what was cut off is logged, and the jobs it stopped resume at the next start.
 */
export async function run(args: string[]): Promise<number> {
  let config: ServerConfig;
  try {
    config = parseServerArgs(args);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const log = createLogger(config.logFormat);
  // Listened for before the server starts, so a signal during startup (models loading) also drains cleanly.
  const stop = Promise.withResolvers<Deno.Signal>();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => stop.resolve(signal));
  }
  let server;
  try {
    server = await startServer(config, { log });
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    log.error(err.message);
    return 1;
  }
  log.info(`listening on ${server.url}`, { url: server.url });
  const loaded = await Promise.race([server.ready.then(() => null, (err: Error) => err), stop.promise]);
  if (loaded instanceof Error) {
    log.error(`cannot load models: ${loaded.message}`);
    await server.shutdown();
    return 1;
  }
  const signal = await stop.promise;
  log.info(`${signal}: shutting down, draining for up to ${config.drainSeconds} s`);
  const drained = await server.shutdown();
  log.info(drained ? "stopped" : "stopped after the drain limit");
  return 0;
}

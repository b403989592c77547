import { DataDirInUseError } from "../api/data_dir_lock.ts";
import { startServer } from "../api/server.ts";
import { parseServerArgs, type ServerConfig } from "../config/server.ts";

/** `deno task start`: serve until interrupted. */
export async function run(args: string[]): Promise<number> {
  let config: ServerConfig;
  try {
    config = parseServerArgs(args);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  let server;
  try {
    server = await startServer(config);
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    console.error(`kestrel: ${err.message}`);
    return 1;
  }
  console.error(`kestrel: listening on ${server.url}`);
  try {
    await server.ready;
  } catch (err) {
    console.error(`kestrel: cannot load models: ${(err as Error).message}`);
    await server.shutdown();
    return 1;
  }
  const stop = new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => resolve());
  });
  await stop;
  console.error("kestrel: shutting down");
  await server.shutdown();
  return 0;
}

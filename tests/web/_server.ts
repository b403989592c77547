// A real Kestrel server in a child process on a free loopback port, as an operator would start it.
const ROOT = new URL("../../", import.meta.url);
const READY_TIMEOUT_MS = 120_000;

export interface RunningServer {
  base: string;
  close(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Starts `main.ts serve` with `args` and resolves once /readyz answers 200; the log goes to `logPath`. */
export async function startServer(args: string[], logPath: string): Promise<RunningServer> {
  const port = freePort();
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-web-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "serve",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--data-dir",
      dataDir,
      ...args,
    ],
    cwd: ROOT,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log = await Deno.open(logPath, { write: true, create: true, truncate: true });
  const pumps = [child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream) await log.write(chunk);
  });
  const base = `http://127.0.0.1:${port}`;
  const close = async () => {
    try {
      child.kill("SIGTERM");
    } catch (err) {
      if (!(err instanceof TypeError)) throw err; // already exited
    }
    await child.status;
    await Promise.all(pumps);
    log.close();
    await Deno.remove(dataDir, { recursive: true });
  };
  // A server that exits (a missing model file, a taken port) fails the test at once, not after the timeout.
  const exit: { status?: Deno.CommandStatus } = {};
  child.status.then((status) => exit.status = status);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exit.status) {
      const { code } = exit.status;
      await close();
      throw new Error(`Server exited with code ${code} before it was ready; see ${logPath}`);
    }
    try {
      const res = await fetch(`${base}/readyz`);
      await res.body?.cancel();
      if (res.ok) return { base, close };
    } catch (err) {
      if (!(err instanceof TypeError)) throw err; // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await close();
  throw new Error(`Server on ${base} not ready within ${READY_TIMEOUT_MS} ms; see ${logPath}`);
}

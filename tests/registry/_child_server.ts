// `main.ts serve` in a child process on a given data dir, for tests that kill it with SIGKILL or read its RSS.
const ROOT = new URL("../../", import.meta.url);
const READY_TIMEOUT_MS = 120_000;

export interface ChildServer {
  base: string;
  pid: number;
  /** Everything the server wrote to stderr so far. */
  log(): string;
  /** kill -9, as a crash or power cut would. */
  kill(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

export interface ChildOptions {
  /** The script and its first arguments (default `main.ts serve`); it must log `listening on URL` as serve does. */
  entry?: string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Starts the server on a free port with `args` and resolves once /readyz answers 200. */
export async function startChild(
  dataDir: string,
  args: string[],
  options: ChildOptions = {},
): Promise<ChildServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(options.entry ?? ["main.ts", "serve"]),
      "--port",
      "0",
      "--data-dir",
      dataDir,
      "--backend",
      "native",
      ...args,
    ],
    cwd: ROOT,
    env: options.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const listening = Promise.withResolvers<string>();
  const pump = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const m = /listening on (http:\/\/\S+)/.exec(text);
      if (m) listening.resolve(m[1]);
    }
    listening.reject(new Error(`server exited before listening:\n${text}`));
  })();
  const end = async (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch (err) {
      if (!(err instanceof TypeError)) throw err; // already exited
    }
    await child.status;
    await pump;
  };
  const server: ChildServer = {
    base: "",
    pid: child.pid,
    log: () => text,
    kill: () => end("SIGKILL"),
    stop: () => end("SIGTERM"),
  };
  try {
    server.base = await listening.promise;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const res = await fetch(`${server.base}/readyz`);
      await res.body?.cancel();
      if (res.ok) return server;
      if (Date.now() > deadline) throw new Error(`server not ready after ${READY_TIMEOUT_MS} ms:\n${text}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await server.kill();
    throw err;
  }
}

/** Resident set size of a process in bytes (Linux /proc). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!kb) throw new Error(`No VmRSS in /proc/${pid}/status`);
  return Number(kb[1]) * 1024;
}

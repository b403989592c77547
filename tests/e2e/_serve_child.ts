// A `main.ts serve` child on a free loopback port (the bundled default model unless `--model` is given), its
// stderr collected line by line, resolved once every model is ready; `reap` SIGKILLs it if it outlives the grace
// period. `serveOn` runs it on a data dir the test keeps (a restart on the same data), `serve` on a fresh one.

const ROOT = new URL("../../", import.meta.url);
/** Startup (self-test, default model load) on a loaded 2-core box. */
const READY_MS = 120_000;
/** A server still running this long after the test's SIGTERM is SIGKILLed. */
const KILL_GRACE_MS = 30_000;

export interface Child {
  port: number;
  url: string;
  child: Deno.ChildProcess;
  log: string[];
  /** Resolves when a log line matches. */
  line(pattern: RegExp): Promise<string>;
  dataDir: string;
  /** whether `reap` removes the data dir (it was made for this child) */
  ownsDataDir: boolean;
}

export async function serve(...args: string[]): Promise<Child> {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-serve-child-" });
  return { ...await serveOn(dataDir, ...args), ownsDataDir: true };
}

export async function serveOn(dataDir: string, ...args: string[]): Promise<Child> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "serve",
      "--port",
      "0",
      "--backend",
      "native",
      "--data-dir",
      dataDir,
      ...args,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  (async () => {
    let pending = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop()!;
      for (const l of lines) {
        log.push(l);
        for (const w of waiters.filter((w) => w.pattern.test(l))) w.resolve(l);
      }
    }
  })();
  const line = (pattern: RegExp) => {
    const seen = log.find((l) => pattern.test(l));
    if (seen) return Promise.resolve(seen);
    const found = Promise.withResolvers<string>();
    const timer = setTimeout(
      () => found.reject(new Error(`no log line ${pattern} in time:\n${log.join("\n")}`)),
      READY_MS,
    );
    waiters.push({ pattern, resolve: found.resolve });
    return found.promise.finally(() => clearTimeout(timer));
  };
  const url = (await line(/listening on http:\/\/[^\s"]+/)).match(/listening on (http:\/\/[^\s"]+)/)![1];
  for (const deadline = Date.now() + READY_MS; await readyStatus(url) !== 200;) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`models not ready in time:\n${log.join("\n")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { port: Number(new URL(url).port), url, child, log, line, dataDir, ownsDataDir: false };
}

async function readyStatus(url: string): Promise<number> {
  const res = await fetch(`${url}/readyz`);
  await res.body?.cancel();
  return res.status;
}

/** SIGTERMs the child, then reaps it. */
export async function stop(s: Child): Promise<void> {
  try {
    s.child.kill("SIGTERM");
  } catch { /* already exited */ }
  await reap(s);
}

/** SIGKILLs the child if it has not exited within the grace period, then removes its data dir if it owns it. */
export async function reap(s: Child): Promise<void> {
  const timer = setTimeout(() => {
    try {
      s.child.kill("SIGKILL");
    } catch { /* already exited */ }
  }, KILL_GRACE_MS);
  await s.child.status;
  clearTimeout(timer);
  if (s.ownsDataDir) await Deno.remove(s.dataDir, { recursive: true });
}

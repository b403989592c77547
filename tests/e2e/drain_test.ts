// SIGTERM on a real `main.ts serve` child: the listener closes at once, a request in flight still gets its
// answer, and the process exits 0 within --drain-seconds (issue 15). Uses only the bundled default model.
import assert from "node:assert/strict";
import sharp from "sharp";

const ROOT = new URL("../../", import.meta.url);
/** Startup (self-test, default model load) on a loaded 2-core box. */
const READY_MS = 120_000;
/** After the drain: closing the pool and the data-dir lock, and the process exit. */
const EXIT_MARGIN_MS = 5_000;
/** A server still running this long after the test's SIGTERM is SIGKILLed. */
const KILL_GRACE_MS = 30_000;

interface Child {
  port: number;
  child: Deno.ChildProcess;
  log: string[];
  /** Resolves when a log line matches. */
  line(pattern: RegExp): Promise<string>;
  dataDir: string;
}

async function serve(...args: string[]): Promise<Child> {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-drain-" });
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
    return new Promise<string>((resolve, reject) => {
      waiters.push({ pattern, resolve });
      setTimeout(() => reject(new Error(`no log line ${pattern} in time:\n${log.join("\n")}`)), READY_MS);
    });
  };
  const url = (await line(/listening on http:\/\/\S+/)).match(/listening on (http:\/\/\S+)/)![1];
  await line(/serving default v1/);
  return { port: Number(new URL(url).port), child, log, line, dataDir };
}

/** SIGKILLs the child if it has not exited within the grace period, then removes its data dir. */
async function reap(s: Child): Promise<void> {
  const timer = setTimeout(() => {
    try {
      s.child.kill("SIGKILL");
    } catch { /* already exited */ }
  }, KILL_GRACE_MS);
  await s.child.status;
  clearTimeout(timer);
  await Deno.remove(s.dataDir, { recursive: true });
}

/** Starts a detect over raw HTTP and sends only the first `sent` bytes of its body. */
async function startUpload(port: number, body: Uint8Array, sent: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = [
    "POST /v1/models/default/detect HTTP/1.1",
    "Host: 127.0.0.1",
    "Content-Type: image/png",
    `Content-Length: ${body.length}`,
    "Connection: close",
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(head));
  await conn.write(body.subarray(0, sent));
  return conn;
}

async function pngImage(): Promise<Uint8Array> {
  const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: "#808080" } }).png()
    .toBuffer();
  return new Uint8Array(png);
}

Deno.test({
  name: "SIGTERM mid-upload: new requests get 503, the request in flight gets its 200, the server exits 0",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s = await serve();
    try {
      const body = await pngImage();
      const conn = await startUpload(s.port, body, body.length >> 1);
      // Answered on another connection before the signal: the server has accepted the upload's connection too.
      assert.equal((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status, 200);
      const signalled = Date.now();
      s.child.kill("SIGTERM");
      await s.line(/SIGTERM: shutting down/);
      // While the request in flight finishes, a new one is turned away at once, in the family's error shape.
      const late = await fetch(`http://127.0.0.1:${s.port}/v1/models`);
      assert.equal(late.status, 503);
      assert.equal((await late.json()).error.code, "shutting_down");
      assert.equal(
        (await fetch(`http://127.0.0.1:${s.port}/readyz`)).status,
        503,
        "load balancers stop sending",
      );
      await conn.write(body.subarray(body.length >> 1));
      const answer = await new Response(conn.readable).text();
      assert.match(answer, /^HTTP\/1\.1 200 /, `${answer}\n${s.log.join("\n")}`);
      assert.ok(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)).detections);
      const status = await s.child.status;
      assert.equal(status.code, 0, s.log.join("\n"));
      assert.ok(Date.now() - signalled < 10_000 + EXIT_MARGIN_MS, "exited within the default 10 s drain");
      assert.ok(s.log.some((l) => l.endsWith("kestrel: stopped")), s.log.join("\n"));
    } finally {
      await reap(s);
    }
  },
});

Deno.test({
  name: "a request that does not finish within --drain-seconds is cut off and the server still exits 0",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const drainSeconds = 1;
    const s = await serve("--drain-seconds", String(drainSeconds));
    let conn: Deno.TcpConn | undefined;
    try {
      const body = await pngImage();
      conn = await startUpload(s.port, body, body.length >> 1); // the rest never comes
      assert.equal((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status, 200);
      const signalled = Date.now();
      s.child.kill("SIGTERM");
      const status = await s.child.status;
      const took = Date.now() - signalled;
      assert.equal(status.code, 0, s.log.join("\n"));
      assert.ok(took >= drainSeconds * 1000, `exited after ${took} ms, before the drain limit`);
      assert.ok(took < drainSeconds * 1000 + EXIT_MARGIN_MS, `exited after ${took} ms`);
      assert.ok(
        s.log.some((l) => l.includes("warn: drain: work still in flight after 1 s")),
        s.log.join("\n"),
      );
    } finally {
      conn?.close();
      await reap(s);
    }
  },
});

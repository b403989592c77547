// SIGTERM on a real `main.ts serve` child: new requests get 503 at once, a request in flight still gets its
// answer, then the listener closes and the process exits 0 within --drain-seconds (issue 15).
import assert from "node:assert/strict";
import sharp from "sharp";
import { reap, serve } from "./_serve_child.ts";

/** After the drain: closing the pool and the data-dir lock, and the process exit. */
const EXIT_MARGIN_MS = 5_000;

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

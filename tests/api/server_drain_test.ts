// RunningServer.shutdown() in process: what a request arriving during the drain gets, and that a fine-tune
// upload in flight when the drain starts is accepted, not refused by a job service already closed.
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { startServer } from "../../src/api/server.ts";
import { parseServerArgs } from "../../src/config/server.ts";
import { TestTrainer } from "../jobs/_test_trainer.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

Deno.test({
  name: "during the drain new requests get 503 shutting_down while a fine-tune upload in flight gets its 202",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-server-drain-" });
    await Deno.writeFile(join(dir, "tiny.onnx"), tinyYolo());
    const server = await startServer(
      parseServerArgs([
        "--port",
        "0",
        "--backend",
        "native",
        "--data-dir",
        join(dir, "data"),
        "--model",
        join(dir, "tiny.onnx"),
      ]),
      { trainer: () => new TestTrainer() },
    );
    let conn: Deno.TcpConn | undefined;
    try {
      await server.ready;
      const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: "#1478c8" } }).png()
        .toBuffer();
      const body = new TextEncoder().encode(JSON.stringify({
        config: { epochs: 1 },
        images: [{ name: "a.png", data: png.toString("base64"), labels: [[0, 0.5, 0.5, 0.3, 0.3]] }],
      }));
      const half = body.length >> 1;
      conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(server.url).port) });
      await conn.write(new TextEncoder().encode([
        "POST /v1/models/tiny/finetune HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        `Content-Length: ${body.length}`,
        "Connection: close",
        "",
        "",
      ].join("\r\n")));
      await conn.write(body.subarray(0, half));
      // Answered on another connection before the drain: the upload's connection is in the server too.
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);

      const stopped = server.shutdown();
      const late = await fetch(`${server.url}/v1/models`);
      assert.equal(late.status, 503);
      assert.equal((await late.json()).error.code, "shutting_down");
      assert.equal((await fetch(`${server.url}/readyz`)).status, 503);

      await conn.write(body.subarray(half));
      const answer = await new Response(conn.readable).text();
      conn = undefined;
      assert.match(answer, /^HTTP\/1\.1 202 /, answer);
      const job = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      assert.equal(await stopped, true, "drained within the default 10 s");
      // Stopped by the shutdown, not failed: the next start resumes it.
      assert.ok(
        ["queued", "running"].includes(server.jobs.get(job.id).status),
        server.jobs.get(job.id).status,
      );
    } finally {
      conn?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

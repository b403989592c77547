// The Host and cross-site checks on a real listening server (what a browser or a rebinding page actually
// reaches), with raw HTTP/1.1 so the Host header is the one given: fetch() always sends the URL's own host.
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../../src/api/server.ts";
import { ServerConfigSchema } from "../../src/config/server.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

interface RawAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/** Sends one raw request (`Connection: close`) and reads the whole answer. */
async function raw(port: number, head: string[], body = ""): Promise<RawAnswer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const text = [...head, `Content-Length: ${body.length}`, "Connection: close", "", body].join("\r\n");
  await conn.write(new TextEncoder().encode(text));
  const answer = await new Response(conn.readable).text();
  const [top, ...rest] = answer.split("\r\n\r\n");
  const [status, ...lines] = top.split("\r\n");
  const headers = new Headers(
    lines.map((l): [string, string] => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]),
  );
  return { status: Number(status.split(" ")[1]), headers, body: rest.join("\r\n\r\n") };
}

Deno.test({
  name: "a listening server answers 421 to a rebound Host and 403 to a cross-site write, and serves its own",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-server-security-" });
    const model = join(dir, "tiny.onnx");
    await Deno.writeFile(model, tinyYolo({ seed: 4 }));
    const config = ServerConfigSchema.parse({
      port: 0,
      backend: "native",
      models: [model],
      dataDir: join(dir, "data"),
      allowedHosts: ["kestrel.lan"],
    });
    const server = await startServer(config);
    try {
      await server.ready;
      const port = Number(new URL(server.url).port);
      const rebound = await raw(port, ["GET /v1/models HTTP/1.1", `Host: evil.example:${port}`]);
      assert.equal(rebound.status, 421, rebound.body);
      assert.equal(JSON.parse(rebound.body).error.code, "misdirected_host");
      assert.equal(rebound.headers.get("x-frame-options"), "DENY");
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `kestrel.lan:${port}`]) {
        assert.equal((await raw(port, ["GET /v1/models HTTP/1.1", `Host: ${host}`])).status, 200, host);
      }
      const crossSite = await raw(port, [
        "POST /v1/models/tiny?activate=true HTTP/1.1",
        `Host: 127.0.0.1:${port}`,
        "Origin: https://evil.example",
        "Content-Type: text/plain",
      ], "not a model");
      assert.equal(crossSite.status, 403, crossSite.body);
      assert.equal(JSON.parse(crossSite.body).error.code, "cross_site");
      const versions = await (await fetch(`${server.url}/v1/models/tiny/versions`)).json();
      assert.deepEqual(versions.versions.map((v: { version: number }) => v.version), [1]);
      assert.deepEqual(versions.versions[0].source, { type: "startup", path: "tiny.onnx" });
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

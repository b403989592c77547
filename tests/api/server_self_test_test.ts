// The startup self-test inside startServer: a GPU backend that fails it is not served on.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createLogger } from "../../src/api/log.ts";
import { startServer } from "../../src/api/server.ts";
import { ServerConfigSchema } from "../../src/config/server.ts";
import { zeroOutputBackend } from "../selftest/_broken_backends.ts";

Deno.test({
  name:
    "a server whose webgpu backend fails the startup self-test serves on the CPU and says why in /v1/models",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-server-self-test-" });
    const lines: Record<string, unknown>[] = [];
    const server = await startServer(
      ServerConfigSchema.parse({ port: 0, dataDir: join(dir, "data") }),
      {
        backend: { backend: zeroOutputBackend("webgpu"), reason: "auto: hardware adapter Test GPU" },
        log: createLogger("json", { write: (l) => lines.push(JSON.parse(l)) }),
      },
    );
    try {
      await server.ready;
      assert.equal(server.pool.backend.name, "native");
      const models = await (await fetch(`${server.url}/v1/models`)).json();
      assert.equal(models.backend, "native");
      assert.equal(models.backend_reason, server.backendReason);
      assert.match(
        models.backend_reason,
        /^auto: hardware adapter Test GPU; self-test FAILED \(webgpu: found 0 of \d+ drawn shapes .*\); fell back to native, self-test passed/,
      );
      assert.deepEqual(models.models.map((m: { backend: string }) => m.backend), ["native"]);
      const startup = lines.find((l) => String(l.msg).startsWith("backend "));
      assert.equal(startup?.backend, "native");
      assert.equal(startup?.msg, `backend native (${server.backendReason})`);
    } finally {
      assert.equal(await server.shutdown(), true);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

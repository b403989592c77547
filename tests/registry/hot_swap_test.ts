import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { startServer } from "../../src/api/server.ts";
import { ServerConfigSchema } from "../../src/config/server.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const CLIENTS = 4;
const UPLOADS = 6;

interface Activation {
  version: number;
  issued: number;
  resolved: number;
}

/** Versions that may have served a request running over [start, end]: issued before it ended and not yet
 * replaced (by a resolved activation) when it started. */
function possibleVersions(timeline: Activation[], start: number, end: number): Set<number> {
  const out = new Set<number>();
  timeline.forEach((a, i) => {
    const next = timeline[i + 1];
    if (a.issued <= end && (!next || next.resolved >= start)) out.add(a.version);
  });
  return out;
}

Deno.test({
  name: "hot swaps under continuous detect load from several clients fail no request, each names its version",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-hot-swap-" });
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo({ seed: 1 }));
    const server = await startServer(ServerConfigSchema.parse({
      port: 0,
      dataDir: join(dir, "data"),
      models: [modelPath],
      backend: "native",
    }));
    try {
      await server.ready;
      const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: "#808040" } })
        .png().toBuffer();
      const timeline: Activation[] = [{ version: 1, issued: 0, resolved: 0 }];
      let stop = false;
      const failures: string[] = [];
      const served: { version: number; start: number; end: number }[] = [];
      const client = async () => {
        while (!stop) {
          const start = performance.now();
          const res = await fetch(`${server.url}/v1/models/tiny/detect`, {
            method: "POST",
            headers: { "content-type": "image/png" },
            body: image,
          });
          const body = await res.json();
          if (res.status !== 200) failures.push(`${res.status} ${JSON.stringify(body)}`);
          else served.push({ version: body.model.version, start, end: performance.now() });
        }
      };
      const clients = Array.from({ length: CLIENTS }, client);
      const swap = async (path: string, init: RequestInit, version?: number) => {
        const issued = performance.now();
        const res = await fetch(`${server.url}${path}`, init);
        const body = await res.json();
        assert.ok(res.ok, JSON.stringify(body));
        timeline.push({ version: version ?? body.version, issued, resolved: performance.now() });
      };
      for (let seed = 2; seed < 2 + UPLOADS; seed++) {
        await new Promise((r) => setTimeout(r, 30));
        await swap("/v1/models/tiny?activate=true", { method: "POST", body: tinyYolo({ seed }) });
      }
      await swap("/v1/models/tiny/activate", { // a roll back is a swap too
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ version: 3 }),
      }, 3);
      await new Promise((r) => setTimeout(r, 30));
      stop = true;
      await Promise.all(clients);

      console.log(
        JSON.stringify({ requests: served.length, versions: [...new Set(served.map((r) => r.version))] }),
      );
      assert.deepEqual(failures, []);
      assert.ok(served.length > 100, `only ${served.length} requests completed`);
      for (const r of served) {
        const allowed = possibleVersions(timeline, r.start, r.end);
        assert.ok(
          allowed.has(r.version),
          `request over ${r.start}-${r.end} got v${r.version}, allowed ${[...allowed]}`,
        );
      }
      const seen = new Set(served.map((r) => r.version));
      assert.ok(seen.size >= 4, `requests saw only versions ${[...seen]}`);
      assert.equal(served.at(-1)!.version, 3);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

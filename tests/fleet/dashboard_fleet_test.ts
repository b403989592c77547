/**
 * The dashboard's fleet panel: hidden on a box without --nats, and on a fleet node it lists every node (from
 * GET /v1/fleet) with what it serves and its detects of the last minute.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { type RunningServer, startServer } from "../../src/api/server.ts";
import { ServerConfigSchema } from "../../src/config/server.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { launchBrowser } from "../web/_browser.ts";
import { UI_TIMEOUT_MS } from "../web/_page.ts";

const NO_CHROMIUM = (() => {
  try {
    Deno.statSync("/usr/bin/chromium");
    return null;
  } catch {
    return "Chromium is not installed";
  }
})();

Deno.test({
  name: "dashboard: the fleet panel lists every node and what it serves; a lone box shows none",
  ignore: NO_NATS !== null || NO_CHROMIUM !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-ui-" });
    const nats = await NatsServer.start(dir);
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo({ seed: 1 }));
    const servers: RunningServer[] = [];
    const start = async (name: string, fleet: boolean) => {
      const server = await startServer(ServerConfigSchema.parse({
        port: 0,
        dataDir: join(dir, name),
        models: [modelPath],
        backend: "native",
        ...(fleet ? { nats: nats.url, node: name, fleet: "ui", jobs: "off" } : {}),
      }));
      servers.push(server);
      await server.ready;
      return server;
    };
    try {
      const [a] = [await start("a", true), await start("b", true)];
      const alone = await start("alone", false);
      // One detect on a: its row shows it (a's own record is read live), b's none.
      const detected = await fetch(`${a.url}/v1/models/tiny/detect`, {
        method: "POST",
        headers: { "content-type": "image/png" },
        body: await sharp({ create: { width: 32, height: 32, channels: 3, background: "#406080" } }).png()
          .toBuffer(),
      });
      assert.equal(detected.status, 200);
      await detected.body?.cancel();
      const browser = await launchBrowser(a.url);
      try {
        const page = await browser.context.newPage();
        await page.goto(`${a.url}/`);
        await page.waitForFunction(
          () => document.querySelectorAll("#fleet-nodes tbody tr").length === 2,
          undefined,
          { timeout: UI_TIMEOUT_MS },
        );
        const rows = await page.$$eval(
          "#fleet-nodes tbody tr",
          (trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)),
        );
        assert.deepEqual(rows.map((r) => [r[0], r[4], r[5]]), [["a (this node)", "off", "tiny v1"], [
          "b",
          "off",
          "tiny v1",
        ]]);
        assert.match(rows[0][7] ?? "", /^tiny v1: 1 \(\d+\.\d ms\)$/);
        assert.equal(rows[1][7], "none");
      } finally {
        await browser.close();
      }
      const lone = await launchBrowser(alone.url);
      try {
        const page = await lone.context.newPage();
        await page.goto(`${alone.url}/`);
        await page.waitForSelector("body[data-ready=true]", { timeout: UI_TIMEOUT_MS });
        assert.equal(await page.$eval("#fleet", (el) => (el as HTMLElement).hidden), true);
      } finally {
        await lone.close();
      }
    } finally {
      for (const server of servers) await server.shutdown();
      await nats.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

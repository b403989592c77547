/// <reference lib="dom" />
// The page functions below run inside Chromium, so this file also sees the DOM types.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { launchBrowser } from "./_browser.ts";
import { startServer } from "./_server.ts";

const SHARED = new URL("../../../shared/", import.meta.url);
const MODEL = new URL("models/yolov5n.onnx", SHARED).pathname;
const IMAGE = new URL("images/bus.jpg", SHARED).pathname;
const ARTIFACTS = new URL("../../test-artifacts/dashboard/", import.meta.url).pathname;
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const UI_TIMEOUT_MS = 60_000;

interface Detection {
  class_id: number;
  class_name: string;
  confidence: number;
  box: { x1: number; y1: number; x2: number; y2: number };
}

/** The detections as the page drew them: one SVG rect per box, the detection in its data attributes. */
function drawnDetections(page: Page): Promise<Detection[]> {
  return page.$$eval("#overlay rect.box", (rects) =>
    rects.map((r) => {
      const n = (k: string) => Number(r.getAttribute(`data-${k}`));
      return {
        class_id: n("class-id"),
        class_name: r.getAttribute("data-class-name") ?? "",
        confidence: n("confidence"),
        box: { x1: n("x1"), y1: n("y1"), x2: n("x2"), y2: n("y2") },
      };
    }));
}

async function apiDetect(base: string, conf: number, iou: number): Promise<{ detections: Detection[] }> {
  const res = await fetch(`${base}/v1/models/yolov5n/detect?conf=${conf}&iou=${iou}`, {
    method: "POST",
    body: await Deno.readFile(IMAGE),
    headers: { "content-type": "image/jpeg" },
  });
  assert.equal(res.status, 200);
  return await res.json();
}

/** Waits until the detect panel has answered for the current inputs (its status names the serving model). */
async function detectDone(page: Page, before: string): Promise<void> {
  await page.waitForFunction(
    (prev) => {
      const text = document.getElementById("detect-status")?.textContent ?? "";
      return text !== prev && / found by /.test(text);
    },
    before,
    { timeout: UI_TIMEOUT_MS },
  );
}

async function setSlider(page: Page, id: string, value: number): Promise<void> {
  await page.$eval(`#${id}`, (el, v) => {
    const input = el as HTMLInputElement;
    input.value = String(v);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

Deno.test({
  name: "dashboard: detect on an uploaded image draws the API's answer; docs render; phone width fits",
}, async (t) => {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  const server = await startServer(["--model", MODEL, "--backend", "native"], `${ARTIFACTS}server.log`);
  const browser = await launchBrowser(server.base);
  try {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.setViewportSize(DESKTOP);
    await page.goto(`${server.base}/`);
    await page.waitForSelector("body[data-ready=true]", { timeout: UI_TIMEOUT_MS });

    await t.step("upload bus.jpg: boxes drawn equal the API's detections", async () => {
      await page.setInputFiles("#image-file", IMAGE);
      await detectDone(page, "");
      const api = await apiDetect(server.base, 0.25, 0.45);
      assert.ok(api.detections.length > 0, "the model finds something on bus.jpg");
      assert.deepEqual(await drawnDetections(page), api.detections);
      const rows = await page.$$eval("#detections tbody tr", (trs) => trs.length);
      assert.equal(rows, api.detections.length);
      await page.screenshot({ path: `${ARTIFACTS}detect-desktop.png`, fullPage: true });
    });

    await t.step("models panel shows the registry's versions and the active one", async () => {
      const registry = await (await fetch(`${server.base}/v1/models/yolov5n/versions`)).json();
      await page.waitForSelector("article.model[data-model=yolov5n]", { timeout: UI_TIMEOUT_MS });
      const shown = await page.$eval("article.model[data-model=yolov5n]", (card) => ({
        active: Number((card as HTMLElement).dataset.active),
        versions: [...card.querySelectorAll("tbody tr")].map((tr) =>
          Number((tr as HTMLElement).dataset.version)
        ),
      }));
      assert.equal(shown.active, registry.active);
      assert.deepEqual(
        shown.versions.sort(),
        registry.versions.map((v: { version: number }) => v.version).sort(),
      );
    });

    await t.step("every control has an accessible name", async () => {
      const unnamed = await page.$$eval("input, select, button, progress", (els) =>
        els.filter((el) => {
          const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute("aria-label") ||
            el.getAttribute("aria-labelledby") || (el.tagName === "BUTTON" && el.textContent?.trim());
          return !labelled;
        }).map((el) => el.outerHTML.slice(0, 80)));
      assert.deepEqual(unnamed, []);
    });

    await t.step("raising confidence re-detects with the new threshold", async () => {
      const before = await page.textContent("#detect-status") ?? "";
      await setSlider(page, "conf", 0.6);
      await detectDone(page, before);
      const api = await apiDetect(server.base, 0.6, 0.45);
      assert.deepEqual(await drawnDetections(page), api.detections);
      assert.ok(api.detections.every((d) => d.confidence > 0.6));
    });

    await t.step("phone width: no horizontal scrolling, boxes still drawn", async () => {
      await page.setViewportSize(PHONE);
      const width = await page.evaluate(() => document.scrollingElement!.scrollWidth);
      assert.ok(width <= PHONE.width, `page is ${width}px wide at ${PHONE.width}px`);
      assert.ok((await drawnDetections(page)).length > 0);
      await page.screenshot({ path: `${ARTIFACTS}detect-phone.png`, fullPage: true });
    });

    await t.step("Swagger UI at /docs renders every route from /openapi.json", async () => {
      const doc = await (await fetch(`${server.base}/openapi.json`)).json();
      const operations = Object.values(doc.paths as Record<string, object>)
        .reduce((n, ops) => n + Object.keys(ops).length, 0);
      const docs = await browser.context.newPage();
      await docs.setViewportSize(DESKTOP);
      await docs.goto(`${server.base}/docs`);
      await docs.waitForSelector(".opblock", { timeout: UI_TIMEOUT_MS });
      assert.equal(await docs.$$eval(".opblock", (els) => els.length), operations);
      await docs.screenshot({ path: `${ARTIFACTS}docs.png`, fullPage: true });
      await docs.close();
    });

    assert.deepEqual(errors, [], "no uncaught errors in the page");
    assert.deepEqual(browser.blocked, [], "the pages load nothing from outside the server");
  } finally {
    await browser.close();
    await server.close();
  }
});

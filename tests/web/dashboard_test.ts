/// <reference lib="dom" />
// The page functions below run inside Chromium, so this file also sees the DOM types.
import assert from "node:assert/strict";
import { browserMissing, launchBrowser } from "./_browser.ts";
import { writeBadDatasetZip, writeShapesDatasetZip } from "./_dataset.ts";
import {
  detectDone,
  type Detection,
  drawnDetections,
  jobStats,
  type JobViewState,
  setSlider,
  UI_TIMEOUT_MS,
  watchJobView,
} from "./_page.ts";
import { startServer } from "./_server.ts";

// The embedded default model (served as "default"): what the detect steps use and the fine-tune steps adapt, as an
// operator would; the image is a fixture with four labelled shapes it finds.
const DEFAULT_MODEL = new URL("../../models/default.onnx", import.meta.url).pathname;
const IMAGE = new URL("../fixtures/shapes/images/shapes_0000.png", import.meta.url).pathname;
const ARTIFACTS = new URL("../../test-artifacts/dashboard/", import.meta.url).pathname;
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
// A 6-iteration job at imgsz 128 takes ~10 s on lavapipe here; the margin is for a loaded 2-core CI machine.
const FINETUNE_TIMEOUT_MS = 300_000;
const FINETUNE_FORM = {
  epochs: "3",
  batch_size: "4",
  imgsz: "128",
  freeze: "10",
  val_fraction: "0",
  lr0: "0.01",
};

async function apiDetect(base: string, conf: number, iou: number): Promise<{ detections: Detection[] }> {
  const res = await fetch(`${base}/v1/models/default/detect?conf=${conf}&iou=${iou}`, {
    method: "POST",
    body: await Deno.readFile(IMAGE),
    headers: { "content-type": "image/png" },
  });
  assert.equal(res.status, 200);
  return await res.json();
}

const NO_BROWSER = browserMissing();
if (NO_BROWSER) console.log(`SKIPPED the dashboard test: ${NO_BROWSER}`);

Deno.test({
  name: NO_BROWSER
    ? "dashboard (skipped: no browser)"
    : "dashboard: detect draws the API's answer, docs render, phone width fits, fine-tunes are watched",
  ignore: NO_BROWSER !== null,
}, async (t) => {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  const server = await startServer(
    ["--model", DEFAULT_MODEL, "--backend", "native"],
    `${ARTIFACTS}server.log`,
  );
  const browser = await launchBrowser(server.base);
  try {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.setViewportSize(DESKTOP);
    await page.goto(`${server.base}/`);
    await page.waitForSelector("body[data-ready=true]", { timeout: UI_TIMEOUT_MS });

    await t.step("the server has no API key: the page says so and recommends one", async () => {
      const note = page.locator("#auth-note");
      await note.waitFor({ state: "visible", timeout: UI_TIMEOUT_MS });
      assert.match(await note.textContent() ?? "", /--api-key-file/);
    });

    await t.step("upload an image: boxes drawn equal the API's detections", async () => {
      await page.selectOption("#detect-model", "default");
      await page.setInputFiles("#image-file", IMAGE);
      await detectDone(page, "");
      const api = await apiDetect(server.base, 0.25, 0.45);
      assert.ok(api.detections.length > 0, "the model finds the fixture's shapes");
      assert.deepEqual(await drawnDetections(page), api.detections);
      const rows = await page.$$eval("#detections tbody tr", (trs) => trs.length);
      assert.equal(rows, api.detections.length);
      await page.screenshot({ path: `${ARTIFACTS}detect-desktop.png`, fullPage: true });
    });

    await t.step("models panel shows the registry's versions and the active one", async () => {
      const registry = await (await fetch(`${server.base}/v1/models/default/versions`)).json();
      await page.waitForSelector("article.model[data-model=default]", { timeout: UI_TIMEOUT_MS });
      const shown = await page.$eval("article.model[data-model=default]", (card) => ({
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

    await t.step("a dataset the server refuses: every problem it names is listed by the form", async () => {
      const zip = `${ARTIFACTS}bad-dataset.zip`;
      await writeBadDatasetZip(zip);
      const body = new FormData();
      body.append("config", JSON.stringify({ epochs: 1, imgsz: 128 }));
      body.append("dataset", new File([await Deno.readFile(zip)], "bad-dataset.zip"));
      const res = await fetch(`${server.base}/v1/models/default/finetune`, { method: "POST", body });
      assert.equal(res.status, 400);
      const { error } = await res.json();
      assert.ok(error.problems.length >= 3, `the server names each bad file: ${JSON.stringify(error)}`);
      await page.selectOption("#ft-model", "default");
      await page.setInputFiles("#ft-dataset", zip);
      await page.click("#finetune-form button[type=submit]");
      await page.waitForSelector("#ft-problems:not([hidden]) li", { timeout: UI_TIMEOUT_MS });
      const shown = await page.$$eval("#ft-problems li", (items) => items.map((li) => li.textContent));
      const expected = error.problems.map((p: { file: string; line?: number; message: string }) =>
        `${p.file}${p.line ? `:${p.line}` : ""}: ${p.message}`
      );
      assert.deepEqual(shown, expected);
      await page.locator("#finetune").screenshot({ path: `${ARTIFACTS}finetune-refused.png` });
    });

    await t.step(
      "fine-tune: live progress, loss and lr charts, then the result and its new version",
      async () => {
        const zip = `${ARTIFACTS}dataset.zip`;
        await writeShapesDatasetZip(zip);
        await page.setViewportSize(DESKTOP);
        await watchJobView(page);
        await page.selectOption("#ft-model", "default");
        await page.setInputFiles("#ft-dataset", zip);
        for (const [name, value] of Object.entries(FINETUNE_FORM)) {
          await page.fill(`#finetune-form [name=${name}]`, value);
        }
        await page.setChecked("#finetune-form [name=augment]", false);
        await page.selectOption("#finetune-form [name=activate]", "always");
        await page.click("#finetune-form button[type=submit]");
        await page.waitForFunction(
          () => {
            const status = document.getElementById("job-view")!.dataset.status!;
            const value = (document.getElementById("job-progress") as HTMLProgressElement).value;
            return (status === "running" && value > 0) ||
              ["succeeded", "failed", "cancelled"].includes(status);
          },
          undefined,
          { timeout: FINETUNE_TIMEOUT_MS },
        );
        await page.screenshot({ path: `${ARTIFACTS}finetune-running.png`, fullPage: true });
        await page.waitForFunction(
          () =>
            ["succeeded", "failed", "cancelled"].includes(
              document.getElementById("job-view")!.dataset.status!,
            ),
          undefined,
          { timeout: FINETUNE_TIMEOUT_MS },
        );
        await page.screenshot({ path: `${ARTIFACTS}finetune-done.png`, fullPage: true });
        const id = await page.getAttribute("#job-view", "data-job-id");
        const job = await (await fetch(`${server.base}/v1/jobs/${id}`)).json();
        assert.equal(job.status, "succeeded", `job ended ${job.status}: ${JSON.stringify(job.error)}`);

        const seen = await page.evaluate(() =>
          (globalThis as unknown as { jobViewStates: JobViewState[] }).jobViewStates
        );
        const running = seen.filter((s) => s.status === "running" && s.progress > 0 && s.progress < 1);
        assert.ok(running.length > 0, `progress was shown while running: ${JSON.stringify(seen)}`);
        const progress = seen.map((s) => s.progress);
        assert.deepEqual(progress, [...progress].sort((a, b) => a - b), "the progress bar never goes back");
        assert.equal(await page.$eval("#job-progress", (el) => (el as HTMLProgressElement).value), 1);

        const stats = await jobStats(page);
        const { progress: p, resultVersion } = job;
        assert.equal(stats["Iteration"], `${p.iterations} / ${p.iterations}`);
        assert.equal(stats["mAP@0.5 before"], p.metrics.base_map50.toFixed(3));
        assert.equal(stats["mAP@0.5 after"], p.metrics.map50.toFixed(3));
        assert.equal(stats["mAP@0.5:0.95 before"], p.metrics.base_map50_95.toFixed(3));
        assert.equal(stats["mAP@0.5:0.95 after"], p.metrics.map50_95.toFixed(3));
        assert.equal(stats["Result version"], `v${resultVersion} (activated)`);
        for (const chart of ["#loss-chart", "#lr-chart"]) {
          const lines = await page.$$eval(
            `${chart} polyline`,
            (ls) => ls.map((l) => l.getAttribute("points")!.split(" ").length),
          );
          assert.equal(lines.length, 3, `${chart} draws one line per item`);
          assert.ok(
            lines.every((n) => n >= 2),
            `${chart} has several points per line: ${lines}`,
          );
        }

        await page.waitForSelector(`#job-list tr[data-job-id="${id}"][data-status=succeeded]`, {
          timeout: UI_TIMEOUT_MS,
        });
        await page.waitForSelector(`article.model[data-model=default][data-active="${resultVersion}"]`, {
          timeout: UI_TIMEOUT_MS,
        });
        await page.setViewportSize(PHONE);
        await page.locator("#finetune").screenshot({ path: `${ARTIFACTS}finetune-phone.png` });
        await page.setViewportSize(DESKTOP);
      },
    );

    await t.step("roll back to the base version from the models panel", async () => {
      const before = await (await fetch(`${server.base}/v1/models/default/versions`)).json();
      const base = Math.min(...before.versions.map((v: { version: number }) => v.version));
      await page.click(`button[aria-label="Roll back default to version ${base}"]`);
      await page.waitForSelector(`article.model[data-model=default][data-active="${base}"]`, {
        timeout: UI_TIMEOUT_MS,
      });
      const after = await (await fetch(`${server.base}/v1/models/default/versions`)).json();
      assert.equal(after.active, base);
    });

    await t.step("cancel a running job from the live view", async () => {
      await page.fill("#finetune-form [name=epochs]", "300");
      await page.selectOption("#finetune-form [name=activate]", "never");
      await page.click("#finetune-form button[type=submit]");
      await page.waitForFunction(
        () =>
          document.getElementById("job-view")!.dataset.status === "running" &&
          (document.getElementById("job-progress") as HTMLProgressElement).value > 0,
        undefined,
        {
          timeout: FINETUNE_TIMEOUT_MS,
        },
      );
      const id = await page.getAttribute("#job-view", "data-job-id");
      await page.click("#job-cancel");
      await page.waitForSelector("#job-view[data-status=cancelled]", { timeout: FINETUNE_TIMEOUT_MS });
      const job = await (await fetch(`${server.base}/v1/jobs/${id}`)).json();
      assert.equal(job.status, "cancelled");
      assert.ok(
        job.progress.iteration < job.progress.iterations,
        `it stopped before the end: ${JSON.stringify(job.progress)}`,
      );
      assert.equal(job.resultVersion, null);
      await page.waitForSelector(`#job-list tr[data-job-id="${id}"][data-status=cancelled]`, {
        timeout: UI_TIMEOUT_MS,
      });
    });

    await t.step("the job list opens a finished job in the live view", async () => {
      const { jobs } = await (await fetch(`${server.base}/v1/jobs?status=succeeded`)).json();
      assert.equal(jobs.length, 1);
      await page.click(`#job-list tr[data-job-id="${jobs[0].id}"] button`);
      await page.waitForSelector(`#job-view[data-job-id="${jobs[0].id}"][data-status=succeeded]`, {
        timeout: UI_TIMEOUT_MS,
      });
      assert.equal((await jobStats(page))["Result version"], `v${jobs[0].resultVersion} (activated)`);
    });

    assert.deepEqual(errors, [], "no uncaught errors in the page");
    assert.deepEqual(browser.blocked, [], "the pages load nothing from outside the server");
  } finally {
    await browser.close();
    await server.close();
  }
});

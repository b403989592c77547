/// <reference lib="dom" />
// The dashboard's review page in Chromium on a real server: captured frames queue up with the model's
// proposals drawn, a person draws, moves, resizes, reclassifies and deletes boxes with the mouse and keys,
// and accept / reject / skip land in the captures API; progress follows. Screenshots go to test-artifacts/.
import assert from "node:assert/strict";
import sharp from "sharp";
import type { Page } from "playwright-core";
import { Rng } from "../../src/train/data/rng.ts";
import { synthImage } from "../../src/train/synth.ts";
import { launchBrowser } from "./_browser.ts";
import { UI_TIMEOUT_MS } from "./_page.ts";
import { startServer } from "./_server.ts";

const DEFAULT_MODEL = new URL("../../models/default.onnx", import.meta.url).pathname;
const ARTIFACTS = new URL("../../test-artifacts/review/", import.meta.url).pathname;
const IMGSZ = 128;
const FRAMES = 3;
const DESKTOP = { width: 1280, height: 1000 };
const TABLET = { width: 768, height: 1024 };
/** A one-epoch round on two 128 px frames: seconds on a GPU, under a minute on lavapipe's CPU. */
const ROUND_TIMEOUT_MS = 180_000;

interface Box {
  class_id: number;
  box: { x1: number; y1: number; x2: number; y2: number };
}

/** The boxes as the page drew them, from the data attributes of each box's rect. */
function drawnBoxes(page: Page): Promise<Box[]> {
  return page.$$eval("#rv-overlay rect.box", (rects) =>
    rects.map((r) => {
      const n = (k: string) => Number(r.getAttribute(`data-${k}`));
      return { class_id: n("class-id"), box: { x1: n("x1"), y1: n("y1"), x2: n("x2"), y2: n("y2") } };
    }));
}

/** Screen coordinates of image pixel (x, y) on the review picture. */
async function screen(page: Page, x: number, y: number): Promise<[number, number]> {
  const r = (await page.locator("#rv-overlay").boundingBox())!;
  return [r.x + x * (r.width / IMGSZ), r.y + y * (r.height / IMGSZ)];
}

/** Drags with the mouse from image pixel `from` to `to`. */
async function drag(page: Page, from: [number, number], to: [number, number]) {
  await page.mouse.move(...await screen(page, ...from));
  await page.mouse.down();
  await page.mouse.move(...await screen(page, ...to), { steps: 5 });
  await page.mouse.up();
}

async function capture(base: string, id: string) {
  return await (await fetch(`${base}/v1/captures/${id}`)).json();
}

Deno.test("review page: proposals drawn, boxes drawn / moved / resized / reclassified / deleted, accept, reject, skip", async () => {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  const server = await startServer(
    ["--model", DEFAULT_MODEL, "--backend", "native"],
    `${ARTIFACTS}server.log`,
  );
  const browser = await launchBrowser(server.base);
  try {
    const put = await fetch(`${server.base}/v1/models/default/capture`, {
      method: "PUT",
      body: JSON.stringify({ mode: "all" }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(put.status, 200);
    for (let i = 0; i < FRAMES; i++) {
      const { rgb } = synthImage(IMGSZ, new Rng(40 + i));
      const png = await sharp(rgb, { raw: { width: IMGSZ, height: IMGSZ, channels: 3 } }).png().toBuffer();
      const res = await fetch(`${server.base}/v1/models/default/detect`, {
        method: "POST",
        body: new Uint8Array(png),
        headers: { "content-type": "image/png", "x-camera-id": "yard" },
      });
      await res.body?.cancel();
    }
    let queue: { id: string; predictions: (Box & { confidence: number })[] }[] = [];
    for (const deadline = Date.now() + UI_TIMEOUT_MS; queue.length < FRAMES;) {
      assert.ok(Date.now() < deadline, "the frames were captured");
      await new Promise((r) => setTimeout(r, 100));
      queue = (await (await fetch(`${server.base}/v1/captures?model=default`)).json()).captures;
    }

    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.setViewportSize(DESKTOP);
    await page.goto(`${server.base}/#review`);
    await page.waitForSelector("body[data-ready=true]", { timeout: UI_TIMEOUT_MS });
    await page.click("#review-form button[type=submit]");
    await page.waitForSelector(`#review[data-capture="${queue[0].id}"]`, { timeout: UI_TIMEOUT_MS });
    // The frame is fetched with the key (an <img src> could not send it) and shown from a blob URL.
    await page.waitForFunction(() => {
      const img = document.getElementById("rv-img") as HTMLImageElement;
      return img.src.startsWith("blob:") && img.complete && img.naturalWidth > 0;
    });

    const proposals = queue[0].predictions.map(({ class_id, box }) => ({ class_id, box }));
    assert.ok(proposals.length > 0, "the model proposes boxes on the first frame");
    assert.deepEqual(await drawnBoxes(page), proposals, "the model's boxes are drawn as proposals");
    assert.match(await page.textContent("#rv-progress") ?? "", /3 new, 0 labelled/);

    // Draw a box on empty ground, give it class 3, move it by (5, 4), pull its bottom-right corner out.
    await drag(page, [2, 100], [30, 120]);
    await page.keyboard.press("3");
    await drag(page, [15, 110], [20, 114]);
    await drag(page, [35, 124], [40, 126]);
    const drawn = { class_id: 2, box: { x1: 7, y1: 104, x2: 40, y2: 126 } }; // (2, 100)-(30, 120) moved by (5, 4)
    // Delete the first proposal: tap its inside, then Delete.
    const first = proposals[0].box;
    await page.mouse.click(
      ...await screen(page, Math.round((first.x1 + first.x2) / 2), Math.round((first.y1 + first.y2) / 2)),
    );
    await page.keyboard.press("Delete");
    const expected = [...proposals.slice(1), drawn];
    assert.deepEqual(await drawnBoxes(page), expected);
    await page.screenshot({ path: `${ARTIFACTS}review-desktop.png`, fullPage: true });

    await page.keyboard.press("a");
    await page.waitForSelector(`#review[data-last="accepted ${queue[0].id}"]`, { timeout: UI_TIMEOUT_MS });
    const labelled = await capture(server.base, queue[0].id);
    assert.equal(labelled.status, "labelled");
    assert.deepEqual(labelled.labels, expected, "the labels saved are the boxes on screen");

    await page.waitForSelector(`#review[data-capture="${queue[1].id}"]`);
    await page.keyboard.press("r");
    await page.waitForSelector(`#review[data-last="rejected ${queue[1].id}"]`, { timeout: UI_TIMEOUT_MS });
    assert.equal((await capture(server.base, queue[1].id)).status, "rejected");
    await page.waitForSelector(`#review[data-capture="${queue[2].id}"]`);
    await page.keyboard.press("s");
    await page.waitForSelector(`#review[data-capture=""]`);
    assert.equal((await capture(server.base, queue[2].id)).status, "new", "skipping changes nothing");
    assert.match(
      await page.textContent("#rv-progress") ?? "",
      /1 new, 1 labelled \(train \d, val \d\), 1 rejected/,
    );

    // The labelled frame, back in the queue filtered to labelled ones, shows its labels rather than proposals.
    await page.selectOption("#rv-status", "labelled");
    await page.click("#review-form button[type=submit]");
    await page.waitForSelector(`#review[data-capture="${queue[0].id}"]`, { timeout: UI_TIMEOUT_MS });
    assert.deepEqual(await drawnBoxes(page), expected);
    assert.equal(
      await page.isDisabled("#rv-train"),
      labelled.split !== "train",
      "training needs a train frame",
    );

    // One more train frame through the API, then "Fine-tune from N labelled frames" with the form's settings.
    const more = await fetch(`${server.base}/v1/captures/${queue[2].id}/labels`, {
      method: "PUT",
      body: JSON.stringify({ labels: [], split: "train" }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(more.status, 200);
    await page.click("#review-form button[type=submit]");
    await page.waitForFunction(
      () => document.getElementById("rv-train")?.textContent === "Fine-tune from 2 labelled frames",
      undefined,
      { timeout: UI_TIMEOUT_MS },
    );
    assert.equal(await page.isDisabled("#rv-train"), false);
    for (
      const [name, value] of Object.entries({
        epochs: "1",
        batch_size: "2",
        imgsz: "128",
        val_fraction: "0.5",
      })
    ) {
      await page.fill(`#finetune-form [name=${name}]`, value);
    }
    await page.click("#rv-train");
    await page.waitForSelector("#job-view[data-job-id]", { timeout: UI_TIMEOUT_MS });
    const jobId = await page.getAttribute("#job-view", "data-job-id");
    const job = await (await fetch(`${server.base}/v1/jobs/${jobId}`)).json();
    assert.deepEqual([job.model, job.config.epochs, job.config.imgsz], ["default", 1, 128]);
    // The round finishes; the rounds table shows its version with the before/after metrics the API holds.
    for (const deadline = Date.now() + ROUND_TIMEOUT_MS;;) {
      const status = (await (await fetch(`${server.base}/v1/jobs/${jobId}`)).json()).status;
      if (status === "succeeded") break;
      assert.ok(!["failed", "cancelled"].includes(status), `the round ended ${status}`);
      assert.ok(Date.now() < deadline, "the round finished in time");
      await new Promise((r) => setTimeout(r, 500));
    }
    const { versions } = await (await fetch(`${server.base}/v1/models/default/versions`)).json();
    const round = versions.at(-1);
    assert.equal(round.source.type, "finetune");
    // The page takes the finished round in when its job view sees the job end (on a loaded box later than this
    // poll did): its models list gains the version's row, which moves everything below it. Positions on the
    // review picture are measured after that.
    await page.locator(`#model-list tr[data-version="${round.version}"]`).waitFor({ timeout: UI_TIMEOUT_MS });
    // The submit reloads the queue and shows its first frame again, which resets the editor's boxes: mark the
    // shown capture and wait for the reload to replace the mark, so the touch-drawn box below is not reset.
    await page.evaluate(() => document.getElementById("review")!.dataset.capture = "reloading");
    await page.click("#review-form button[type=submit]");
    await page.waitForSelector('#review:not([data-capture="reloading"])', { timeout: UI_TIMEOUT_MS });
    const row = page.locator(`#rv-rounds tr[data-version="${round.version}"] td`);
    await row.first().waitFor({ timeout: UI_TIMEOUT_MS });
    const m = round.metrics;
    assert.deepEqual(await row.allTextContents(), [
      `v${round.version}`,
      `v${round.parent}`,
      `${m.base_map50_95.toFixed(3)} → ${m.map50_95.toFixed(3)}`,
      "– → –", // no regression set on this model
    ]);

    await page.setViewportSize(TABLET);
    await page.screenshot({ path: `${ARTIFACTS}review-tablet.png`, fullPage: true });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - globalThis.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at tablet width (${overflow}px over)`);

    // A finger on a tablet: real touch events (Chromium turns them into touch pointer events) draw a box too,
    // and the page does not scroll under the finger.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Emulation.setTouchEmulationEnabled", { enabled: true, maxTouchPoints: 1 });
    // A finger touches what is on screen. How far down the picture lies depends on the text above it (times and
    // job ids wrap differently at this width), and a touch below the viewport reaches no element: the box is lost.
    await page.locator("#rv-overlay").scrollIntoViewIfNeeded();
    const scrolled = await page.evaluate(() => globalThis.scrollY);
    const touch = async (type: "touchStart" | "touchMove" | "touchEnd", at: [number, number] | null) =>
      await cdp.send("Input.dispatchTouchEvent", {
        type,
        touchPoints: at ? [{ x: at[0], y: at[1] }] : [],
      });
    const before = await drawnBoxes(page);
    await touch("touchStart", await screen(page, 60, 10));
    for (let i = 1; i <= 5; i++) await touch("touchMove", await screen(page, 60 + 6 * i, 10 + 6 * i));
    await touch("touchEnd", null);
    const classId = Number(await page.inputValue("#rv-class"));
    assert.deepEqual(await drawnBoxes(page), [...before, {
      class_id: classId,
      box: { x1: 60, y1: 10, x2: 90, y2: 40 },
    }]);
    assert.equal(await page.evaluate(() => globalThis.scrollY), scrolled, "the page did not scroll");
    assert.deepEqual(errors, []);
    assert.deepEqual(browser.blocked, []);
  } finally {
    await browser.close();
    await server.close();
  }
});

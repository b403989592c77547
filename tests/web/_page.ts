/// <reference lib="dom" />
// Reading and driving the dashboard as a person sees it; the callbacks run inside Chromium (hence DOM types).
import type { Page } from "playwright-core";

/** How long a page update may take: generous, the 2-core CI machine also runs the server. */
export const UI_TIMEOUT_MS = 60_000;

export interface Detection {
  class_id: number;
  class_name: string;
  confidence: number;
  box: { x1: number; y1: number; x2: number; y2: number };
}

/** The detections as the page drew them: one SVG rect per box, the detection in its data attributes. */
export function drawnDetections(page: Page): Promise<Detection[]> {
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

/** Waits until the detect panel has answered for the current inputs (its status names the serving model). */
export async function detectDone(page: Page, before: string): Promise<void> {
  await page.waitForFunction(
    (prev) => {
      const text = document.getElementById("detect-status")?.textContent ?? "";
      return text !== prev && / found by /.test(text);
    },
    before,
    { timeout: UI_TIMEOUT_MS },
  );
}

export async function setSlider(page: Page, id: string, value: number): Promise<void> {
  await page.$eval(`#${id}`, (el, v) => {
    const input = el as HTMLInputElement;
    input.value = String(v);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }, value);
}

export interface JobViewState {
  status: string;
  progress: number;
}

/** Records every (status, progress) the live job view shows, to check what a person watching would see. */
export function watchJobView(page: Page): Promise<void> {
  return page.evaluate(() => {
    const states: { status: string; progress: number }[] = [];
    (globalThis as unknown as { jobViewStates: typeof states }).jobViewStates = states;
    const view = document.getElementById("job-view")!;
    const bar = document.getElementById("job-progress") as HTMLProgressElement;
    new MutationObserver(() => {
      const state = { status: view.dataset.status ?? "", progress: bar.value };
      const last = states.at(-1);
      if (state.status && (last?.status !== state.status || last.progress !== state.progress)) {
        states.push(state);
      }
    }).observe(view, { attributes: true, subtree: true, childList: true, characterData: true });
  });
}

/** The live view's facts (the <dl> beside the charts) by their names. */
export function jobStats(page: Page): Promise<Record<string, string>> {
  return page.$eval("#job-stats", (dl) => {
    const out: Record<string, string> = {};
    for (const dt of dl.querySelectorAll("dt")) out[dt.textContent!] = dt.nextElementSibling!.textContent!;
    return out;
  });
}

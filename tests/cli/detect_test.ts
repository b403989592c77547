import assert from "node:assert/strict";
import type { DetectResult } from "../../src/serving/detector.ts";
import { referenceData, referenceName } from "../_helpers/reference.ts";

const ROOT = new URL("../../", import.meta.url);
const REFERENCE = referenceData(
  import.meta.url,
  "reference/detect_yolov5n_640.json",
  "models/yolov5n.onnx",
  "images/",
);
const SHARED = REFERENCE.url("");
const DETECTIONS_JSON = REFERENCE.url("reference/detect_yolov5n_640.json");
/** Acceptance bounds from issue 2: the reference was decoded by OpenCV and run in PyTorch. */
const MIN_IOU = 0.85;
const MAX_CONF_DIFF = 0.03;
/**
 * Decoding and letterboxing match OpenCV bit for bit, so the output is far closer than that: the reference
 * prints confidences to 4 decimals (±5e-5) and onnxruntime vs PyTorch float32 kernels add ~1e-5; both sides
 * round boxes to whole pixels, where float noise may flip a .5.
 */
const FIDELITY_CONF_DIFF = 2e-4;
const FIDELITY_BOX_PX = 1;

type Box = { x1: number; y1: number; x2: number; y2: number };
interface Reference {
  images: Record<string, {
    width: number;
    height: number;
    detections: { class_id: number; class_name: string; confidence: number; box: number[] }[];
  }>;
}

function iou(a: Box, b: Box): number {
  const w = Math.max(0, Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1));
  const h = Math.max(0, Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1));
  const inter = w * h;
  return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter);
}

Deno.test({
  name: referenceName(
    "deno task detect reproduces the PyTorch reference detections for yolov5n at 640 (and to the pixel)",
    REFERENCE,
  ),
  ignore: REFERENCE.missing,
  sanitizeResources: false,
  fn: async () => {
    const reference: Reference = JSON.parse(await Deno.readTextFile(DETECTIONS_JSON));
    const files = Object.keys(reference.images).map((f) => new URL(`images/${f}`, SHARED).pathname);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "detect", "--model", new URL("models/yolov5n.onnx", SHARED).pathname, ...files],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const lines: DetectResult[] = new TextDecoder().decode(stdout).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(lines.length, files.length);
    for (const line of lines) {
      const ref = reference.images[line.file!.split("/").pop()!];
      assert.deepEqual(line.model, { name: "yolov5n", version: 1 });
      assert.deepEqual(line.image, { width: ref.width, height: ref.height });
      assert.equal(line.detections.length, ref.detections.length, `${line.file}: detection count`);
      // Match each reference detection to the unused same-class detection with the highest IoU.
      const unused = new Set(line.detections.keys());
      for (const want of ref.detections) {
        const [x1, y1, x2, y2] = want.box;
        let best = -1, bestIou = 0;
        for (const i of unused) {
          const got = line.detections[i];
          const o = iou(got.box, { x1, y1, x2, y2 });
          if (got.class_id === want.class_id && o > bestIou) best = i, bestIou = o;
        }
        assert.ok(
          bestIou >= MIN_IOU,
          `${line.file}: no ${want.class_name} with IoU >= ${MIN_IOU} (${bestIou})`,
        );
        unused.delete(best);
        const got = line.detections[best];
        assert.equal(got.class_name, want.class_name);
        assert.ok(
          Math.abs(got.confidence - want.confidence) <= MAX_CONF_DIFF,
          `${line.file}: ${want.class_name} confidence ${got.confidence} vs ${want.confidence}`,
        );
        assert.ok(Math.abs(got.confidence - want.confidence) <= FIDELITY_CONF_DIFF, `${line.file}: fidelity`);
        const px = [got.box.x1 - x1, got.box.y1 - y1, got.box.x2 - x2, got.box.y2 - y2].map(Math.abs);
        assert.ok(
          Math.max(...px) <= FIDELITY_BOX_PX,
          `${line.file}: box ${JSON.stringify(got.box)} vs ${want.box}`,
        );
      }
    }
  },
});

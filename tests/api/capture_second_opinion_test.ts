// `uncertain`'s second half: frames outside the band are kept when the model's previous version disagrees. Two
// tiny models of different seeds stand for the previous (v1) and the active (v2) version.
import assert from "node:assert/strict";
import sharp from "sharp";
import { previousVersionOpinion } from "../../src/api/previous_version.ts";
import { disagree } from "../../src/capture/policy.ts";
import { CaptureService } from "../../src/capture/service.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { detect } from "../../src/serving/detector.ts";
import { LoadedModel } from "../../src/serving/loaded_model.ts";
import { readModelSpec } from "../../src/serving/model_spec.ts";
import { DEFAULT_DETECT_OPTIONS } from "../../src/serving/postprocess.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const IMGSZ = 32; // tinyYolo's input
const MAX_MODEL_BYTES = 64 * 1024; // tiny models are ~5 KB

async function detections(onnx: Uint8Array, image: Uint8Array) {
  const model = await LoadedModel.create(
    { name: "ref", version: 0 },
    readModelSpec(onnx, "ref"),
    nativeBackend,
    onnx,
  );
  try {
    return (await detect(model, image, DEFAULT_DETECT_OPTIONS)).detections;
  } finally {
    await model.retire();
  }
}

Deno.test("uncertain keeps a frame outside the band only when the previous version disagrees", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-second-opinion-" });
  try {
    const [previous, active] = [tinyYolo({ seed: 1 }), tinyYolo({ seed: 2 })];
    const registry = await Registry.open(new MemoryStore(), { maxBytes: MAX_MODEL_BYTES });
    await registry.add("t", previous, { source: { type: "upload" } });
    await registry.add("t", active, { source: { type: "upload" } });
    const image = new Uint8Array(
      await sharp({
        create: { width: IMGSZ, height: IMGSZ, channels: 3, background: { r: 120, g: 30, b: 200 } },
      })
        .png().toBuffer(),
    );
    const [byPrevious, byActive] = [await detections(previous, image), await detections(active, image)];
    assert.ok(
      disagree(byActive, byPrevious, null),
      "the two seeds must disagree for this test to mean anything",
    );

    const opinion = previousVersionOpinion(registry, nativeBackend);
    assert.equal(await opinion({ model: "t", version: 1, image }), null, "v1 has no previous version");
    assert.deepEqual(await opinion({ model: "t", version: 2, image }), byPrevious, "v2's previous is v1");

    const capture = await CaptureService.open(dataDir, () => {});
    capture.useSecondOpinion(opinion);
    // A band no detection of either seed lies in: only disagreement can keep a frame.
    await capture.policies.set("t", {
      ...capture.policies.get("t"),
      mode: "uncertain",
      uncertain: { low: 0.98, high: 0.99 },
    });
    assert.ok([...byActive, ...byPrevious].every((d) => d.confidence < 0.98));
    const offer = (predictions: typeof byActive) =>
      capture.offer({
        model: "t",
        version: 2,
        image,
        width: IMGSZ,
        height: IMGSZ,
        predictions,
        source: { route: "native", client: null, camera: null },
        time: new Date(),
      });
    offer(byPrevious); // the active version answered what the previous one says: they agree
    await capture.idle();
    assert.equal(capture.counts.stored, 0, "an agreeing frame outside the band is not kept");
    offer(byActive);
    await capture.idle();
    assert.deepEqual(capture.counts.dropped, {
      queue_full: 0,
      rate_limit: 0,
      over_budget: 0,
      write_failed: 0,
    });
    assert.equal(capture.counts.stored, 1, "a disagreeing frame is kept");
    assert.deepEqual(capture.store.all({ model: "t" }).map((c) => c.predictions), [byActive]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

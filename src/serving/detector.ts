import { decodeImage } from "../image/decode.ts";
import type { LoadedModel, ModelRef } from "./loaded_model.ts";
import { type Detection, type DetectOptions, postprocess } from "./postprocess.ts";

/** One image's detections, shaped as the API and the CLI print them (snake_case keys). */
export interface DetectResult {
  file?: string;
  model: ModelRef;
  image: { width: number; height: number };
  detections: {
    class_id: number;
    class_name: string;
    confidence: number;
    box: { x1: number; y1: number; x2: number; y2: number };
  }[];
  timings_ms: { decode: number; preprocess: number; inference: number; postprocess: number; total: number };
}

const ms = (from: number, to: number) => Math.round((to - from) * 1000) / 1000;

/**
 * decode -> letterbox -> session -> NMS -> original pixels, for one image on one model version. The request
 * takes its place in the model's queue first (ModelOverloadedError when it is full), so a shed request costs
 * no decode. A session that runs the whole pipeline itself (the native engine's inference workers) gets the
 * encoded bytes once a slot is free. Otherwise the image is decoded here as it arrives (sharp on its own
 * threads; libturbojpeg on the JS thread below OFF_THREAD_PIXELS, see src/image/turbojpeg.ts) and letterboxed
 * once a slot is free, in place into an input of that slot.
 */
export async function detect(
  model: LoadedModel,
  bytes: Uint8Array,
  opts: DetectOptions,
  maxPixels?: number,
): Promise<DetectResult> {
  const admission = model.admit();
  try {
    const t0 = performance.now();
    if (model.detectsImages) {
      const { width, height, detections, timings } = await model.detectImage(
        admission,
        bytes,
        opts,
        maxPixels,
      );
      const total = performance.now() - t0;
      const { decode, preprocess, postprocess } = timings;
      return answer(model, width, height, detections, {
        decode: ms(0, decode),
        preprocess: ms(0, preprocess),
        // The wait for a slot (a worker), the handover both ways and the run.
        inference: ms(decode + preprocess + postprocess, total),
        postprocess: ms(0, postprocess),
        total: ms(0, total),
      });
    }
    const image = await decodeImage(bytes, maxPixels);
    const t1 = performance.now();
    const { output, prepared } = await model.inferPrepared(admission, (input) => {
      const start = performance.now();
      const box = input.write(image);
      return { box, preprocess: performance.now() - start };
    });
    const { box, preprocess } = prepared;
    const t3 = performance.now();
    const found = postprocess(output.data, model.spec.nc, opts, box, image.width, image.height);
    const t4 = performance.now();
    return answer(model, image.width, image.height, found, {
      decode: ms(t0, t1),
      preprocess: ms(0, preprocess),
      // From the end of decode: the wait for a slot and the run, without the letterbox done in between.
      inference: ms(t1 + preprocess, t3),
      postprocess: ms(t3, t4),
      total: ms(t0, t4),
    });
  } finally {
    // withdraw() gives back the place of a request that failed before its run (a no-op once it ran).
    admission.withdraw();
  }
}

function answer(
  model: LoadedModel,
  width: number,
  height: number,
  found: Detection[],
  timings: DetectResult["timings_ms"],
): DetectResult {
  return {
    model: model.ref,
    image: { width, height },
    detections: found.map((d) => ({
      class_id: d.classId,
      class_name: model.spec.names[d.classId],
      confidence: d.confidence,
      box: d.box,
    })),
    timings_ms: timings,
  };
}

/**
 * The one detect path behind every API family (native `/v1/models/{name}/detect`, DeepStack `/v1/vision/*`):
 * lease the model's active version, run serving's detect (decode, letterbox, session, NMS), record the
 * inference time, give the lease back, offer the frame to capture. Each family only reads its own request form
 * and writes its own answer.
 */
import type { CaptureOffer } from "../capture/service.ts";
import type { CaptureSource } from "../capture/types.ts";
import { detect, type DetectResult } from "../serving/detector.ts";
import type { DetectOptions } from "../serving/postprocess.ts";
import type { RouteContext } from "./app.ts";
import { noteRequestModel } from "./middleware/request_log.ts";
import { unknownModel } from "./routes/models.ts";

/**
 * Detects on model `name`. An unknown model is a 404 before the body is read; the lease, which pins a version
 * (a swap waits for it), is taken only once the body is in, so a slow or stalled upload holds no model.
 */
export async function detectOnModel(
  ctx: RouteContext,
  name: string,
  opts: DetectOptions,
  readImage: () => Promise<Uint8Array>,
  source: CaptureSource,
): Promise<DetectResult> {
  if (!ctx.pool.get(name)) throw unknownModel(name);
  const image = await readImage();
  // From here on the time is the server's (session queue and work), not the client's upload.
  const start = performance.now();
  const lease = ctx.pool.lease(name);
  if (!lease) throw unknownModel(name);
  noteRequestModel(name, lease.model.ref.version);
  try {
    const result = await detect(lease.model, image, opts, ctx.maxPixels);
    ctx.metrics.inference.observe(result.timings_ms.inference / 1000, { model: name });
    ctx.serveBudget?.observe(performance.now() - start);
    ctx.fleet?.observeDetect(name, result.model.version, performance.now() - start);
    offerCapture(ctx, {
      model: name,
      version: result.model.version,
      image,
      width: result.image.width,
      height: result.image.height,
      predictions: result.detections,
      source,
      time: new Date(),
    });
    return result;
  } finally {
    await lease.release();
  }
}

/**
 * Offers a served frame to capture: the model's policy decides at once and a kept frame is written after the
 * answer (src/capture). The one entry for every family, v2 infer with an encoded image included.
 */
export function offerCapture(ctx: RouteContext, offer: CaptureOffer): void {
  try {
    ctx.capture?.offer(offer);
  } catch (err) {
    // The frame was answered; losing its capture must not turn the answer into an error.
    console.error(`capture of a ${offer.source.route} frame of ${offer.model} failed:`, err);
  }
}

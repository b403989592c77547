/**
 * A model's capture policy: which of the frames it serves are kept as training candidates. `off` keeps none,
 * `all` every one, `sample` a random share (`rate`), `uncertain` those with a detection whose confidence lies in
 * [low, high) — the frames the model is least sure of, which teach it most. `classes` narrows any mode to frames
 * with a detection of those classes; `max_per_hour` and `max_bytes` bound what a busy camera can fill.
 */
import { z } from "zod";

export const CAPTURE_MODES = ["off", "all", "uncertain", "sample"] as const;
/** 2 GiB: a few thousand full-HD JPEGs, small beside a data dir's model versions. */
export const DEFAULT_MAX_CAPTURE_BYTES = 2 * 1024 ** 3;

export const CapturePolicySchema = z.object({
  mode: z.enum(CAPTURE_MODES).default("off"),
  rate: z.number().min(0).max(1).default(0.05),
  uncertain: z.object({
    low: z.number().min(0).max(1).default(0.25),
    high: z.number().min(0).max(1).default(0.6),
  }).refine((u) => u.low < u.high, "low must be below high").default({ low: 0.25, high: 0.6 }),
  classes: z.array(z.number().int().min(0)).max(1000).nullable().default(null),
  max_per_hour: z.number().int().min(1).default(600),
  max_bytes: z.number().int().min(1).default(DEFAULT_MAX_CAPTURE_BYTES),
}).strict();

export type CapturePolicy = z.infer<typeof CapturePolicySchema>;

export const DEFAULT_CAPTURE_POLICY: CapturePolicy = CapturePolicySchema.parse({});

/** What a policy looks at: the detections the route answered with. */
export interface ScoredDetection {
  class_id: number;
  confidence: number;
}

/** Whether `policy` keeps a frame with these detections; `random` is a draw in [0, 1) for `sample`. */
export function keeps(
  policy: CapturePolicy,
  detections: readonly ScoredDetection[],
  random: number,
): boolean {
  if (policy.mode === "off") return false;
  const classes = policy.classes ? new Set(policy.classes) : null;
  const relevant = classes ? detections.filter((d) => classes.has(d.class_id)) : detections;
  if (classes && relevant.length === 0) return false;
  switch (policy.mode) {
    case "all":
      return true;
    case "sample":
      return random < policy.rate;
    case "uncertain": {
      const { low, high } = policy.uncertain;
      return relevant.some((d) => d.confidence >= low && d.confidence < high);
    }
  }
}

/** The IoU at which a detection of one version counts as found by the other (same class). */
export const AGREEMENT_IOU = 0.5;

/** A detection with its box, as two versions' answers are compared. */
export interface BoxedDetection {
  class_id: number;
  box: { x1: number; y1: number; x2: number; y2: number };
}

function iou(a: BoxedDetection["box"], b: BoxedDetection["box"]): number {
  const w = Math.max(0, Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1));
  const h = Math.max(0, Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1));
  const inter = w * h;
  const union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Whether two versions disagree on a frame: some detection of either has no detection of the same class in the
 * other with IoU >= {@link AGREEMENT_IOU}. `classes` (the policy's) limits which detections count.
 */
export function disagree(
  a: readonly BoxedDetection[],
  b: readonly BoxedDetection[],
  classes: readonly number[] | null,
): boolean {
  const wanted = (d: BoxedDetection) => !classes || classes.includes(d.class_id);
  const unmatched = (from: readonly BoxedDetection[], to: readonly BoxedDetection[]) =>
    from.filter(wanted).some((d) =>
      !to.some((o) => o.class_id === d.class_id && iou(d.box, o.box) >= AGREEMENT_IOU)
    );
  return unmatched(a, b) || unmatched(b, a);
}

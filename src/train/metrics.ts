/**
 * YOLOv5 v7.0 val.py detection metrics (docs/training.md §7.6-7.7): per-image TP matching
 * (`process_batch`), then `ap_per_class` (101-point interpolated AP, P/R at the max smoothed-F1 confidence),
 * mAP@0.5 and mAP@0.5:0.95.
 * IoUs are computed in float32 as torch does, so threshold comparisons land on the same side as the reference.
 */
import { argmax, interp, linspace, mean, smooth, trapz } from "./numpy_like.ts";

/** A detection row `[x1, y1, x2, y2, conf, cls]` in the same pixel space as the labels. */
export type Detection = readonly [number, number, number, number, number, number];
/** A ground-truth box `[cls, x1, y1, x2, y2]` in pixels. */
export type LabelBox = readonly [number, number, number, number, number];

/** torch.linspace(0.5, 0.95, 10) in float32. */
export const IOU_THRESHOLDS: readonly number[] = Array.from(
  { length: 10 },
  (_, i) => Math.fround(0.5 + 0.05 * i),
);
const EPS = 1e-16;
const f = Math.fround;

/** `box_iou(labels, dets)` of utils/metrics.py in float32: inter / (areaA + areaB - inter + 1e-7). */
export function boxIou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const w = Math.max(f(Math.min(a[2], b[2]) - Math.max(a[0], b[0])), 0);
  const h = Math.max(f(Math.min(a[3], b[3]) - Math.max(a[1], b[1])), 0);
  const inter = f(w * h);
  const areaA = f(f(a[2] - a[0]) * f(a[3] - a[1]));
  const areaB = f(f(b[2] - b[0]) * f(b[3] - b[1]));
  return f(inter / f(f(f(areaA + areaB) - inter) + f(1e-7)));
}

/**
 * val.py `process_batch`: correct[d][t] for each detection and IoU threshold. Candidate pairs are sorted by IoU
 * descending (NumPy's small-array argsort is stable, then reversed, so IoU ties favour the later pair); each detection
 * keeps its best pair, then each label keeps its pair with the LOWEST detection index (highest confidence).
 */
export function processBatch(dets: readonly Detection[], labels: readonly LabelBox[]): boolean[][] {
  const correct = dets.map(() => IOU_THRESHOLDS.map(() => false));
  const iou = labels.map((l) => dets.map((d) => boxIou(l.slice(1), d)));
  for (let t = 0; t < IOU_THRESHOLDS.length; t++) {
    const matches: { l: number; d: number; iou: number }[] = [];
    labels.forEach((l, li) =>
      dets.forEach((d, di) => {
        if (iou[li][di] >= IOU_THRESHOLDS[t] && l[0] === d[5]) {
          matches.push({ l: li, d: di, iou: iou[li][di] });
        }
      })
    );
    matches.sort((a, b) => a.iou - b.iou).reverse();
    const byDet = new Map<number, { l: number; d: number }>();
    for (const m of matches) if (!byDet.has(m.d)) byDet.set(m.d, m);
    const byLabel = new Map<number, number>();
    for (const m of [...byDet.values()].sort((a, b) => a.d - b.d)) {
      if (!byLabel.has(m.l)) byLabel.set(m.l, m.d);
    }
    for (const d of byLabel.values()) correct[d][t] = true;
  }
  return correct;
}

/** `compute_ap`: sentinel-padded, precision envelope, trapezoid over 101-point np.interp. */
export function computeAp(recall: ArrayLike<number>, precision: ArrayLike<number>): number {
  const mrec = [0, ...Array.from(recall), 1];
  const mpre = [1, ...Array.from(precision), 0];
  for (let i = mpre.length - 2; i >= 0; i--) mpre[i] = Math.max(mpre[i], mpre[i + 1]);
  const x = linspace(0, 1, 101);
  return trapz(interp(x, mrec, mpre), x);
}

/** Per-image statistics, as val.py appends them: TP matrix, confidences, predicted and target classes. */
export interface ImageStats {
  correct: boolean[][];
  conf: number[];
  predCls: number[];
  targetCls: number[];
}

export interface ClassAp {
  ap50: number;
  /** mean AP over IoU 0.50:0.05:0.95 */
  ap: number;
}

export interface ValMetrics {
  images: number;
  labels: number;
  /** mean precision and recall over classes at the max smoothed-F1 confidence */
  P: number;
  R: number;
  map50: number;
  /** mAP@0.5:0.95: the mean over classes of AP averaged over IoU 0.5, 0.55, ..., 0.95 */
  map50_95: number;
  /** keyed by class id: every class that has labels */
  perClass: Record<number, ClassAp>;
}

/** One image's contribution: its detections (NMS output) and labels, in a common pixel space. */
export function imageStats(dets: readonly Detection[], labels: readonly LabelBox[]): ImageStats {
  return {
    correct: labels.length ? processBatch(dets, labels) : dets.map(() => IOU_THRESHOLDS.map(() => false)),
    conf: dets.map((d) => f(d[4])),
    predCls: dets.map((d) => d[5]),
    targetCls: labels.map((l) => l[0]),
  };
}

/** `ap_per_class` followed by val.py's means. Prediction ties in confidence are kept in input order. */
export function apPerClass(stats: readonly ImageStats[]): ValMetrics {
  const correct = stats.flatMap((s) => s.correct);
  const conf = stats.flatMap((s) => s.conf);
  const predCls = stats.flatMap((s) => s.predCls);
  const targetCls = stats.flatMap((s) => s.targetCls);
  const classes = [...new Set(targetCls)].sort((a, b) => a - b);
  const result: ValMetrics = {
    images: stats.length,
    labels: targetCls.length,
    P: 0,
    R: 0,
    map50: 0,
    map50_95: 0,
    perClass: {},
  };
  if (!correct.some((row) => row.some(Boolean))) {
    for (const c of classes) result.perClass[c] = { ap50: 0, ap: 0 };
    return result;
  }
  const order = conf.map((_, i) => i).sort((a, b) => conf[b] - conf[a]);
  const px = linspace(0, 1, 1000);
  const negPx = px.map((v) => -v);
  const nIou = IOU_THRESHOLDS.length;
  const p: Float64Array[] = classes.map(() => new Float64Array(1000));
  const r: Float64Array[] = classes.map(() => new Float64Array(1000));
  const ap = classes.map(() => new Float64Array(nIou));
  classes.forEach((c, ci) => {
    const idx = order.filter((i) => predCls[i] === c);
    const nl = targetCls.filter((t) => t === c).length;
    if (idx.length === 0 || nl === 0) return;
    const negConf = idx.map((i) => -conf[i]);
    const recall: number[][] = [], precision: number[][] = [];
    for (let t = 0; t < nIou; t++) {
      let tp = 0;
      recall.push(idx.map((i) => (tp += correct[i][t] ? 1 : 0) / (nl + EPS)));
      tp = 0;
      precision.push(idx.map((i, k) => (tp += correct[i][t] ? 1 : 0) / (k + 1)));
      ap[ci][t] = computeAp(recall[t], precision[t]);
    }
    r[ci] = interp(negPx, negConf, recall[0], 0);
    p[ci] = interp(negPx, negConf, precision[0], 1);
  });
  const f1 = p.map((pc, ci) => pc.map((v, k) => (2 * v * r[ci][k]) / (v + r[ci][k] + EPS)));
  const f1Mean = px.map((_, k) => f1.reduce((s, row) => s + row[k], 0) / classes.length);
  const best = argmax(smooth(f1Mean, 0.1));
  const apMean = ap.map((row) => mean(row));
  result.P = mean(p.map((row) => row[best]));
  result.R = mean(r.map((row) => row[best]));
  result.map50 = mean(ap.map((row) => row[0]));
  result.map50_95 = mean(apMean);
  classes.forEach((c, ci) => (result.perClass[c] = { ap50: ap[ci][0], ap: apMean[ci] }));
  return result;
}

/**
 * The hyperparameters ComputeLoss reads, and train.py's scaling of the gains by layer count, class count and image
 * size (docs/training.md §6.2), shared by the GPU loss and its plain TypeScript reference.
 * @module
 */

/** hyp.scratch-low.yaml's loss keys, before train.py's scaling. */
export interface LossHyp {
  box: number;
  obj: number;
  cls: number;
  cls_pw: number;
  obj_pw: number;
  anchor_t: number;
  fl_gamma: number;
  label_smoothing?: number;
}

/** What ComputeLoss actually uses: gains already scaled, plus the per-layer objectness balance. */
export interface LossSettings {
  nc: number;
  box: number;
  obj: number;
  cls: number;
  clsPw: number;
  objPw: number;
  anchorT: number;
  flGamma: number;
  labelSmoothing: number;
  balance: number[];
}

/** ComputeLoss's objectness balance: [4.0, 1.0, 0.4] for P5 models, the longer list otherwise. */
export function balanceFor(nl: number): number[] {
  return nl === 3 ? [4.0, 1.0, 0.4] : [4.0, 1.0, 0.25, 0.06, 0.02].slice(0, nl);
}

/** train.py: box *= 3/nl; cls *= nc/80 * 3/nl; obj *= (imgsz/640)^2 * 3/nl. */
export function lossSettings(hyp: LossHyp, nl: number, nc: number, imgsz: number): LossSettings {
  const layers = 3 / nl;
  return {
    nc,
    box: hyp.box * layers,
    cls: hyp.cls * (nc / 80) * layers,
    obj: hyp.obj * (imgsz / 640) ** 2 * layers,
    clsPw: hyp.cls_pw,
    objPw: hyp.obj_pw,
    anchorT: hyp.anchor_t,
    flGamma: hyp.fl_gamma,
    labelSmoothing: hyp.label_smoothing ?? 0,
    balance: balanceFor(nl),
  };
}

/**
 * The augmentation hyperparameters of YOLOv5's hyp files, under the same snake_case keys as
 * `shared/golden/*\/scenario.json` and hyp.scratch-low.yaml, so a fine-tune config's `hyp` object passes straight in.
 */
export interface AugmentHyp {
  hsv_h: number;
  hsv_s: number;
  hsv_v: number;
  degrees: number;
  translate: number;
  scale: number;
  shear: number;
  perspective: number;
  flipud: number;
  fliplr: number;
  mosaic: number;
  mixup: number;
}

/** hyp.scratch-low.yaml (docs/training.md §8.2), the train.py default. */
export const SCRATCH_LOW_AUGMENT: AugmentHyp = {
  hsv_h: 0.015,
  hsv_s: 0.7,
  hsv_v: 0.4,
  degrees: 0,
  translate: 0.1,
  scale: 0.5,
  shear: 0,
  perspective: 0,
  flipud: 0,
  fliplr: 0.5,
  mosaic: 1,
  mixup: 0,
};

/**
 * How far an amp fine-tune may drift from the same f32 run (tests/train/amp_test.ts, amp_golden_test.ts),
 * derived from f16's precision. f16 keeps 11 significant bits: unit roundoff u = 2^-11 ≈ 4.9e-4. With amp the
 * convs' GEMM operands (weights, columns, dy) are rounded to f16 once each and summed in f32; the loss scale
 * itself is exact (a power of two).
 */
export const F16_UNIT_ROUNDOFF = 2 ** -11;

/**
 * The loss (and its items) per iteration: a smooth function of the heads, whose f16 error is a few u (each
 * layer's rounding of its two operands adds ~2u of independent noise that depth mostly averages: yolov5n's
 * heads on the golden batch move by 3.7u relative L2, its loss by at most 1.1u over the run). 4u.
 */
export const AMP_LOSS_RTOL = 4 * F16_UNIT_ROUNDOFF;

/**
 * The weight change of a short run (relative L2 of final minus initial weights, amp vs f32). Gradients are small
 * differences of large sums: on the golden batch a 3.7u change of the heads moves the gradient by 15% relative
 * L2 (the head biases' by 42%), i.e. the update amplifies the forward's error ~100x, and the 10-step golden run's
 * weight change moves by 4.7% (~100u). The bound allows twice that: 200u ≈ 0.098.
 */
export const AMP_WEIGHT_DELTA_RTOL = 200 * F16_UNIT_ROUNDOFF;

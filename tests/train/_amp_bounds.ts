/**
 * How far an amp fine-tune may drift from the same f32 run (tests/train/amp_test.ts, amp_golden_test.ts). Only
 * the scale is in play while the GEMM operands stay f32: multiplying by a power of two and back is exact.
 */
export const AMP_LOSS_RTOL = 1e-6;
export const AMP_WEIGHT_DELTA_RTOL = 1e-5;

/**
 * Plain TypeScript transcriptions of torch 1.13's GradScaler kernels (docs/training.md §4), to check
 * wgsl/optim/unscale.wgsl and src/optim/grad_scaler.ts: `_amp_foreach_non_finite_check_and_unscale_` (the
 * incoming value is tested, then multiplied by inv_scale unless that is 1) and `_amp_update_scale_`.
 * @module
 */

/** Unscales `grads` in place; true when any incoming value was inf or NaN. */
export function nonFiniteCheckAndUnscale(grads: Float32Array, invScale: number): boolean {
  let found = false;
  for (let i = 0; i < grads.length; i++) {
    const v = grads[i];
    if (!Number.isFinite(v)) found = true;
    grads[i] = invScale === 1 ? v : v * invScale;
  }
  return found;
}

export interface RefScalerState {
  scale: number;
  growthTracker: number;
}

/** `_amp_update_scale_`: the next (scale, growth tracker) after a step with or without an inf/NaN. */
export function updateScale(
  s: RefScalerState,
  foundInf: boolean,
  growthFactor: number,
  backoffFactor: number,
  growthInterval: number,
): RefScalerState {
  if (foundInf) return { scale: Math.fround(s.scale * backoffFactor), growthTracker: 0 };
  const successful = s.growthTracker + 1;
  if (successful !== growthInterval) return { scale: s.scale, growthTracker: successful };
  const grown = Math.fround(s.scale * growthFactor);
  return { scale: Number.isFinite(grown) ? grown : s.scale, growthTracker: 0 };
}

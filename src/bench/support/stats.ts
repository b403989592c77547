/**
 * The summary statistics the benches report, one definition each, so the same name means the same figure in
 * every bench.
 * @module
 */

/** Rounded to hundredths: the precision of the reported milliseconds and ratios. */
export const round2 = (v: number) => Math.round(v * 100) / 100;

/** The value at quantile `p` (0..1): the sorted sample's element at floor((n - 1) p), no interpolation; NaN when empty. */
export function quantile(xs: readonly number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) * p)] ?? NaN;
}

/** The median; of an even sample, the mean of the two middle values. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * The few NumPy routines YOLOv5's val metrics lean on, reproduced with NumPy's exact semantics (endpoint handling,
 * duplicate abscissae, pairwise summation), because the golden metrics are plain float64 arithmetic that must
 * agree to ~1e-9 and those details move the numbers by more than that.
 */

/** `np.linspace(start, stop, num)`: `i * step + start` with the last element forced to `stop`. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  if (num > 1) out[num - 1] = stop;
  return out;
}

/**
 * `np.interp(x, xp, fp, left, right)` for non-decreasing xp. Like NumPy, a query equal to a repeated abscissa takes
 * the value at its LAST occurrence, and a query equal to the last abscissa returns the last value.
 */
export function interp(
  x: ArrayLike<number>,
  xp: ArrayLike<number>,
  fp: ArrayLike<number>,
  left = fp[0],
  right = fp[fp.length - 1],
): Float64Array {
  const n = xp.length;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v < xp[0]) out[i] = left;
    else if (v > xp[n - 1]) out[i] = right;
    else {
      // j = last index with xp[j] <= v
      let lo = 0, hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (v >= xp[mid]) lo = mid + 1;
        else hi = mid;
      }
      const j = lo - 1;
      if (j === n - 1 || xp[j] === v) out[i] = fp[j];
      else {
        const slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
        out[i] = slope * (v - xp[j]) + fp[j];
      }
    }
  }
  return out;
}

/** NumPy's pairwise summation (`np.add.reduce` over a contiguous axis): 8 accumulators in blocks of <= 128. */
export function pairwiseSum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  if (n < 8) {
    let s = 0;
    for (let i = 0; i < n; i++) s += a[start + i];
    return s;
  }
  if (n <= 128) {
    const r = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => a[start + k]);
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let k = 0; k < 8; k++) r[k] += a[start + i + k];
    }
    let s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) s += a[start + i];
    return s;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** `np.mean` over a 1-D array. */
export function mean(a: ArrayLike<number>): number {
  return pairwiseSum(a) / a.length;
}

/** `np.trapz(y, x)`: sum of `diff(x) * (y[1:] + y[:-1]) / 2`. */
export function trapz(y: ArrayLike<number>, x: ArrayLike<number>): number {
  const terms = new Float64Array(y.length - 1);
  for (let i = 0; i < terms.length; i++) terms[i] = ((x[i + 1] - x[i]) * (y[i + 1] + y[i])) / 2;
  return pairwiseSum(terms);
}

/**
 * ultralytics `smooth(y, f)`: a box filter of nf = round(len·f·2)//2 + 1 taps over y padded by nf//2 copies of its
 * edge values (`np.convolve(..., mode="valid")`), so the output has y's length.
 */
export function smooth(y: ArrayLike<number>, f: number): Float64Array {
  const nf = Math.floor(roundHalfEven(y.length * f * 2) / 2) + 1;
  const half = Math.floor(nf / 2);
  const padded = new Float64Array(y.length + 2 * half);
  for (let i = 0; i < padded.length; i++) padded[i] = y[Math.min(Math.max(i - half, 0), y.length - 1)];
  const w = 1 / nf;
  const out = new Float64Array(padded.length - nf + 1);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let k = 0; k < nf; k++) s += padded[i + k] * w;
    out[i] = s;
  }
  return out;
}

/** Python's `round` (half to even). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** First index of the maximum (`np.argmax`). */
export function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

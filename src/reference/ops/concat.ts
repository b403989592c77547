/** Plain-TypeScript channel concat/split of NCHW float64 tensors (references for the GPU copies). */

/** Concatenates `inputs` (each [n, c_i, ...plane]) along channels. */
export function concatChannels(inputs: ArrayLike<number>[], channels: number[], n: number, plane: number) {
  const total = channels.reduce((a, b) => a + b, 0);
  const y = new Float64Array(n * total * plane);
  let c0 = 0;
  inputs.forEach((x, i) => {
    for (let b = 0; b < n; b++) {
      for (let j = 0; j < channels[i] * plane; j++) {
        y[(b * total + c0) * plane + j] = x[b * channels[i] * plane + j];
      }
    }
    c0 += channels[i];
  });
  return y;
}

/** Splits y along channels: the inverse of concatChannels, and so also the gradient of concat (and vice versa). */
export function splitChannels(
  y: ArrayLike<number>,
  channels: number[],
  n: number,
  plane: number,
): Float64Array[] {
  const total = channels.reduce((a, b) => a + b, 0);
  let c0 = 0;
  return channels.map((c) => {
    const x = new Float64Array(n * c * plane);
    for (let b = 0; b < n; b++) {
      for (let j = 0; j < c * plane; j++) x[b * c * plane + j] = y[(b * total + c0) * plane + j];
    }
    c0 += c;
    return x;
  });
}

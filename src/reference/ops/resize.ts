/** Plain-TypeScript nearest upsampling by integer factors (NCHW, float64) and its gradient. */
export function resizeNearestForward(
  x: ArrayLike<number>,
  planes: number,
  h: number,
  w: number,
  sy: number,
  sx: number,
) {
  const y = new Float64Array(planes * h * sy * w * sx);
  for (let p = 0; p < planes; p++) {
    for (let oy = 0; oy < h * sy; oy++) {
      for (let ox = 0; ox < w * sx; ox++) {
        y[(p * h * sy + oy) * w * sx + ox] = x[(p * h + Math.floor(oy / sy)) * w + Math.floor(ox / sx)];
      }
    }
  }
  return y;
}

/** dx[i] = sum of dy over the outputs that copied x[i]. */
export function resizeNearestBackward(
  dy: ArrayLike<number>,
  planes: number,
  h: number,
  w: number,
  sy: number,
  sx: number,
) {
  const dx = new Float64Array(planes * h * w);
  for (let p = 0; p < planes; p++) {
    for (let oy = 0; oy < h * sy; oy++) {
      for (let ox = 0; ox < w * sx; ox++) {
        dx[(p * h + Math.floor(oy / sy)) * w + Math.floor(ox / sx)] += dy[(p * h * sy + oy) * w * sx + ox];
      }
    }
  }
  return dx;
}

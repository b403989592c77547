/** Plain-TypeScript max pooling (NCHW, square kernel) in float64: PyTorch's first-maximum gradient routing. */
export interface PoolShape {
  n: number;
  c: number;
  h: number;
  w: number;
  k: number;
  stride: number;
  pad: number;
}

export function poolOutSize(s: PoolShape): [number, number] {
  return [
    Math.floor((s.h + 2 * s.pad - s.k) / s.stride) + 1,
    Math.floor((s.w + 2 * s.pad - s.k) / s.stride) + 1,
  ];
}

/** y and, per output, the flat input index of the first maximum in row-major window order (strict >). */
export function maxPoolForward(s: PoolShape, x: ArrayLike<number>): { y: Float64Array; arg: Int32Array } {
  const [ho, wo] = poolOutSize(s);
  const y = new Float64Array(s.n * s.c * ho * wo);
  const arg = new Int32Array(y.length);
  for (let p = 0; p < s.n * s.c; p++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        let best = -Infinity, at = -1;
        for (let ky = 0; ky < s.k; ky++) {
          const iy = oy * s.stride - s.pad + ky;
          for (let kx = 0; kx < s.k; kx++) {
            const ix = ox * s.stride - s.pad + kx;
            if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
            const i = (p * s.h + iy) * s.w + ix;
            if (x[i] > best) [best, at] = [x[i], i];
          }
        }
        const o = (p * ho + oy) * wo + ox;
        y[o] = best;
        arg[o] = at;
      }
    }
  }
  return { y, arg };
}

/** dx: each dy added to its window's first maximum. */
export function maxPoolBackward(s: PoolShape, x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  const { arg } = maxPoolForward(s, x);
  const dx = new Float64Array(s.n * s.c * s.h * s.w);
  arg.forEach((i, o) => dx[i] += dy[o]);
  return dx;
}

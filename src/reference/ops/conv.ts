/** Plain-TypeScript convolution (NCHW, groups 1) in float64: the reference GPU kernels are tested against. */
export interface ConvShape {
  n: number;
  cin: number;
  h: number;
  w: number;
  cout: number;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
}

export function convOutSize(s: ConvShape): [number, number] {
  return [
    Math.floor((s.h + 2 * s.pad - s.kh) / s.stride) + 1,
    Math.floor((s.w + 2 * s.pad - s.kw) / s.stride) + 1,
  ];
}

/** Calls `f(yIndex, xIndex, wIndex)` for every multiply-add of the convolution (padding taps skipped). */
function eachTap(s: ConvShape, f: (yi: number, xi: number, wi: number) => void): void {
  const [ho, wo] = convOutSize(s);
  for (let b = 0; b < s.n; b++) {
    for (let co = 0; co < s.cout; co++) {
      for (let oy = 0; oy < ho; oy++) {
        for (let ox = 0; ox < wo; ox++) {
          const yi = ((b * s.cout + co) * ho + oy) * wo + ox;
          for (let ci = 0; ci < s.cin; ci++) {
            for (let ky = 0; ky < s.kh; ky++) {
              const iy = oy * s.stride - s.pad + ky;
              if (iy < 0 || iy >= s.h) continue;
              for (let kx = 0; kx < s.kw; kx++) {
                const ix = ox * s.stride - s.pad + kx;
                if (ix < 0 || ix >= s.w) continue;
                f(yi, ((b * s.cin + ci) * s.h + iy) * s.w + ix, ((co * s.cin + ci) * s.kh + ky) * s.kw + kx);
              }
            }
          }
        }
      }
    }
  }
}

export function convForward(s: ConvShape, x: ArrayLike<number>, w: ArrayLike<number>, b?: ArrayLike<number>) {
  const [ho, wo] = convOutSize(s);
  const y = new Float64Array(s.n * s.cout * ho * wo);
  if (b) { for (let i = 0; i < y.length; i++) y[i] = b[Math.floor(i / (ho * wo)) % s.cout]; }
  eachTap(s, (yi, xi, wi) => y[yi] += x[xi] * w[wi]);
  return y;
}

/** Gradients of sum(y * dy) with respect to x, w and b. */
export function convBackward(
  s: ConvShape,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
) {
  const [ho, wo] = convOutSize(s);
  const dx = new Float64Array(s.n * s.cin * s.h * s.w);
  const dw = new Float64Array(s.cout * s.cin * s.kh * s.kw);
  const db = new Float64Array(s.cout);
  for (let i = 0; i < dy.length; i++) db[Math.floor(i / (ho * wo)) % s.cout] += dy[i];
  eachTap(s, (yi, xi, wi) => {
    dx[xi] += w[wi] * dy[yi];
    dw[wi] += x[xi] * dy[yi];
  });
  return { dx, dw, db };
}

/** Plain-TypeScript BatchNormalization in training mode (NCHW, float64), PyTorch semantics. */
export interface BnShape {
  n: number;
  c: number;
  plane: number;
}

function channelStats(s: BnShape, x: ArrayLike<number>, ch: number): { mean: number; variance: number } {
  const m = s.n * s.plane;
  let sum = 0;
  for (let b = 0; b < s.n; b++) for (let i = 0; i < s.plane; i++) sum += x[(b * s.c + ch) * s.plane + i];
  const mean = sum / m;
  let q = 0;
  for (let b = 0; b < s.n; b++) {
    for (let i = 0; i < s.plane; i++) q += (x[(b * s.c + ch) * s.plane + i] - mean) ** 2;
  }
  return { mean, variance: q / m };
}

/** y, and the running statistics after this batch (unbiased variance, new = (1 - m) * old + m * batch). */
export function batchNormForward(
  s: BnShape,
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  eps: number,
  running?: { mean: ArrayLike<number>; variance: ArrayLike<number>; momentum: number },
) {
  const y = new Float64Array(x.length);
  const runMean = new Float64Array(s.c), runVar = new Float64Array(s.c);
  const m = s.n * s.plane;
  for (let ch = 0; ch < s.c; ch++) {
    const { mean, variance } = channelStats(s, x, ch);
    const inv = 1 / Math.sqrt(variance + eps);
    for (let b = 0; b < s.n; b++) {
      for (let i = 0; i < s.plane; i++) {
        const at = (b * s.c + ch) * s.plane + i;
        y[at] = gamma[ch] * (x[at] - mean) * inv + beta[ch];
      }
    }
    if (running) {
      runMean[ch] = (1 - running.momentum) * running.mean[ch] + running.momentum * mean;
      runVar[ch] = (1 - running.momentum) * running.variance[ch] + running.momentum * variance * m / (m - 1);
    }
  }
  return { y, runMean, runVar };
}

/** Gradients of sum(y * dy) with respect to x, gamma and beta (batch statistics differentiated through). */
export function batchNormBackward(
  s: BnShape,
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  dy: ArrayLike<number>,
  eps: number,
) {
  const dx = new Float64Array(x.length), dgamma = new Float64Array(s.c), dbeta = new Float64Array(s.c);
  const m = s.n * s.plane;
  for (let ch = 0; ch < s.c; ch++) {
    const { mean, variance } = channelStats(s, x, ch);
    const inv = 1 / Math.sqrt(variance + eps);
    const at = (b: number, i: number) => (b * s.c + ch) * s.plane + i;
    let sdy = 0, sdyx = 0;
    for (let b = 0; b < s.n; b++) {
      for (let i = 0; i < s.plane; i++) {
        sdy += dy[at(b, i)];
        sdyx += dy[at(b, i)] * (x[at(b, i)] - mean) * inv;
      }
    }
    dgamma[ch] = sdyx;
    dbeta[ch] = sdy;
    for (let b = 0; b < s.n; b++) {
      for (let i = 0; i < s.plane; i++) {
        const xhat = (x[at(b, i)] - mean) * inv;
        dx[at(b, i)] = gamma[ch] * inv / m * (m * dy[at(b, i)] - sdy - xhat * sdyx);
      }
    }
  }
  return { dx, dgamma, dbeta };
}

/** Evaluation mode (PyTorch's model.eval(), ONNX BatchNormalization): the running statistics normalise. */
export function batchNormEval(
  s: BnShape,
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  eps: number,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / s.plane) % s.c;
    y[i] = gamma[ch] * (x[i] - mean[ch]) / Math.sqrt(variance[ch] + eps) + beta[ch];
  }
  return y;
}

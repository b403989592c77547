/** Plain-TypeScript elementwise activations in float64 with their derivatives (the references for GPU kernels). */
export interface Activation {
  f(x: number): number;
  /** df/dx at x */
  df(x: number): number;
}

const sig = (x: number) => 1 / (1 + Math.exp(-x));

export const silu: Activation = {
  f: (x) => x * sig(x),
  df: (x) => sig(x) * (1 + x * (1 - sig(x))),
};

export const sigmoid: Activation = {
  f: sig,
  df: (x) => sig(x) * (1 - sig(x)),
};

/** d/dx at exactly 0 is taken as 0, like PyTorch's threshold backward (x > 0). */
export const relu: Activation = {
  f: (x) => Math.max(x, 0),
  df: (x) => (x > 0 ? 1 : 0),
};

export function leakyRelu(alpha: number): Activation {
  return { f: (x) => (x >= 0 ? x : alpha * x), df: (x) => (x > 0 ? 1 : alpha) };
}

export function applyForward(act: Activation, x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, act.f);
}

/** dx = dy * f'(x) */
export function applyBackward(act: Activation, x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => dy[i] * act.df(v));
}
